"""Global importance: permutation importance of each input column on held-out labelled rows — how much the model's
accuracy (classification) or RMSE (regression) worsens when that column's values are shuffled among the rows —
with a 95 % t-interval over the repeats.

It is scikit-learn's `permutation_importance`, shuffle for shuffle (the same seeds, the same permutations, tested
equal), computed on the preprocessed tensors: every feature encodes each row on its own, so shuffling a column's
values and shuffling its encoded rows are the same thing, and the table (and its images or recordings) is read and
preprocessed once instead of once per column and repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from deepwell.features.pipeline import NUMERIC_BLOCK

if TYPE_CHECKING:
    from deepwell.model import Model

REPEATS = 10
MAX_ROWS = 5000  # a seeded sample beyond this: the intervals are already narrow


@dataclass
class Importance:
    metric: str  # "accuracy" or "rmse"
    score: float  # the metric on the rows as they are
    table: pd.DataFrame  # column, importance (mean worsening), low, high, repeats

    def to_frame(self) -> pd.DataFrame:
        return self.table.assign(metric=self.metric, baseline_score=self.score)


def permutation_importance(model: Model, frame: pd.DataFrame, base_dir: Path | None = None, repeats: int = REPEATS,
                           seed: int = 0) -> Importance:
    """`frame` holds the model's input columns and its target. The network's own decisions are scored (group
    thresholds, if any, are not applied)."""
    from scipy.stats import t

    from deepwell.inference.network import network_outputs

    if len(frame) > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, random_state=seed)
    frame = frame.reset_index(drop=True)
    inputs = model.preprocessor.transform(frame, strict=True, errors={}, base_dir=base_dir)
    score = _scorer(model, frame)

    def scored(batch: dict[str, torch.Tensor]) -> float:
        return score(network_outputs(model.network, batch, model.task, model.device))

    baseline = scored(inputs)
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)  # as scikit-learn draws it
    drops = np.zeros((len(model.input_columns), repeats))
    for c, column in enumerate(model.input_columns):
        rng, order, current = np.random.RandomState(column_seed), np.arange(len(frame)), np.arange(len(frame))
        for k in range(repeats):
            rng.shuffle(order)
            current = current[order]  # scikit-learn shuffles the already shuffled column again
            drops[c, k] = baseline - scored(_shuffled(inputs, _parts(model, column), torch.from_numpy(current)))
    mean, spread = drops.mean(axis=1), drops.std(axis=1) * t.ppf(0.975, repeats - 1) / np.sqrt(repeats)
    table = pd.DataFrame({"column": model.input_columns, "importance": mean, "low": mean - spread,
                          "high": mean + spread, "repeats": repeats})
    regression = model.task.is_regression
    return Importance("rmse" if regression else "accuracy", -baseline if regression else baseline,
                      table.sort_values("importance", ascending=False, ignore_index=True))


def _scorer(model: Model, frame: pd.DataFrame):
    """outputs → accuracy, or −RMSE in the target's units (higher is better, as scikit-learn's scorers)."""
    target = model.preprocessor.target
    if model.task.is_regression:
        truth = frame[model.target].to_numpy(float)
        return lambda outputs: -float(np.sqrt(np.mean((target.unscale(outputs) - truth) ** 2)))
    encoded = model.preprocessor.transform_target(frame).numpy()
    return lambda outputs: float(np.mean(outputs.argmax(axis=1) == encoded))


def _parts(model: Model, column: str) -> list[tuple[str, list[int] | None]]:
    """Where a column lives in the network's inputs: (key, its positions in the numeric block, or None: all)."""
    parts: list[tuple[str, list[int] | None]] = []
    position = 0
    for feature in model.preprocessor.features:
        if feature.block == NUMERIC_BLOCK:
            width = len(feature.output_names())
            if feature.name == column:
                parts.append((NUMERIC_BLOCK, list(range(position, position + width))))
            position += width
        elif feature.name == column:
            parts.append((feature.key, None))
    return parts


def _shuffled(inputs: dict[str, torch.Tensor], parts: list[tuple[str, list[int] | None]],
              order: torch.Tensor) -> dict[str, torch.Tensor]:
    batch = dict(inputs)
    for key, positions in parts:
        if positions is None:
            batch[key] = inputs[key][order]
        else:
            block = inputs[key].clone()
            block[:, positions] = inputs[key][order][:, positions]
            batch[key] = block
    return batch
