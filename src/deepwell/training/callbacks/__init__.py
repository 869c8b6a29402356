"""Callbacks: what happens around the training loop, one concern per module (see base.Callback)."""

from deepwell.training.callbacks.base import Callback
from deepwell.training.callbacks.checkpoint import Checkpoint
from deepwell.training.callbacks.early_stopping import EarlyStopping
from deepwell.training.callbacks.progress import ProgressBar
from deepwell.training.callbacks.stop_after import StopAfter

__all__ = ["Callback", "Checkpoint", "EarlyStopping", "ProgressBar", "StopAfter"]
