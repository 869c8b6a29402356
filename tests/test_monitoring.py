"""Drift monitoring: the statistics (calibrated on samples drawn from the reference's own distribution), the
reference profile a training run keeps, `Model.drift` and `deepwell monitor` on new tables."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwell as dw
from deepwell.monitoring.drift import DriftStatus, measure_drift
from deepwell.monitoring.measures import Measure, MeasureKind
from deepwell.monitoring.profile import Reference

NUMBER = Measure("x", "x", MeasureKind.NUMBER, "value")
LEVEL = Measure("c", "c", MeasureKind.CATEGORY, "level")
DEEPWELL = Path(sys.executable).with_name("deepwell")


@pytest.mark.parametrize("draw", ["normal", "lognormal"])
def test_same_distribution_is_rarely_flagged_and_a_half_sd_shift_always_is(draw):
    rng = np.random.default_rng(0)
    sample = getattr(rng, draw)
    false_alarms = caught = 0
    for _ in range(60):
        reference = Reference.of(NUMBER, sample(size=3000))
        false_alarms += measure_drift(reference, sample(size=300)).status.flagged
        drift = measure_drift(reference, sample(size=300) + 0.5 * np.std(sample(size=3000)))
        caught += drift.status is DriftStatus.DRIFTED or drift.status is DriftStatus.SHIFTED
        assert drift.test == "ks"
    assert false_alarms <= 4  # ≤ 5 % + noise: a flag means something
    assert caught == 60


def test_a_new_category_level_or_a_change_in_shares_is_drift():
    rng = np.random.default_rng(1)
    reference = Reference.of(LEVEL, rng.choice(np.array(["a", "b", "c"], dtype=object), 2000, p=[.6, .3, .1]))
    same = measure_drift(reference, rng.choice(np.array(["a", "b", "c"], dtype=object), 400, p=[.6, .3, .1]))
    assert same.status is DriftStatus.STABLE and same.test == "chi-square"
    new_level = measure_drift(reference, rng.choice(np.array(["a", "b", "z"], dtype=object), 400, p=[.6, .3, .1]))
    assert new_level.status is DriftStatus.DRIFTED and "(other)" in new_level.bins
    assert new_level.current_shares[new_level.bins.index("(other)")] == pytest.approx(0.1, abs=0.04)


def test_a_discrete_number_is_tested_by_chi_square_and_missing_values_are_a_bin_of_their_own():
    rng = np.random.default_rng(2)
    reference = Reference.of(NUMBER, rng.integers(0, 3, 2000).astype(float))
    same = measure_drift(reference, rng.integers(0, 3, 300).astype(float))
    assert same.test == "chi-square" and same.status is DriftStatus.STABLE  # KS would call ties a drift
    half_missing = np.where(rng.random(300) < 0.5, np.nan, rng.integers(0, 3, 300).astype(float))
    drift = measure_drift(reference, half_missing)
    assert drift.status is DriftStatus.DRIFTED and drift.missing[1] == pytest.approx(0.5, abs=0.08)


def test_too_few_rows_are_not_judged():
    reference = Reference.of(NUMBER, np.random.default_rng(3).normal(size=500))
    assert measure_drift(reference, np.full(29, 40.0)).status is DriftStatus.TOO_FEW


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A table with every tabular kind of column, a model trained on its first 600 rows, and 400 new rows."""
    rng = np.random.default_rng(0)
    rows = 1000
    words = np.array(["good", "bad", "fine", "great", "poor", "service", "food", "price"])
    frame = pd.DataFrame({
        "amount": rng.lognormal(3, 1, rows),
        "colour": rng.choice(["red", "green", "blue"], rows),
        "note": [" ".join(rng.choice(words, rng.integers(2, 9))) for _ in range(rows)],
        "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"),
    })
    frame["label"] = np.where(frame["amount"] > 20, "high", "low")
    folder = tmp_path_factory.mktemp("mixed")
    frame.iloc[600:].to_csv(folder / "new.csv", index=False)
    model = dw.train(frame.iloc[:600], "label", config={"training": {"epochs": 2}}, output=folder / "runs",
                     quiet=True, track=False)
    return model, frame.iloc[600:].reset_index(drop=True), folder


def test_a_run_keeps_a_reference_of_every_input_measure_and_of_the_predictions(mixed):
    model, _, _ = mixed
    saved = json.loads((model.run_dir / "model" / "reference.json").read_text())
    names = [r["measure"]["name"] for r in saved["inputs"]]
    assert names == ["amount", "colour", "note:characters", "note:words", "note:known_words", "day"]
    assert [r["measure"]["name"] for r in saved["predictions"]] == ["prediction", "confidence"]
    amount = saved["inputs"][0]
    assert amount["rows"] == 420  # the training split: 70 % of 600 rows
    assert len(amount["quantiles"]) == 101 and sum(amount["shares"]) == pytest.approx(1.0)
    assert set(saved["inputs"][1]["levels"]) == {"red", "green", "blue"}
    assert saved["vocabularies"]["note"][:1] and set(saved["vocabularies"]["note"]) <= {
        "good", "bad", "fine", "great", "poor", "service", "food", "price"}
    assert dw.load(model.run_dir).reference.to_dict() == saved  # it loads back with the model


def test_model_drift_is_quiet_on_new_rows_like_training_and_names_what_moved(mixed):
    model, new, _ = mixed
    assert model.drift(new).flagged == []
    rng = np.random.default_rng(5)
    moved = new.assign(amount=new["amount"] * 4, note=[f"{n} terrible awful" for n in new["note"]],
                       colour=rng.choice(["red", "purple"], len(new)))
    flagged = {m.measure: m.status for m in model.drift(moved).flagged}
    assert {"amount", "colour", "note:words", "note:known_words", "note:characters"} <= set(flagged)
    assert "day" not in flagged and "prediction" in flagged  # more amounts above 20: more "high"


def test_deepwell_monitor_writes_the_page_and_fails_on_drift_when_asked(mixed, tmp_path):
    model, new, folder = mixed
    moved = tmp_path / "moved.csv"
    new.assign(colour="purple").to_csv(moved, index=False)
    result = subprocess.run([str(DEEPWELL), "monitor", str(model.run_dir), "--data", str(moved), "--out",
                             str(tmp_path / "drift"), "--fail-on-drift"], capture_output=True, text=True,
                            env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "colour" in result.stdout and "drifted" in result.stdout
    report = json.loads((tmp_path / "drift" / "drift.json").read_text())
    assert "colour" in report["flagged"] and "amount" not in report["flagged"]
    page = (tmp_path / "drift" / "drift.html").read_text()
    assert page.count("<img") == len(report["flagged"]) and "purple" not in page  # new levels show as (other)
    quiet = subprocess.run([str(DEEPWELL), "monitor", str(model.run_dir), "--data", str(folder / "new.csv"),
                            "--out", str(tmp_path / "quiet"), "--fail-on-drift"], capture_output=True, text=True,
                           env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "0 of 8 measures flagged" in quiet.stdout


def test_a_model_folder_without_a_reference_still_loads_and_monitor_says_why(mixed, tmp_path):
    model, new, _ = mixed
    old = tmp_path / "old-model"
    shutil.copytree(model.run_dir / "model", old)
    (old / "reference.json").unlink()
    loaded = dw.load(old)
    assert loaded.reference is None and len(loaded.predict(new.head(3))) == 3
    with pytest.raises(dw.DeepwellError, match="no reference.json"):
        loaded.drift(new)


def test_image_and_audio_files_are_measured_from_paths_and_bytes():
    import soundfile
    from PIL import Image

    from deepwell.config import AudioOptions, ColumnConfig, ImageOptions
    from deepwell.features.audio import AudioFeature
    from deepwell.features.image import ImageFeature
    from deepwell.monitoring.measures import _file_measures

    picture = io.BytesIO()
    Image.fromarray(np.full((30, 50), 200, dtype=np.uint8)).save(picture, format="PNG")
    image = ImageFeature("photo", ColumnConfig(type="image", image=ImageOptions(size=16, channels=1)))
    width, height, brightness, contrast = _file_measures(image, picture.getvalue())
    assert (width, height, brightness, contrast) == (50, 30, pytest.approx(200, abs=1), pytest.approx(0, abs=1))
    sound = io.BytesIO()
    rate = 16000
    soundfile.write(sound, 0.1 * np.sin(2 * np.pi * 440 * np.arange(int(1.5 * rate)) / rate), rate, format="WAV")
    audio = AudioFeature("clip", ColumnConfig(type="audio", audio=AudioOptions(duration=1.0)))
    seconds, loudness = _file_measures(audio, sound.getvalue())
    assert seconds == pytest.approx(1.5) and loudness == pytest.approx(-23.0, abs=0.5)  # RMS of 0.1·sin
    assert np.isnan(_file_measures(audio, b"not a recording")).all()  # unreadable: counted as missing
