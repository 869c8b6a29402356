"""`model.periodic_scale: auto`: the periodic number embeddings' frequency spread, settled by a short race.

The suite showed no property of the inputs that tells which spread a table wants: Adult's counts and codes, the
computers' and the pupils' tables fit better with sharp frequencies (0.1–30), diamonds' smooth measurements and
every small table with smooth ones (0.1); the row count does not separate them (results/suite-sharp-periodic.md,
results/ablation-race.md). The validation loss after the first few epochs does: each candidate trains
`RACE_EPOCHS` epochs (the full schedule's first epochs, `StopAfter`), the lower best validation loss wins, and
training starts again from the same seed with the winner — so `auto` trains exactly the network that setting
the winner by hand would. Where the validation split is too small to tell (a few hundred rows), or the preset is
fast, or no number is embedded periodically, `auto` is the smooth spread without a race.
"""

from __future__ import annotations

from collections.abc import Callable

from deepwell.config import RACE_EPOCHS, RACE_VALIDATION_ROWS, SHARP_SCALE, SMOOTH_SCALE, Config
from deepwell.training.state import FitResult, StopReason

TrainFor = Callable[[Config, int], FitResult]
"""Trains a candidate configuration for at most that many epochs from the run's seed."""


def resolve_periodic_scale(config: Config, validation_rows: int, has_numbers: bool, train_for: TrainFor) -> Config:
    """`config` with `model.periodic_scale` settled (a copy; the same object when it was not `auto`)."""
    if config.model.periodic_scale != "auto":
        return config
    resolved = config.model_copy(deep=True)
    racing = (has_numbers and config.model.numeric_embedding == "periodic" and config.preset != "fast"
              and validation_rows >= RACE_VALIDATION_ROWS)
    resolved.model.periodic_scale = _race(resolved, train_for) if racing else SMOOTH_SCALE
    return resolved


def _race(config: Config, train_for: TrainFor) -> float | tuple[float, float]:
    losses = {}
    for scale in (SMOOTH_SCALE, SHARP_SCALE):
        candidate = config.model_copy(deep=True)
        candidate.model.periodic_scale = scale
        candidate.model.ensemble_size = 1
        result = train_for(candidate, RACE_EPOCHS)
        if result.stop_reason == StopReason.INTERRUPTED:
            raise KeyboardInterrupt
        losses[scale] = min(epoch.validation["loss"] for epoch in result.history)
    return min(losses, key=losses.__getitem__)
