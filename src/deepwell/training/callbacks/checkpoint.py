"""Crash-safe checkpoints as a callback: saved every N epochs and after the last one (`Trainer.fit(resume_from=…)`
restores one).

The file (training/checkpoint.py) holds the weights, the best and averaged weights, the optimiser and the
bookkeeping of the trainer and of every callback with state, so a resumed run ends exactly where an
uninterrupted one would.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepwell.training.callbacks.base import Callback
from deepwell.training.checkpoint import save_checkpoint

if TYPE_CHECKING:
    from deepwell.training.state import EpochResult
    from deepwell.training.trainer import Trainer


class Checkpoint(Callback):
    """Keep it last among the callbacks, so the state it saves includes every other callback's decisions."""

    def __init__(self, path: Path, every: int = 1) -> None:
        self.path, self.every = Path(path), every

    def on_epoch_end(self, trainer: Trainer, epoch: EpochResult) -> None:
        if epoch.epoch % self.every == 0 or trainer.finished:
            save_checkpoint(self.path, trainer)
