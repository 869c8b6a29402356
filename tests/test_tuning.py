"""Capacity search (Optuna), --auto-capacity and the data-size learning curve."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import deepwell as dw

optuna = pytest.importorskip("optuna")
DEEPWELL = [sys.executable, "-m", "deepwell.cli.main"]


@pytest.fixture(scope="module")
def wine_csv(wine_frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "wine.csv"
    wine_frame.to_csv(path, index=False)
    return path


def test_three_trial_tune_finishes_and_is_no_worse_than_the_default(wine_csv, tmp_path):
    result = dw.tune(wine_csv, "cultivar", trials=3, epochs=12, output=tmp_path, quiet=True, track=False)
    table = result.trials
    assert len(table) == 3 and set(table["state"]) <= {"complete", "pruned"}
    default = table.loc[table["trial"] == 0, "validation_accuracy"].item()  # trial 0: the given configuration
    assert table.loc[0, "hidden_width"] == 256 and table.loc[0, "hidden_layers"] == 3
    assert result.best_value >= default
    assert (result.folder / "trials.csv").is_file() and (result.folder / "metric_vs_parameters.png").is_file()
    winner = result.model
    saved = dw.Config.from_yaml(winner.run_dir / "config.yaml")
    assert saved.model.hidden_width == result.best_params["hidden_width"]
    assert winner.metrics.validation.model["accuracy"] == pytest.approx(result.best_value)
    assert (winner.run_dir / "report.html").is_file()  # a normal run


def completed(storage: str, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except Exception:  # not created yet
        return 0
    return sum(t.state.name == "COMPLETE" for t in study.trials)


def test_an_interrupted_study_resumes_where_it_stopped(wine_csv, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = DEEPWELL + ["tune", str(wine_csv), "-t", "cultivar", "--trials", "4", "--epochs", "40", "-o",
                       str(tmp_path), "--storage", storage, "--study", "wine", "-q", "--no-track"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while completed(storage, "wine") < 2:
        assert first.poll() is None, first.stderr.read()
        assert time.time() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = optuna.load_study(study_name="wine", storage=storage).trials
    done_before = [(t.number, t.params) for t in before if t.state.name == "COMPLETE"]
    assert 2 <= len(done_before) < 4
    resumed = subprocess.run(args, capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert resumed.returncode == 0, resumed.stderr
    after = optuna.load_study(study_name="wine", storage=storage).trials
    finished = [t for t in after if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4
    assert [(t.number, t.params) for t in after if t.number in dict(done_before)] == done_before  # kept, not rerun
    assert "best trial" in resumed.stdout


def test_auto_capacity_grows_an_underfitting_network_and_keeps_the_best(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1500, 2))
    xor = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x[:, 0] * x[:, 1] > 0, "same", "different")})
    model = dw.auto_capacity(xor, "y", config={"model": {"hidden_layers": 1, "hidden_width": 1}}, rounds=3,
                             epochs=20, seed=0, output=tmp_path, quiet=True, track=False)
    rounds = model.rounds
    assert rounds[0]["verdict"] == "underfit"
    assert rounds[0]["applied"]["model.hidden_width"] == 2 and rounds[0]["applied"]["model.hidden_layers"] == 2
    assert len(rounds) >= 2 and sum(r["kept"] for r in rounds) == 1
    kept = next(r for r in rounds if r["kept"])
    assert kept["validation_accuracy"] == max(r["validation_accuracy"] for r in rounds)
    assert kept["validation_accuracy"] > rounds[0]["validation_accuracy"] + 0.2
    assert json.loads((model.run_dir / "auto_capacity.json").read_text()) == rounds


def test_auto_capacity_from_the_command_line(wine_csv, tmp_path):
    result = subprocess.run(DEEPWELL + ["train", str(wine_csv), "-t", "cultivar", "--auto-capacity", "--rounds", "2",
                                        "--epochs", "5", "-o", str(tmp_path), "-q", "--no-track"],
                            capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "auto-capacity rounds" in result.stdout and "fit diagnosis" in result.stdout


def test_data_size_learning_curve_of_a_run_folder(adult_csv, tmp_path):
    run = dw.train(adult_csv, "income", config={"model": {"hidden_width": 64}}, output=tmp_path, epochs=4, seed=0,
                   quiet=True)
    result = subprocess.run(DEEPWELL + ["diagnose", str(run.run_dir), "--fractions", "0.25,0.5,1"],
                            capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    curve = json.loads((run.run_dir / "data_curve.json").read_text())
    rows = [p["rows"] for p in curve["points"]]
    assert rows == sorted(rows) and rows[-1] == run.metrics.split["train"]
    assert rows[0] == pytest.approx(rows[-1] / 4, abs=2)
    assert {p["validation_rows"] for p in curve["points"]} == {run.metrics.validation.rows}  # fixed
    assert curve["conclusion"] in {"more data would help", "a larger model is needed", "enough data", "flat"}
    assert curve["conclusion"] in result.stdout
    assert (run.run_dir / "data_curve.png").is_file()
    assert curve["conclusion"] in (run.run_dir / "report.html").read_text()


def test_reading_a_data_curve():
    from deepwell.tuning.capacity import read_curve

    def point(rows, train, validation):
        return {"rows": rows, "train_error": train, "validation_error": validation, "baseline_error": 0.5,
                "validation_rows": 2000}

    still_falling = [point(1000, 0.05, 0.25), point(2000, 0.06, 0.20)]
    assert read_curve(still_falling, dw.Task.BINARY).conclusion == "more data would help"
    biased = [point(1000, 0.40, 0.41), point(2000, 0.40, 0.40)]
    assert read_curve(biased, dw.Task.BINARY).conclusion == "a larger model is needed"
    done = [point(1000, 0.02, 0.03), point(2000, 0.02, 0.025)]
    assert read_curve(done, dw.Task.BINARY).conclusion == "enough data"
    gap = [point(1000, 0.01, 0.12), point(2000, 0.01, 0.12)]
    assert read_curve(gap, dw.Task.BINARY).conclusion == "flat"


def test_tune_on_a_dataframe_run_folder_is_a_clear_error(wine_frame, tmp_path):
    run = dw.train(wine_frame, "cultivar", output=tmp_path, epochs=2, quiet=True)
    with pytest.raises(dw.DataError, match="DataFrame.*deepwell diagnose DATA --target"):
        dw.diagnose(run.run_dir)
    assert pd.read_csv(run.run_dir / "history.csv").shape[0] == 2
