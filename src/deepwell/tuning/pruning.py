"""Optuna pruning as a training callback: report each epoch's validation metric to the trial and stop the
training (stop reason `pruned`) when the pruner says the trial is hopeless."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepwell.training.callbacks.base import Callback
from deepwell.training.state import StopReason

if TYPE_CHECKING:
    from deepwell.training.state import EpochResult
    from deepwell.training.trainer import Trainer


class PruneTrial(Callback):
    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_epoch_end(self, trainer: Trainer, epoch: EpochResult) -> None:
        self.trial.report(epoch.value(self.metric), epoch.epoch)
        if self.trial.should_prune():
            trainer.stop(StopReason.PRUNED)
