"""The `deepwell` command end to end, as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

DEEPWELL = Path(sys.executable).with_name("deepwell")


def deepwell(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(DEEPWELL), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"}, timeout=300)


@pytest.fixture(scope="module")
def trained(adult_csv, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("runs")
    result = deepwell("train", adult_csv, "--target", "income", "--output", out, "--name", "cli",
                      "--epochs", "3", "--seed", "0")
    return out / "cli", result


def test_train_prints_progress_evaluation_and_run_folder(trained):
    run, result = trained
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "epochs" in out and "val loss" in out  # the progress bar
    assert "test split" in out and "baseline" in out and "accuracy" in out and "confusion matrix" in out
    assert f"run folder: {run}" in out.replace("\n", "")
    assert (run / "model" / "weights.safetensors").exists()


def test_predict_adds_prediction_and_probability_columns(trained, adult_csv, tmp_path):
    run, _ = trained
    rows = pd.read_csv(adult_csv).drop(columns="income").head(25)
    rows.to_csv(tmp_path / "new.csv", index=False)
    result = deepwell("predict", run, tmp_path / "new.csv", "-o", tmp_path / "scored.parquet")
    assert result.returncode == 0, result.stderr
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert len(scored) == 25 and set(scored["prediction"]) <= {"<=50K", ">50K"}
    assert ((scored["probability_<=50K"] + scored["probability_>50K"]) - 1).abs().max() < 1e-5
    to_stdout = deepwell("predict", run, tmp_path / "new.csv")
    assert to_stdout.stdout.splitlines()[0].endswith("prediction,probability_<=50K,probability_>50K")


def test_evaluate_and_info(trained, adult_csv):
    run, _ = trained
    evaluated = deepwell("evaluate", run, adult_csv, "--sensitive", "sex")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "2000 rows" in evaluated.stdout and "baseline" in evaluated.stdout
    assert "Model by sex (privileged: Male)" in evaluated.stdout and "disparate_impact_ratio" in evaluated.stdout
    info = deepwell("info", run)
    assert info.returncode == 0, info.stderr
    assert "binary model predicting income" in info.stdout and "workclass" in info.stdout


def test_describe_and_init_config_round_trip(adult_csv, tmp_path):
    described = deepwell("describe", adult_csv, "--target", "income")
    assert described.returncode == 0, described.stderr
    assert "category" in described.stdout and "target (binary)" in described.stdout
    written = deepwell("init-config", adult_csv, "--target", "income", "-o", tmp_path / "c.yaml")
    assert written.returncode == 0, written.stderr
    config = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert config["target"] == "income" and config["columns"]["age"]["type"] == "number"
    config["columns"]["education_num"]["type"] = "category"  # edit, then train with it
    config["training"]["epochs"] = 1
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    trained = deepwell("train", adult_csv, "--config", tmp_path / "c.yaml", "-o", tmp_path, "--name", "edited",
                       "-q")
    assert trained.returncode == 0, trained.stderr
    resolved = yaml.safe_load((tmp_path / "edited" / "config.yaml").read_text())
    assert resolved["columns"]["education_num"]["type"] == "category"


@pytest.mark.parametrize("args, message", [
    (["train", "missing.csv", "--target", "y"], "missing.csv: file does not exist"),
    (["predict", "no-such-run", "x.csv"], "no such model or run folder"),
    (["train", "{adult}", "--target", "incme"], "Did you mean 'income'"),
])
def test_bad_input_exits_2_with_a_message_and_no_traceback(args, message, adult_csv, tmp_path):
    result = deepwell(*[a.format(adult=adult_csv) for a in args], cwd=tmp_path)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path):
    result = deepwell("train", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_folder_of_class_folders_needs_no_target(tmp_path):
    from deepwell.sample_data import write_digits

    root = write_digits(tmp_path / "digits", per_class=8)
    described = deepwell("describe", root)
    assert described.returncode == 0, described.stderr
    assert "image" in described.stdout and "80 rows" in described.stdout
    trained = deepwell("train", root, "--epochs", "1", "-o", tmp_path / "runs", "--name", "folder", "-q")
    assert trained.returncode == 0, trained.stderr
    assert "multiclass model for label" in " ".join(trained.stdout.split())
    predicted = deepwell("predict", tmp_path / "runs" / "folder", root / "3")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.splitlines()[0].startswith("image,prediction,probability_0")
    assert len(predicted.stdout.splitlines()) == 1 + 8


def test_help_shows_flags_without_placeholders_and_says_folders_work():
    result = deepwell("train", "--help")
    assert result.returncode == 0 and "<bool>" not in result.stdout
    assert "folder of class" in result.stdout and "--threads" in result.stdout


def test_init_config_shows_only_the_options_of_each_columns_type(adult_csv, tmp_path):
    written = deepwell("init-config", adult_csv, "--target", "income")
    config = yaml.safe_load(written.stdout)
    assert not [name for name, column in config["columns"].items() if {"text", "image", "audio"} & set(column)]


def test_numbers_print_without_a_negative_zero():
    from deepwell.cli.render import _fmt

    assert _fmt(-1e-17) == "0.0000" and _fmt(-0.25) == "-0.2500" and _fmt(None) == "—"


def test_make_test_says_what_it_installs_before_installing():
    recipe = (Path(__file__).resolve().parents[1] / "Makefile").read_text().split("system-packages:\n", 1)[1]
    assert recipe.index("espeak-ng (the audio tests") < recipe.index("apt-get install")
