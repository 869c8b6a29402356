"""Training: determinism, early stopping with best weights, crash-safe resume, Ctrl-C, save → load."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors import safe_open

import deepwell as dw
from deepwell.training.trainer import auto_batch_size

DEEPWELL = [sys.executable, "-m", "deepwell.cli.main"]
SLOW_CONFIG = {"model": {"hidden_layers": 4, "hidden_width": 512}, "training": {"epochs": 10, "seed": 5}}


def checkpoint_epoch(path: Path) -> int:
    try:
        with safe_open(str(path), framework="np") as f:
            return json.loads(f.metadata()["trainer"])["epoch"]
    except Exception:  # absent, or being replaced at this instant
        return 0


def start_and_wait(args: list[str], checkpoint: Path, epoch: int) -> subprocess.Popen:
    """Start a training subprocess and return once its checkpoint has reached `epoch`."""
    # Ctrl-C's default handling, even when the tests run as a background job (which ignores SIGINT)
    process = subprocess.Popen(DEEPWELL + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while checkpoint_epoch(checkpoint) < epoch:
        assert process.poll() is None, f"training ended before epoch {epoch}: {process.stderr.read()}"
        assert time.time() < deadline, "training did not reach the epoch in time"
        time.sleep(0.01)
    return process


def without_time(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns="seconds")


@pytest.fixture()
def slow_config(adult_csv, tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"target": "income", **SLOW_CONFIG}))
    return path


def test_same_seed_same_model(breast_cancer_csv, tmp_path):
    a = dw.train(breast_cancer_csv, target="diagnosis", output=tmp_path, epochs=3, seed=1, quiet=True)
    b = dw.train(breast_cancer_csv, target="diagnosis", output=tmp_path, epochs=3, seed=1, quiet=True)
    c = dw.train(breast_cancer_csv, target="diagnosis", output=tmp_path, epochs=3, seed=2, quiet=True)
    rows = pd.read_csv(breast_cancer_csv)
    np.testing.assert_array_equal(a.predict_proba(rows), b.predict_proba(rows))
    assert not np.array_equal(a.predict_proba(rows), c.predict_proba(rows))


def test_early_stopping_keeps_the_best_epoch(adult_csv, tmp_path):
    config = {"target": "income", "training": {"epochs": 40, "patience": 2, "learning_rate": 0.01}}
    model = dw.train(adult_csv, config=config, output=tmp_path, quiet=True)
    history = pd.read_csv(model.run_dir / "history.csv")
    info = model.metrics.training
    assert info.stop_reason == "early stopping" and len(history) < 40
    assert len(history) == info.best_epoch + 2  # stopped after `patience` epochs without improvement
    best = history["val_loss"].idxmin()
    assert info.best_epoch == best + 1
    # the saved weights are the best epoch's, not the last epoch's
    assert model.metrics.validation.model["log_loss"] == pytest.approx(history["val_loss"][best], abs=1e-4)


def test_resume_after_sigkill_matches_an_uninterrupted_run(adult_csv, slow_config, tmp_path):
    runs = tmp_path / "runs"
    whole = dw.train(adult_csv, config=slow_config, output=runs, name="whole", quiet=True)
    killed = runs / "killed"
    process = start_and_wait(["train", str(adult_csv), "--config", str(slow_config), "-o", str(runs),
                              "--name", "killed", "-q"], killed / "checkpoint.safetensors", epoch=3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = checkpoint_epoch(killed / "checkpoint.safetensors")
    assert 3 <= interrupted_at < 10, "the run must be killed mid-training for this test to mean anything"
    assert json.loads((killed / "run.json").read_text())["status"] == "running"
    assert not (killed / "metrics.json").exists()

    resumed = dw.train(resume=killed, quiet=True)
    assert json.loads((killed / "run.json").read_text())["status"] == "finished"
    assert resumed.metrics.test == whole.metrics.test
    assert resumed.metrics.training.best_epoch == whole.metrics.training.best_epoch
    pd.testing.assert_frame_equal(without_time(pd.read_csv(killed / "history.csv")),
                                  without_time(pd.read_csv(whole.run_dir / "history.csv")))


def test_ctrl_c_stops_cleanly_and_keeps_the_best_model(adult_csv, slow_config, tmp_path):
    run = tmp_path / "runs" / "stopped"
    process = start_and_wait(["train", str(adult_csv), "--config", str(slow_config), "-o", str(tmp_path / "runs"),
                              "--name", "stopped", "-q"], run / "checkpoint.safetensors", epoch=2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr  # the shell convention for Ctrl-C: scripts can tell
    assert "interrupted" in stderr and "--resume" in stderr
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["stop_reason"] == "interrupted"
    assert metrics["training"]["epochs_run"] < 10
    assert dw.load(run).predict(pd.read_csv(adult_csv).head(5)).shape == (5,)
    finished = dw.train(resume=run, quiet=True)  # and the run can be continued to the end
    assert finished.metrics.training.epochs_run == 10


def test_resume_refuses_changed_data(adult_csv, tmp_path):
    data = tmp_path / "data.csv"
    data.write_bytes(adult_csv.read_bytes())
    model = dw.train(data, target="income", output=tmp_path, epochs=1, quiet=True)
    with data.open("a") as f:
        f.write(pd.read_csv(adult_csv).head(1).to_csv(header=False, index=False))
    with pytest.raises(dw.DataError, match="changed since run"):
        dw.train(resume=model.run_dir, quiet=True)


def test_save_load_gives_identical_predictions_and_no_pickle(adult_csv, tmp_path):
    model = dw.train(adult_csv, target="income", output=tmp_path, epochs=2, quiet=True)
    rows = pd.read_csv(adult_csv).head(300)
    folder = model.save(tmp_path / "saved")
    loaded = dw.load(folder)
    np.testing.assert_array_equal(model.predict_proba(rows), loaded.predict_proba(rows))
    np.testing.assert_array_equal(model.predict(rows), loaded.predict(rows))
    from_run = dw.load(model.run_dir)
    np.testing.assert_array_equal(from_run.predict_proba(rows), loaded.predict_proba(rows))
    assert from_run.metrics == model.metrics
    assert loaded.metrics == model.metrics and loaded.diagnosis == model.diagnosis  # they travel with the model
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["architecture.json", "diagnosis.json", "meta.json", "metrics.json", "preprocessor.json",
                     "reference.json", "weights.safetensors"]
    assert loaded.reference.to_dict() == model.reference.to_dict()
    for path in folder.iterdir():  # nothing a pickle-based loader could execute
        assert b"\x80\x04" not in path.read_bytes()[:2] and path.suffix not in {".pkl", ".pt", ".bin"}


def test_run_folder_layout(adult_csv, tmp_path):
    model = dw.train(adult_csv, target="income", output=tmp_path, name="layout", epochs=2, quiet=True)
    run = model.run_dir
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "run.json", "model", "checkpoint.safetensors",
                                               "history.csv", "metrics.json", "predictions.csv"}
    config = dw.Config.from_yaml(run / "config.yaml")  # the resolved config trains again as it is
    assert config.columns["workclass"].type == "category" and config.training.batch_size == auto_batch_size(1400)
    predictions = pd.read_csv(run / "predictions.csv")
    assert len(predictions) == model.metrics.split["test"]
    assert {"prediction", "probability_<=50K", "probability_>50K", "income"} <= set(predictions.columns)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(history.columns)


def test_balanced_class_weights_raise_minority_recall(adult_csv, tmp_path):
    def recall_of_minority(weighting: str) -> float:
        config = {"target": "income", "training": {"epochs": 3, "class_weight": weighting}}
        model = dw.train(adult_csv, config=config, output=tmp_path, quiet=True)
        return model.metrics.test.model["per_class"][">50K"]["recall"]

    assert recall_of_minority("balanced") > recall_of_minority("none") + 0.05


def test_cuda_request_without_gpu_is_a_clear_error(breast_cancer_csv, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(dw.ConfigError, match="no CUDA GPU"):
        dw.train(breast_cancer_csv, config={"target": "diagnosis", "training": {"device": "cuda"}},
                 output=tmp_path, quiet=True)


def test_weight_average_follows_the_weights_and_is_only_applied_inside_the_block():
    import torch
    from torch import nn

    from deepwell.training.trainer import WeightAverage

    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in network.state_dict().items()}
    average = WeightAverage(network, horizon_steps=4)  # decay 0.75 once warmed up
    for _ in range(40):
        with torch.no_grad():
            network[0].weight.add_(1.0)
        network(torch.randn(8, 3))  # moves the batch-norm running statistics
        average.update()
    own = network[0].weight.detach().clone()
    averaged = average.state["0.weight"]
    # the average lags the weights (which grew by 1 per step) by about decay / (1 - decay) = 3 steps
    lag = (own - averaged).mean().item()
    assert 2.5 < lag < 3.5
    assert not torch.equal(average.state["1.running_mean"], start["1.running_mean"])
    assert int(average.state["1.num_batches_tracked"]) == 40
    with average.applied():
        assert torch.equal(network[0].weight, averaged)
    assert torch.equal(network[0].weight, own)


def test_saved_model_holds_the_averaged_weights_and_averaging_can_be_turned_off(breast_cancer_csv, tmp_path):
    common = {"target": "diagnosis", "model": {"hidden_layers": 1, "hidden_width": 16},
              "training": {"epochs": 4, "patience": 4}}
    averaged = dw.train(breast_cancer_csv, config=common, output=tmp_path, quiet=True)
    raw = dw.train(breast_cancer_csv, config={**common, "training": {**common["training"], "average_epochs": 0}},
                   output=tmp_path, quiet=True)
    saved = yaml.safe_load((averaged.run_dir / "config.yaml").read_text())
    assert saved["training"]["average_epochs"] == 1.0
    frame = pd.read_csv(breast_cancer_csv).drop(columns="diagnosis").head(50)
    assert not np.allclose(averaged.predict_proba(frame), raw.predict_proba(frame))


def test_mixed_precision_on_the_cpu_trains_in_bfloat16_only_where_native_and_asked(monkeypatch):
    import torch

    from deepwell.config import ModelConfig, TrainingConfig
    from deepwell.models.network import TabularNetwork
    from deepwell.task import Task
    from deepwell.training import trainer as trainer_module
    from deepwell.training.trainer import TensorData, Trainer

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(512, 4, generator=generator)
    y = (x[:, 0] - x[:, 1] > 0).long()
    train, validation = TensorData({"numeric": x[:384]}, y[:384]), TensorData({"numeric": x[384:]}, y[384:])

    def fitted(setting, native: bool) -> Trainer:
        monkeypatch.setattr(trainer_module, "native_cpu_bfloat16", lambda: native)
        torch.manual_seed(0)
        network = TabularNetwork({"numeric": {"kind": "numeric", "width": 4}},
                                 ModelConfig(hidden_layers=1, hidden_width=32, numeric_embedding="none"), 2)
        config = TrainingConfig(epochs=8, batch_size=32, seed=0, device="cpu", mixed_precision=setting)
        accuracy = lambda p, t: {"accuracy": float((p.argmax(1) == t).mean())}  # noqa: E731
        trainer = Trainer(network, Task.BINARY, config, accuracy)
        trainer.fit(train, validation)
        return trainer

    assert fitted("always", native=False).amp_dtype is None  # emulated bfloat16 would be slower: float32
    assert fitted("auto", native=True).amp_dtype is None  # auto: CUDA only
    assert fitted(True, native=True).amp_dtype is None  # an older config's true is auto
    assert TrainingConfig(mixed_precision=False).mixed_precision == "never"
    # (autocast emulates bfloat16 where the CPU lacks it: the same numbers, slower)
    bf16 = fitted("always", native=True)
    assert bf16.amp_dtype == torch.bfloat16
    # the weights and their checkpoints stay float32, and it learns as float32 does
    assert all(p.dtype == torch.float32 for p in bf16.network.parameters())
    full = fitted("never", native=True)
    assert bf16.result.history[-1].validation["accuracy"] >= 0.9
    assert abs(bf16.result.history[-1].validation["accuracy"] - full.result.history[-1].validation["accuracy"]) < 0.05
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainingConfig(mixed_precision="sometimes")
