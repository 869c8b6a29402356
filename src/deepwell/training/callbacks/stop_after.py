"""Stop after a fixed number of epochs without shortening the schedule: the learning rate follows the configured
epochs, so the first epochs are the same as those of a full training (a race between candidates uses it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepwell.training.callbacks.base import Callback
from deepwell.training.state import StopReason

if TYPE_CHECKING:
    from deepwell.training.state import EpochResult
    from deepwell.training.trainer import Trainer


class StopAfter(Callback):
    def __init__(self, epochs: int) -> None:
        if epochs < 1:
            raise ValueError(f"StopAfter needs at least 1 epoch, got {epochs}")
        self.epochs = epochs

    def on_epoch_end(self, trainer: Trainer, epoch: EpochResult) -> None:
        if epoch.epoch >= self.epochs:
            trainer.stop(StopReason.EPOCH_LIMIT)
