"""The callback contract: typed hooks the trainer calls, each a no-op unless overridden.

Order of calls: on_fit_start → (on_train_batch_end per step, on_epoch_end per epoch) … → on_interrupt (Ctrl-C
only) → on_fit_end (always, also after an error). A callback stops training with `trainer.stop(reason)`.
A callback with state that a resumed run needs returns it from `state_dict` (JSON-serialisable); the
checkpoint stores it under the callback's `state_key` and gives it back through `load_state_dict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepwell.training.state import EpochResult, FitResult
    from deepwell.training.trainer import Trainer


class Callback:
    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resumed run's state is restored by the checkpoint callback)."""

    def on_train_batch_end(self, trainer: Trainer, step: int) -> None:
        """After each optimiser step."""

    def on_epoch_end(self, trainer: Trainer, epoch: EpochResult) -> None:
        """After training and validating one epoch; `epoch` is already in `trainer.result.history`."""

    def on_interrupt(self, trainer: Trainer) -> None:
        """Ctrl-C: training stops, keeping the best weights so far."""

    def on_fit_end(self, trainer: Trainer, result: FitResult) -> None:
        """Always called last, after a normal end, an interruption or an error."""

    @property
    def state_key(self) -> str:
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (a resumed run)."""
