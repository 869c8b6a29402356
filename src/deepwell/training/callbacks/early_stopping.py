"""Stop when the monitored validation value has not improved for `patience` epochs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepwell.training.callbacks.base import Callback
from deepwell.training.state import StopReason

if TYPE_CHECKING:
    from deepwell.training.state import EpochResult
    from deepwell.training.trainer import Trainer


class EarlyStopping(Callback):
    """The trainer keeps the best epoch's weights; this callback only counts epochs without improvement."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.bad_epochs = 0

    def on_epoch_end(self, trainer: Trainer, epoch: EpochResult) -> None:
        self.bad_epochs = 0 if epoch.improved else self.bad_epochs + 1
        if self.bad_epochs >= self.patience:
            trainer.stop(StopReason.EARLY_STOPPING)

    def state_dict(self) -> dict[str, Any]:
        return {"bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bad_epochs = int(state.get("bad_epochs", 0))
