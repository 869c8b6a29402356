"""Two-valued columns (yes/no, true/false, 0/1): one 0/1 input, missing or unseen values at 0.5."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwell.features.base import Feature, keys_of
from deepwell.features.summaries import Counts


class BinaryFeature(Feature):
    type = "binary"

    def summarise(self, values: pd.Series) -> Counts:
        return Counts.of(keys_of(values))

    def fit_summary(self, summary: Counts) -> None:
        levels = sorted(summary.counts.index.tolist(), key=_order)
        if len(levels) > 2:
            levels = summary.most_common().index[:2].tolist()
        self.levels = levels  # levels[-1] is the positive value
        self.indicator = bool(summary.missing)

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        keys = keys_of(values).tolist()
        codes = {self.levels[0]: 0.0, self.levels[-1]: 1.0} if len(self.levels) == 2 else \
            {level: 1.0 for level in self.levels}
        columns = [np.array([codes.get(key, 0.5) for key in keys], dtype=np.float64)]
        if self.indicator:
            columns.append(np.array([key is None for key in keys], dtype=np.float64))
        return np.stack(columns, axis=1).astype(np.float32)

    def output_names(self) -> list[str]:
        return [self.name, f"{self.name}__missing"] if self.indicator else [self.name]

    def baseline(self) -> list[float]:
        """What explanations start from: halfway between the two values (where an unknown one is coded)."""
        return [0.5, 0.0] if self.indicator else [0.5]

    def get_state(self) -> dict[str, Any]:
        return {"levels": self.levels, "indicator": self.indicator}

    def set_state(self, state: dict[str, Any]) -> None:
        self.levels, self.indicator = list(state["levels"]), bool(state["indicator"])


def _order(key: str) -> tuple[int, str]:
    """false/no/0 sort before true/yes/1 so the positive level is the one people expect."""
    negatives = {"false", "no", "n", "0", "f", "negative", "neg", "off"}
    return (0 if key.lower() in negatives else 1, key)
