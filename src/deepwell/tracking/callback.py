"""Each epoch's history row logged to MLflow as it ends (step = epoch), so runs can be watched live."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepwell.training.callbacks.base import Callback

if TYPE_CHECKING:
    from deepwell.tracking.tracker import MlflowTracker
    from deepwell.training.state import EpochResult
    from deepwell.training.trainer import Trainer


class TrackEpochs(Callback):
    def __init__(self, tracker: MlflowTracker) -> None:
        self.tracker = tracker

    def on_epoch_end(self, trainer: Trainer, epoch: EpochResult) -> None:
        self.tracker.log_epoch(epoch.row())
