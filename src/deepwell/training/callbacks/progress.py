"""The progress display as a callback: an epoch bar with the latest losses and metric, and a batch bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from deepwell.training.callbacks.base import Callback
from deepwell.training.progress import EpochProgress
from deepwell.training.state import StopReason

if TYPE_CHECKING:
    from deepwell.training.state import EpochResult, FitResult
    from deepwell.training.trainer import Trainer


class ProgressBar(Callback):
    def __init__(self, metric: str, console: Console | None = None) -> None:
        self.metric, self.console = metric, console
        self.display: EpochProgress | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.display = EpochProgress(trainer.config.epochs, trainer.steps_per_epoch, self.metric, enabled=True,
                                     console=self.console)
        self.display.__enter__()
        self.display.start(trainer.epochs_done)

    def on_train_batch_end(self, trainer: Trainer, step: int) -> None:
        self.display.step()

    def on_epoch_end(self, trainer: Trainer, epoch: EpochResult) -> None:
        self.display.end_epoch(epoch.row(), epoch.improved)

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        if self.display is not None:
            if result.stop_reason != StopReason.INTERRUPTED:  # an interrupted run shows how far it got
                self.display.finish(trainer.epochs_done)
            self.display.__exit__(None, None, None)
            self.display = None
