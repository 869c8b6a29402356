"""Typed records of a training run: why it stopped, what each epoch measured, what the fit returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd


class StopReason(str, Enum):
    MAX_EPOCHS = "max epochs"
    EARLY_STOPPING = "early stopping"
    INTERRUPTED = "interrupted"  # Ctrl-C: the best weights so far are kept
    PRUNED = "pruned"  # a tuning trial stopped by its pruner
    EPOCH_LIMIT = "epoch limit"  # a callback's own epoch budget (StopAfter: a race's short trainings)

    def __str__(self) -> str:
        return self.value


@dataclass
class EpochResult:
    """One epoch: training loss (and accuracy), validation loss and metrics of the validated weights."""

    epoch: int  # 1-based
    lr: float
    train_loss: float
    validation: dict[str, float]  # "loss" and every scalar metric, without the val_ prefix
    train_accuracy: float | None = None
    seconds: float = 0.0  # since training started, resumed runs included
    improved: bool = False  # the monitored value is the best so far (these weights are kept)

    def value(self, name: str) -> float:
        return self.validation[name]

    def row(self) -> dict[str, Any]:
        """The history.csv row: epoch, lr, train_loss, [train_accuracy], val_loss, val_<metric>…, seconds."""
        out: dict[str, Any] = {"epoch": self.epoch, "lr": self.lr, "train_loss": self.train_loss}
        if self.train_accuracy is not None:
            out["train_accuracy"] = self.train_accuracy
        out.update({f"val_{k}": v for k, v in self.validation.items()})
        out["seconds"] = self.seconds
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any], improved: bool = False) -> EpochResult:
        return cls(epoch=int(row["epoch"]), lr=row["lr"], train_loss=row["train_loss"],
                   train_accuracy=row.get("train_accuracy"), seconds=row["seconds"], improved=improved,
                   validation={k[4:]: v for k, v in row.items() if k.startswith("val_")})


@dataclass
class FitResult:
    history: list[EpochResult] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    stop_reason: StopReason = StopReason.MAX_EPOCHS
    seconds: float = 0.0

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame([epoch.row() for epoch in self.history])
