"""Streaming: a table read in record batches, split by a hash, fitted from summaries, trained from chunks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwell as dw
from deepwell.config import Config, SplitConfig
from deepwell.data.stream import TRAIN, VALIDATION, TableStream, hash_split
from deepwell.errors import ConfigError, DataError
from deepwell.features.pipeline import Preprocessor
from deepwell.features.target import TargetEncoder
from deepwell.pipeline.fit import fit_preprocessor
from deepwell.pipeline.prepare import prepare
from deepwell.pipeline.streaming import split_of, streamed_columns


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    city = rng.choice(["oslo", "lima", "pune", "kyiv"], rows)
    words = np.where(x > 0, "bright sunny warm", "grey rainy cold")
    label = np.where(x + (city == "lima") * 0.8 + rng.normal(scale=0.3, size=rows) > 0.4, "yes", "no")
    return pd.DataFrame({"x": x, "amount": np.exp(rng.normal(2, 1, rows)), "city": city,
                         "note": [f"{w} day {i % 7}" for i, w in enumerate(words)], "label": label})


@pytest.fixture
def parquet_folder(tmp_path):
    folder = tmp_path / "rows"
    folder.mkdir()
    frame = table(6000)
    for part in range(3):  # three files: a dataset, not one file
        frame.iloc[part * 2000:(part + 1) * 2000].to_parquet(folder / f"part-{part}.parquet", index=False)
    return folder, frame


STREAM = {"data": {"streaming": "always", "batch_rows": 1000, "sample_rows": 1500}, "explain": {"enabled": False}}


def test_hash_split_is_the_same_in_any_batch_size_and_near_the_fractions():
    frame = table(20_000)
    whole = hash_split(frame, SplitConfig(), seed=3)
    pieces = np.concatenate([hash_split(frame.iloc[i:i + 777], SplitConfig(), seed=3)
                             for i in range(0, len(frame), 777)])
    assert (whole == pieces).all()
    shares = np.bincount(whole, minlength=3) / len(frame)
    assert shares == pytest.approx([0.70, 0.15, 0.15], abs=0.01)
    assert (hash_split(frame, SplitConfig(), seed=4) != whole).mean() > 0.3  # the seed matters
    twice = pd.concat([frame.iloc[:10], frame.iloc[:10]])
    codes = hash_split(twice, SplitConfig(), seed=3)
    assert (codes[:10] == codes[10:]).all()  # equal rows share a split: no copy of a row in two splits


def test_split_column_is_read_and_bad_values_are_named():
    frame = pd.DataFrame({"split": ["train", "val", "TEST", "dev"]})
    assert hash_split(frame, SplitConfig(column="split"), 0).tolist() == [TRAIN, VALIDATION, 2, VALIDATION]
    with pytest.raises(DataError, match="split column 'split' holds \\['later'\\]"):
        hash_split(pd.DataFrame({"split": ["train", "later"]}), SplitConfig(column="split"), 0)


def test_table_stream_reads_a_folder_in_batches_and_a_csv_with_types_from_its_head(parquet_folder, tmp_path):
    folder, frame = parquet_folder
    stream = TableStream.open(folder, batch_rows=500)
    sizes = [len(b) for b in stream.batches()]
    assert sum(sizes) == 6000 and max(sizes) <= 500
    assert stream.columns() == list(frame.columns)
    csv = tmp_path / "t.csv"
    frame.head(50).to_csv(csv, index=False)
    head = TableStream.open(csv).head(10)
    assert len(head) == 10 and head["x"].dtype == np.float64 and head["city"].iloc[0] == frame["city"].iloc[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n" + "1,2\n" * 400_000 + "oops,3\n")  # past the first block pyarrow types from
    with pytest.raises(DataError, match=r"bad.csv: cannot be read as csv: .*oops"):
        list(TableStream.open(bad, batch_rows=100_000).batches())
    with pytest.raises(DataError, match="one format"):
        (folder / "notes.txt").write_text("hi")
        TableStream.open(folder)


def test_streamed_preparation_fits_from_summaries_what_memory_fits(parquet_folder):
    folder, frame = parquet_folder
    prepared = prepare(folder, "label", STREAM)
    assert prepared.stream is not None and prepared.config.data.streaming == "always"
    assert sum(prepared.split_sizes().values()) == 6000
    assert len(prepared.splits.train) == 1500  # the sample, not the split
    whole_table = pd.read_parquet(folder)[streamed_columns(prepared.config)]
    codes, _ = split_of(whole_table, prepared.config)
    train = whole_table[codes == TRAIN]
    assert len(train) == prepared.split_sizes()["train"]
    streamed = fit_preprocessor(prepared.config, prepared.splits, prepared.stream).state()
    whole = Preprocessor.fit(train.reset_index(drop=True), prepared.config.columns,
                             TargetEncoder("label", prepared.config.task)).state()
    by_name = {f["name"]: f for f in whole["features"]}
    for feature in streamed["features"]:
        if feature["type"] in ("number", "category"):
            expected = by_name[feature["name"]]
            for key, value in expected.items():
                assert feature[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value)
    assert streamed["target"] == whole["target"]


def test_streamed_training_makes_a_run_like_a_local_one(parquet_folder, tmp_path):
    folder, frame = parquet_folder
    model = dw.train(folder, "label", config=STREAM, output=tmp_path / "runs", quiet=True, track=False, epochs=6)
    info = json.loads((model.run_dir / "run.json").read_text())
    assert sum(info["split"].values()) == 6000 and info["streamed"]["sample_rows"] == 1500
    metrics = model.metrics
    assert metrics.test.rows == info["split"]["test"]  # every test row scored, not the sample
    assert metrics.test.model["accuracy"] > metrics.test.baseline["accuracy"] + 0.1
    assert len(pd.read_csv(model.run_dir / "predictions.csv")) == min(1500, info["split"]["test"])  # its sample
    again = dw.load(model.run_dir / "model").predict(frame.head(20))
    assert (again == frame["label"].head(20).to_numpy()).mean() > 0.7
    assert not list(tmp_path.glob("deepwell-chunks-*"))


def test_the_streaming_passes_show_a_bar_over_the_rows(parquet_folder, monkeypatch):
    import io

    import rich
    from rich.console import Console

    from deepwell.pipeline.streaming import stream_tensors

    shown = io.StringIO()
    monkeypatch.setattr(rich, "_console", Console(file=shown, force_terminal=True, width=120))
    folder, _ = parquet_folder
    prepared = prepare(folder, "label", STREAM, progress=True)
    assert "pass 1: summaries" in shown.getvalue() and "6000/6000" in shown.getvalue()  # Parquet says its rows
    tensors = stream_tensors(prepared.stream, prepared.config, fit_preprocessor(prepared.config, prepared.splits,
                                                                                 prepared.stream), progress=True)
    tensors.release()
    assert "pass 2: chunks" in shown.getvalue() and "6000/6000" in shown.getvalue().split("pass 2: chunks")[-1]


def test_a_streamed_table_of_image_paths_decodes_them_and_skips_a_broken_file(digits_folder, tmp_path):
    """Relative paths under the table file's folder; the images decoded in pass 2 into the chunks (uint8); an
    unreadable file skips its row with a warning, every other row trains and is scored."""
    paths = sorted(digits_folder.rglob("*.png"))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    frame = pd.DataFrame({"scan": [os.path.relpath(p, tmp_path) for p in paths] + ["broken.png"],
                          "digit": [f"d{p.parent.name}" for p in paths] + ["d0"]})
    frame.to_csv(tmp_path / "scans.csv", index=False)
    with pytest.warns(Warning, match="skipped 1 row"):
        model = dw.train(tmp_path / "scans.csv", "digit", config=STREAM, output=tmp_path / "runs", epochs=12,
                         seed=0, quiet=True, track=False)
    info = json.loads((model.run_dir / "run.json").read_text())
    assert "streamed" in info and sum(info["split"].values()) == len(paths) + 1
    config = dw.Config.from_yaml(model.run_dir / "config.yaml")
    assert config.columns["scan"].type == "image"
    test_rows = info["split"]["test"]  # pass 1's count; the broken row, if it is a test row, is not scored
    assert test_rows - 1 <= model.metrics.test.rows <= test_rows
    assert model.metrics.test.model["accuracy"] > model.metrics.test.baseline["accuracy"] + 0.3
    scans = pd.DataFrame({"scan": [str(p) for p in paths[:40]]})
    assert (model.predict(scans) == frame["digit"].head(40).to_numpy()).mean() > 0.5


def test_streaming_refuses_what_it_does_not_do(parquet_folder, tmp_path):
    folder, frame = parquet_folder
    config = {**STREAM, "fairness": {"sensitive": ["city"], "mitigate": "reweigh"}}
    with pytest.raises(ConfigError, match="streamed .* fairness.mitigate 'reweigh'"):
        prepare(folder, "label", config)
    with pytest.raises(ConfigError, match="DataFrame already in memory"):
        prepare(frame, "label", STREAM)


def test_a_table_folder_reads_into_memory_when_streaming_is_never(parquet_folder):
    folder, _ = parquet_folder
    prepared = prepare(folder, "label", {"data": {"streaming": "never"}})
    assert prepared.stream is None and sum(prepared.splits.sizes().values()) == 6000
    assert Config(target="y").data.streaming == "auto"


MEMORY_PROBE = """
import json, sys
from pathlib import Path

import deepwell as dw


def status(key):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024


out = {}
for name, folder, streaming in (arg.split("=") for arg in sys.argv[1:]):
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the current RSS
    before = status("VmRSS")
    model = dw.train(folder, "y", config={"data": {"streaming": streaming, "batch_rows": 5000, "sample_rows": 2000},
                                          "explain": {"enabled": False}},
                     output=Path(folder).parent / "runs", quiet=True, track=False, epochs=1)
    info = json.loads((model.run_dir / "run.json").read_text())
    out[name] = {"growth": status("VmHWM") - before, "streamed": "streamed" in info,
                 "accuracy": model.metrics.test.model["accuracy"]}
print(json.dumps(out))
"""


def numbers_table(folder, rows: int) -> None:
    folder.mkdir(parents=True)
    for part, start in enumerate(range(0, rows, 100_000)):
        n = min(100_000, rows - start)
        rng = np.random.default_rng(part)
        x = rng.normal(size=(n, 6))
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
        frame["c"] = np.char.add("c", rng.integers(0, 30, n).astype(str))
        frame["y"] = np.where(x[:, 0] + np.sin(x[:, 1]) + (frame["c"] < "c2") > 0.3, "a", "b")
        frame.to_parquet(folder / f"p{part:03d}.parquet", index=False)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_streamed_training_keeps_to_a_memory_budget_whatever_the_rows(tmp_path):
    """`auto` streams a table four times larger than the memory budget, and the training process's memory
    growth stays under that budget and nearly flat when the rows grow sixteenfold."""
    import subprocess
    import sys

    # 4.8M rows: the budget (a quarter of the table's estimate, ~180 MB) stays well above the run's fixed costs
    # and their noise (the allocator's retained pages, the report's figures: 55-120 MB of growth at 2.4M rows,
    # peaking in different phases from run to run), so what the test weighs is what grows with the rows
    for name, rows in (("small", 300_000), ("large", 4_800_000)):
        numbers_table(tmp_path / name, rows)
    estimate = TableStream.open(tmp_path / "large").memory_estimate()
    budget = estimate // 4  # data.memory_share (0.25) of the memory deepwell is told it has
    env = {**os.environ, "DEEPWELL_MEMORY_LIMIT": str(estimate), "DEEPWELL_PRESET": "fast", "DEEPWELL_TRACK": "0",
           "MALLOC_ARENA_MAX": "2"}  # glibc's per-thread arenas otherwise keep freed memory resident
    args = [f"{name}={tmp_path / folder}={mode}" for name, folder, mode in (
        ("warm", "small", "always"), ("small", "small", "always"), ("large", "large", "auto"))]
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, *args], env=env, capture_output=True, text=True,
                          check=True, timeout=600)
    runs = json.loads(done.stdout.strip().splitlines()[-1])  # "warm": the allocator's first growth, not counted
    assert runs["large"]["streamed"]  # auto: the table exceeds the budget four times
    large, small = runs["large"]["growth"], runs["small"]["growth"]
    assert large < budget, (small, large, budget)
    # nearly flat: what grows with the rows is the exact metrics' outputs and targets (validation and test scores,
    # roc_auc needs every row's) and the training targets' class counts, under 32 bytes a row; the table itself
    # in memory takes ~100 bytes a row as a DataFrame and again as tensors
    assert (large - small) / (4_800_000 - 300_000) < 32, (small, large)
    assert runs["large"]["accuracy"] > 0.9
