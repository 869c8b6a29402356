"""The trainer and each callback on tiny tensors (fast; no files but a checkpoint, no run folder)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from rich.console import Console

from deepwell.config import ModelConfig, TrainingConfig
from deepwell.models.network import TabularNetwork
from deepwell.task import Task
from deepwell.tracking.callback import TrackEpochs
from deepwell.training.callbacks import Callback, Checkpoint, EarlyStopping, ProgressBar
from deepwell.training.state import StopReason
from deepwell.training.trainer import TensorData, Trainer
from deepwell.tuning.pruning import PruneTrial


def tiny_data(rows: int = 96, seed: int = 0) -> tuple[TensorData, TensorData]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 3, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorData({"numeric": x[:64]}, y[:64]), TensorData({"numeric": x[64:]}, y[64:])


def trainer(callbacks=(), epochs: int = 6, batch_size: int = 16, **training) -> Trainer:
    torch.manual_seed(0)
    network = TabularNetwork({"numeric": {"kind": "numeric", "width": 3}},
                             ModelConfig(hidden_layers=1, hidden_width=16, numeric_embedding="none"), 2)
    config = TrainingConfig(epochs=epochs, batch_size=batch_size, seed=0, device="cpu", **training)

    def accuracy(outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
        return {"accuracy": float((outputs.argmax(axis=1) == y).mean())}

    return Trainer(network, Task.BINARY, config, accuracy, callbacks=list(callbacks))


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_fit_start(self, trainer):
        self.calls.append("fit_start")

    def on_train_batch_end(self, trainer, step):
        self.calls.append("batch")

    def on_epoch_end(self, trainer, epoch):
        self.calls.append(f"epoch {epoch.epoch}")

    def on_interrupt(self, trainer):
        self.calls.append("interrupt")

    def on_fit_end(self, trainer, result):
        self.calls.append("fit_end")


def test_hooks_are_called_in_order_and_the_best_epoch_is_kept():
    recorder = Recorder()
    train, validation = tiny_data()
    fit = trainer([recorder], epochs=3)
    result = fit.fit(train, validation)
    assert recorder.calls[0] == "fit_start" and recorder.calls[-1] == "fit_end"
    assert [c for c in recorder.calls if c.startswith("epoch")] == ["epoch 1", "epoch 2", "epoch 3"]
    assert recorder.calls.count("batch") == 3 * 4  # 64 rows in batches of 16
    assert result.stop_reason == StopReason.MAX_EPOCHS and len(result.history) == 3
    best = min(result.history, key=lambda e: e.validation["loss"])
    assert result.best_epoch == best.epoch and result.best_value == pytest.approx(best.validation["loss"])
    assert list(result.history_frame().columns) == ["epoch", "lr", "train_loss", "train_accuracy", "val_loss",
                                                    "val_accuracy", "seconds"]


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    train, validation = tiny_data()
    # a learning rate this small changes nothing the monitor can see: every epoch after the first is "no better"
    fit = trainer([EarlyStopping(patience=2)], epochs=20, learning_rate=1e-9, average_epochs=0)
    result = fit.fit(train, validation)
    assert result.stop_reason == StopReason.EARLY_STOPPING
    assert len(result.history) == result.best_epoch + 2


class Interrupt(Callback):
    def on_epoch_end(self, trainer, epoch):
        if epoch.epoch == 2:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_best_weights_and_calls_the_interrupt_hook():
    recorder = Recorder()
    train, validation = tiny_data()
    result = trainer([Interrupt(), recorder], epochs=6).fit(train, validation)
    assert result.stop_reason == StopReason.INTERRUPTED and len(result.history) == 2
    assert recorder.calls[-2:] == ["interrupt", "fit_end"]


def test_a_checkpointed_run_resumes_exactly(tmp_path):
    train, validation = tiny_data()
    whole = trainer([EarlyStopping(patience=50)], epochs=6).fit(train, validation)
    path = tmp_path / "checkpoint.safetensors"
    trainer([EarlyStopping(patience=50), Interrupt(), Checkpoint(path)], epochs=6).fit(train, validation)
    resumed_trainer = trainer([EarlyStopping(patience=50), Checkpoint(path)], epochs=6)
    resumed = resumed_trainer.fit(train, validation, resume_from=path)
    assert [e.row() | {"seconds": 0} for e in resumed.history] == [e.row() | {"seconds": 0} for e in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    assert resumed_trainer.callbacks[0].bad_epochs == 6 - whole.best_epoch  # the callback's state came back


def test_progress_bar_shows_epochs_and_the_metric():
    buffer = io.StringIO()
    bar = ProgressBar("accuracy", Console(file=buffer, width=200))
    train, validation = tiny_data()
    trainer([bar], epochs=2).fit(train, validation)
    assert bar.display is None  # closed at fit end
    assert "val accuracy" in buffer.getvalue() and "epochs" in buffer.getvalue()


def test_progress_lines_stay_narrower_than_a_narrow_terminal():
    """A line as wide as the terminal lets the echoed "^C" wrap it, and the last redraw then prints it twice."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=50, force_terminal=True, color_system=None)
    train, validation = tiny_data()
    trainer([ProgressBar("accuracy", console)], epochs=2).fit(train, validation)
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue()).replace("\r", "\n").splitlines()
    assert lines[-2].startswith("epochs") and "2/2" in lines[-2] and "val loss" in lines[-1]
    assert max(len(line) for line in lines) <= 48


def test_a_ctrl_c_swallowed_elsewhere_still_stops_training(monkeypatch):
    """Python ignores a KeyboardInterrupt raised inside a garbage-collection callback; the noted one is
    raised again at the next batch."""
    from deepwell import runtime

    class Swallowed(Callback):
        def on_train_batch_end(self, trainer, step):
            if trainer.epochs_done == 1 and step == 0:
                monkeypatch.setitem(runtime._interrupts, "pending", True)  # as the signal handler notes it

    result = trainer([Swallowed()], epochs=6).fit(*tiny_data())
    assert result.stop_reason == StopReason.INTERRUPTED and len(result.history) == 1
    assert not runtime.interrupt_pending()  # handled


def test_tracking_logs_each_epoch_row():
    class Tracker:
        rows: list[dict] = []

        def log_epoch(self, row):
            self.rows.append(row)

    tracker = Tracker()
    train, validation = tiny_data()
    trainer([TrackEpochs(tracker)], epochs=3).fit(train, validation)
    assert [row["epoch"] for row in tracker.rows] == [1, 2, 3] and "val_loss" in tracker.rows[0]


def test_pruning_stops_the_training_as_pruned():
    class Trial:
        reported: list[tuple[float, int]] = []

        def report(self, value, step):
            self.reported.append((value, step))

        def should_prune(self):
            return len(self.reported) == 2

    trial = Trial()
    train, validation = tiny_data()
    result = trainer([PruneTrial(trial, "accuracy")], epochs=6).fit(train, validation)
    assert result.stop_reason == StopReason.PRUNED and len(result.history) == 2
    assert [step for _, step in trial.reported] == [1, 2]


def test_row_weights_change_the_loss_and_zero_weights_ignore_rows():
    train, validation = tiny_data()
    weight = torch.ones(len(train))
    weight[:32] = 0.0
    weighted = TensorData(train.inputs, train.target, weight)
    only_second_half = TensorData({"numeric": train.inputs["numeric"][32:]}, train.target[32:])
    a, b = trainer(epochs=1), trainer(epochs=1)
    a.network.eval()
    b.network.eval()
    with torch.no_grad():
        loss_a = a._loss(a.network(weighted.inputs), weighted.target, weighted.weight)
        loss_b = b._loss(b.network(only_second_half.inputs), only_second_half.target, None)
    assert float(loss_a) == pytest.approx(float(loss_b), rel=1e-5)


def test_stop_after_ends_at_its_epoch_on_the_full_schedule():
    from deepwell.training.callbacks import StopAfter

    train, validation = tiny_data()
    short = trainer([StopAfter(2)], epochs=10).fit(train, validation)
    full = trainer([], epochs=10).fit(train, validation)
    assert short.stop_reason == StopReason.EPOCH_LIMIT and len(short.history) == 2
    # the learning rate follows the ten-epoch schedule, so the two epochs are those of the full training
    assert [e.lr for e in short.history] == [e.lr for e in full.history[:2]]
    losses = [e.validation["loss"] for e in full.history[:2]]
    assert [e.validation["loss"] for e in short.history] == pytest.approx(losses)
    with pytest.raises(ValueError, match="at least 1 epoch, got 0"):
        StopAfter(0)
