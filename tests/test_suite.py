"""The benchmark suite's own machinery (benchmarks/suite): fixed splits, the gap's sign, baselines chosen on
validation, the manual-page reader and the audio statistics. The suite itself is a benchmark, not a test."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite import baselines, datasets, run  # noqa: E402


def test_the_split_is_fixed_stratified_and_differs_by_dataset():
    target = pd.Series(["a"] * 70 + ["b"] * 30)
    first = datasets.fixed_split(target, datasets.CLASSIFICATION, "one")
    assert (first == datasets.fixed_split(target, datasets.CLASSIFICATION, "one")).all()
    assert not (first == datasets.fixed_split(target, datasets.CLASSIFICATION, "two")).all()
    counts = pd.crosstab(first, target)
    assert counts.loc["train", "a"] == 49 and counts.loc["train", "b"] == 21  # 70% of each class


def test_a_small_table_is_measured_on_five_fixed_splits_and_the_first_is_the_classic_one(tmp_path):
    from sklearn.datasets import load_iris

    iris = datasets.Dataset("iris", "tune", "table", datasets.CLASSIFICATION, "target",
                            lambda _: load_iris(as_frame=True).frame, "150 flowers")
    frames = iris.frames(tmp_path)
    assert len(frames) == datasets.SMALL_TABLE_SPLITS == 5
    assert (frames[0]["split"] == datasets.fixed_split(frames[0]["target"], datasets.CLASSIFICATION, "iris")).all()
    assert len({tuple(f["split"]) for f in frames}) == 5  # five different splits, each the same every run
    assert all((f["split"] == g["split"]).all() for f, g in zip(frames, iris.frames(tmp_path), strict=True))
    assert (iris.frame(tmp_path)["split"] == frames[0]["split"]).all()
    own = datasets.Dataset("own", "tune", "table", datasets.CLASSIFICATION, "target",
                           lambda _: load_iris(as_frame=True).frame.assign(split="train"), "its own split")
    assert len(own.frames(tmp_path)) == 1  # a builder's own split (unseen voices, fonts) is kept as it is
    tables = [baselines.BaselineResult("random forest", 0.9, 0.8, 1.0), baselines.BaselineResult("ridge", 0.8, 0.6, 3)]
    mean = run.mean_baseline([run.SplitTable(i, frames[i], tmp_path, b, [b]) for i, b in enumerate(tables)])
    assert mean["name"] == "best per split (random forest ×1, ridge ×1)" and mean["test"] == pytest.approx(0.7)


def test_the_gap_is_positive_when_deepwell_is_better():
    assert run.gap(datasets.CLASSIFICATION, 0.90, 0.85) == pytest.approx(5.0)
    assert run.gap(datasets.REGRESSION, 2.0, 2.2) == pytest.approx(10.0)  # lower RMSE than the baseline
    assert run.gap(datasets.REGRESSION, 2.2, 2.0) < 0


def test_the_baseline_is_chosen_on_validation_not_test():
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["split"] = datasets.fixed_split(frame["target"], datasets.CLASSIFICATION, "iris")
    best, candidates = baselines.best_baseline(frame, "target", datasets.CLASSIFICATION, "table")
    assert {c.name for c in candidates} == {"logistic regression", "gradient boosting", "random forest"}
    assert best.validation == max(c.validation for c in candidates) and best.test > 0.8


def test_manual_page_sections_are_read_as_plain_text(tmp_path):
    page = tmp_path / "ls.1.gz"
    with gzip.open(page, "wt") as out:
        out.write('.TH LS 1\n.SH NAME\nls \\- list directory contents\n.SH SYNOPSIS\n.B ls\n'
                  '.SH DESCRIPTION\n.\\" a comment\nList information about the \\fBFILE\\fRs.\n.SH AUTHOR\nx\n')
    assert datasets._man_section(page, "NAME") == "ls - list directory contents"
    assert datasets._man_section(page, "DESCRIPTION") == "List information about the FILE s."


def test_log_mel_statistics_ignore_leading_silence(tmp_path):
    import soundfile

    rate = 16_000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", tone, rate)
    soundfile.write(tmp_path / "b.wav", np.concatenate([np.zeros(rate // 4, np.float32), tone]), rate)
    stats = baselines.log_mel_statistics(pd.DataFrame({"audio": [str(tmp_path / "a.wav"),
                                                                 str(tmp_path / "b.wav")]}))
    assert stats.shape == (2, 4 * 40)
    assert np.allclose(stats[0, :40], stats[1, :40], atol=3.0)  # silence averaged in would cost ~30 dB


def test_an_ablation_variant_reads_dotted_settings_and_keeps_a_bracketed_pair_whole():
    from benchmarks.suite.ablate import parse_variant

    name, settings = parse_variant("sharp: model.periodic_scale=[0.1, 30], model.dropout=0.3,training.seed=1")
    assert name == "sharp"
    assert settings == {"model": {"periodic_scale": [0.1, 30], "dropout": 0.3}, "training": {"seed": 1}}


def test_text_ceiling_counts_the_errors_of_averaged_networks_and_reports_rows_every_seed_misses():
    from benchmarks.suite import text_ceiling

    # two networks, three rows: each alone misses a different row; averaged, only the row both lean wrong on
    probabilities = np.array([[[0.9, 0.1], [0.4, 0.6], [0.45, 0.55]],
                              [[0.3, 0.7], [0.2, 0.8], [0.45, 0.55]]])
    labels = np.array([0, 1, 0])
    assert text_ceiling.errors(probabilities[:1], labels).tolist() == [2]
    assert text_ceiling.errors(probabilities[1:], labels).tolist() == [0, 2]
    assert text_ceiling.errors(probabilities, labels).tolist() == [2]
    report = {"dataset": "toy", "date": "today", "seeds": [1, 2], "networks": 10, "default_members": 5,
              "test_rows": 100,
              "errors": {"one": [3, 5], "default": [2, 2], "all": [2, 1], "pooled": 1},
              "always_wrong": [{"row": 7, "label": "spam", "probability": 0.12, "text": "win a prize"}],
              "classical": [{"model": "words", "accuracy": 0.97, "errors": [7, 9, 11]}]}
    page = text_ceiling.markdown(report)
    assert "| 5 | 2 | 2 | 0.9800 |" in page  # the default ensemble: 4 errors over 2 × 100 rows
    assert "- spam, 0.12: win a prize" in page
    assert "| words | 0.9700 | 3 | 1 |" in page  # one of its three errors is a row every seed misses
