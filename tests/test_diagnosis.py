"""Fit diagnosis after every run: underfit, overfit, good fit, not converged, stopped too early — with evidence
and prescriptions, and the classical reference it is judged against."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import deepwell as dw
from deepwell.evaluation.diagnosis import sampling_noise


@pytest.fixture(scope="module")
def xor() -> pd.DataFrame:
    """A non-linear problem: the label is the sign of a·b, which no additive model can express."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2000, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.where(x[:, 0] * x[:, 1] > 0, "same", "different")})


@pytest.fixture(scope="module")
def noisy_small() -> pd.DataFrame:
    """150 rows, 20 features, one informative, 30% of labels flipped."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(150, 20))
    label = (features[:, 0] > 0) ^ (rng.random(150) < 0.3)
    return pd.DataFrame(features, columns=[f"f{i}" for i in range(20)]).assign(y=np.where(label, "yes", "no"))


def train(frame: pd.DataFrame, tmp_path, **config) -> dw.Model:
    return dw.train(frame, config={"target": "y", **config}, output=tmp_path, seed=0, quiet=True)


def test_a_one_unit_network_on_xor_is_underfit_and_told_to_grow(xor, tmp_path):
    model = train(xor, tmp_path, model={"hidden_layers": 1, "hidden_width": 1}, training={"epochs": 20})
    diagnosis = model.diagnosis
    assert diagnosis.verdict == "underfit"
    assert diagnosis.evidence["train_skill_over_baseline"] < 0.2
    # gradient boosting shows what is achievable on these inputs: far below the network's training error
    assert diagnosis.evidence["reference_validation_error"] < 0.1 < 0.4 < diagnosis.evidence["train_error"]
    assert "simple reference model" in diagnosis.summary and diagnosis.evidence["reference"].startswith("gradient")
    assert abs(diagnosis.evidence["gap"]) < 2 * diagnosis.evidence["expected_noise"]
    changes = {p.setting: (p.current, p.to) for p in diagnosis.prescriptions}
    assert changes["model.hidden_width"] == (1, 2) and changes["model.hidden_layers"] == (1, 2)


def test_a_large_unregularised_network_on_small_noisy_data_is_overfit(noisy_small, tmp_path):
    model = train(noisy_small, tmp_path, model={"hidden_layers": 3, "hidden_width": 512, "dropout": 0.0},
                  training={"epochs": 60, "patience": 60, "weight_decay": 0.0, "average_epochs": 0})
    diagnosis = model.diagnosis
    assert diagnosis.verdict == "overfit", diagnosis.summary
    assert diagnosis.evidence["validation_loss_rise_from_minimum"] > 1.0
    changes = {p.setting: (p.current, p.to) for p in diagnosis.prescriptions}
    assert changes["model.dropout"] == (0.0, 0.2) and changes["model.hidden_width"] == (512, 256)
    assert changes["training.weight_decay"][1] > 0
    assert any(p.setting is None and "more training data" in p.why for p in diagnosis.prescriptions)


def test_a_sensible_configuration_is_a_good_fit(breast_cancer_csv, tmp_path):
    model = dw.train(breast_cancer_csv, "diagnosis", config={"model": {"hidden_width": 64}}, output=tmp_path,
                     epochs=30, seed=0, quiet=True)
    assert model.diagnosis.verdict == "good fit", model.diagnosis.summary
    assert model.diagnosis.prescriptions == []
    assert model.metrics.reference.model["accuracy"] > 0.9


def test_noisy_data_at_the_reference_level_is_not_called_underfit(diabetes_frame, tmp_path):
    """Diabetes progression is mostly noise: the network removes little of the baseline's error, but no more
    is achievable (the reference does no better), so growing the network is not the prescription."""
    model = dw.train(diabetes_frame, "progression", output=tmp_path, epochs=30, seed=0, quiet=True)
    evidence = model.diagnosis.evidence
    assert evidence["train_skill_over_baseline"] < 0.5  # would have read as high bias without the reference
    assert model.diagnosis.verdict != "underfit", model.diagnosis.summary


def test_text_is_judged_against_tfidf_and_a_linear_model(sms_csv, tmp_path):
    """Three epochs of the bag of tokens on 300 messages: TF-IDF + logistic regression, fitted on the same
    tokens, is the yardstick — and the summary says when it beats the network, and by how much."""
    sample = pd.read_csv(sms_csv).head(300)
    model = dw.train(sample, "label", output=tmp_path, epochs=3, seed=0, quiet=True)
    reference = model.metrics.reference
    assert reference.model["learner"] == "logistic regression on TF-IDF of the tokens"
    assert reference.model["accuracy"] > model.metrics.validation.baseline["accuracy"]
    evidence = model.diagnosis.evidence
    if evidence["reference_validation_error"] < evidence["validation_error"] - evidence["expected_noise"]:
        assert evidence["reference_beats_network_by"] > 0
        assert "A simple model beats the network here" in model.diagnosis.summary


def test_inputs_the_reference_cannot_read_fall_back_to_the_baseline_rule():
    from deepwell.evaluation.reference import reference_scores

    tokens = {"t": np.ones((10, 4), dtype=np.int64)}
    specs = {"t": {"kind": "pretrained_text", "model": "folder"}}
    y = np.arange(10) % 2
    assert reference_scores(specs, tokens, y, tokens, y, dw.Task.BINARY, 2, lambda o, t: {}) is None


def stopped_after(epochs: int, train_losses: list[float], validation_rows: int = 54):
    """A history and metrics as a run early-stopped at `epochs` would leave them (high training error)."""
    from deepwell.evaluation.results import RunMetrics

    history = pd.DataFrame({"epoch": range(1, epochs + 1), "train_loss": train_losses,
                            "val_loss": np.linspace(1.2, 1.0, epochs) + 0.05 * np.sin(np.arange(epochs))})
    metrics = RunMetrics.from_dict({
        "task": "multiclass", "target": "word",
        "train": {"rows": 240, "model": {"accuracy": 0.64}, "baseline": {"accuracy": 0.1}},
        "validation": {"rows": validation_rows, "model": {"accuracy": 0.55}, "baseline": {"accuracy": 0.1}},
        "training": {"best_epoch": epochs - 8, "epochs_run": epochs, "stop_reason": "early stopping",
                     "seconds": 10, "parameters": 1000, "batch_size": 32, "device": "cpu"},
        "reference": {"rows": validation_rows, "model": {"learner": "logistic regression on log-mel statistics",
                                                         "accuracy": 0.91}}})
    config = {"training": {"patience": 8, "epochs": 60, "weight_decay": 0.01},
              "split": {"train": 0.7, "validation": 0.15, "column": None, "validation_file": None},
              "model": {"hidden_width": 256, "hidden_layers": 3, "dropout": 0.2}}
    return history, metrics, config


def test_a_run_stopped_while_still_learning_fast_is_stopped_too_early_not_underfit():
    from deepwell.evaluation.diagnosis import diagnose

    history, metrics, config = stopped_after(16, list(np.geomspace(2.3, 1.0, 16)))  # -5% per epoch
    diagnosis = diagnose(history, metrics, config)
    assert diagnosis.verdict == "stopped too early", diagnosis.summary
    assert "54 validation rows" in diagnosis.summary and "not a larger network" in diagnosis.summary
    changes = {p.setting: (p.current, p.to) for p in diagnosis.prescriptions}
    assert changes["training.patience"] == (8, 24) and changes["training.epochs"] == (60, 120)
    assert changes["split.validation"] == (0.15, 0.3) and changes["split.train"] == (0.7, 0.55)
    assert "model.hidden_width" not in changes
    # the simple model's lead is named, with its size
    assert diagnosis.evidence["reference_beats_network_by"] == pytest.approx(0.36)
    assert "36.0 points of accuracy better" in diagnosis.summary


def test_a_test_split_far_worse_than_validation_is_named_and_one_within_noise_is_not():
    from deepwell.evaluation.diagnosis import diagnose
    from deepwell.evaluation.results import SplitScores

    # the demo's digits: later writers in the test folder, validation 0.9963 of 269 rows, test 0.9511 of 266
    history, metrics, config = stopped_after(16, list(np.geomspace(2.3, 1.0, 16)), validation_rows=269)
    metrics.validation = SplitScores(269, {"accuracy": 0.9963}, {"accuracy": 0.1})
    metrics.test = SplitScores(266, {"accuracy": 0.9511}, {"accuracy": 0.1})
    diagnosis = diagnose(history, metrics, config)
    assert diagnosis.evidence["test_error"] == pytest.approx(0.0489)
    assert diagnosis.evidence["test_gap_in_noise_units"] == pytest.approx(3.3, abs=0.1)
    assert "The test split's error (0.0489) is 0.0452 above validation's (0.0037)" in diagnosis.summary
    assert "266 test and 269 validation rows" in diagnosis.summary
    metrics.test = SplitScores(266, {"accuracy": 0.968}, {"accuracy": 0.1})  # 2.5 noise units: chance can do it
    diagnosis = diagnose(history, metrics, config)
    assert diagnosis.evidence["test_gap_in_noise_units"] == pytest.approx(2.5, abs=0.05)
    assert "test split" not in diagnosis.summary
    metrics.test = None
    assert "test_error" not in diagnose(history, metrics, config).evidence


def test_a_regression_test_rmse_above_validation_is_not_called_a_shift():
    """A few outliers among the test rows move an RMSE far beyond its normal-residual noise: not judged."""
    from deepwell.evaluation.diagnosis import diagnose
    from deepwell.evaluation.results import RunMetrics, SplitScores

    history, metrics, config = stopped_after(16, list(np.geomspace(2.3, 1.0, 16)))
    scores = {"train": SplitScores(398, {"rmse": 2.0}, {"rmse": 9.0}),
              "validation": SplitScores(76, {"rmse": 3.0}, {"rmse": 9.0}),
              "test": SplitScores(76, {"rmse": 4.3}, {"rmse": 9.0})}  # boston: test RMSE 2.0–4.3 over its five splits
    regression = RunMetrics(task=dw.Task.REGRESSION, target="value", training=metrics.training, **scores)
    diagnosis = diagnose(history, regression, config)
    assert "test split" not in diagnosis.summary and "test_error" not in diagnosis.evidence


def test_a_run_whose_training_loss_has_flattened_is_still_underfit():
    from deepwell.evaluation.diagnosis import diagnose

    history, metrics, config = stopped_after(16, [2.3] * 4 + [1.5] * 12)
    assert diagnose(history, metrics, config).verdict == "underfit"


def test_a_budget_too_short_is_not_converged(xor, tmp_path):
    model = train(xor, tmp_path, training={"epochs": 3, "learning_rate": 1e-4})
    diagnosis = model.diagnosis
    assert diagnosis.verdict == "not converged"
    assert diagnosis.evidence["validation_loss_change_per_epoch_at_end"] < 0
    assert [(p.setting, p.to) for p in diagnosis.prescriptions] == [("training.epochs", 6)]


def test_diagnosis_is_saved_plotted_reloaded_and_printed(breast_cancer_csv, tmp_path):
    result = subprocess.run([sys.executable, "-m", "deepwell.cli.main", "train", str(breast_cancer_csv), "-t",
                             "diagnosis", "-o", str(tmp_path), "--name", "r", "--epochs", "3", "-q"],
                            capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    run = tmp_path / "r"
    saved = json.loads((run / "diagnosis.json").read_text())
    assert f"fit diagnosis: {saved['verdict']}" in result.stdout
    assert (run / "learning_curves.png").stat().st_size > 5_000
    assert dw.load(run).diagnosis.verdict == saved["verdict"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["rows"] == metrics["split"]["train"]  # training rows re-scored in eval mode
    assert saved["evidence"]["train_error"] == pytest.approx(1 - metrics["train"]["model"]["accuracy"], abs=1e-4)
    assert "<strong" in (run / "report.html").read_text().split('id="diagnosis"')[1].split("</section>")[0]


def test_sampling_noise_shrinks_with_the_square_root_of_rows():
    assert sampling_noise(dw.Task.BINARY, 0.1, 100) == pytest.approx(0.03)
    assert sampling_noise(dw.Task.BINARY, 0.1, 400) == pytest.approx(0.015)
    assert sampling_noise(dw.Task.REGRESSION, 2.0, 50) == pytest.approx(0.2)
