"""The target: class labels to indices (classification) or a standardised number (regression)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwell.errors import DataError
from deepwell.features.base import keys_of, value_key
from deepwell.features.number import to_numbers
from deepwell.features.summaries import Counts, Moments
from deepwell.task import Task


class TargetEncoder:
    def __init__(self, name: str, task: Task | str) -> None:
        self.name, self.task = name, Task(task)
        self.classes: list[Any] = []
        self.mean, self.std = 0.0, 1.0

    @property
    def is_classification(self) -> bool:
        return not self.task.is_regression

    def fit(self, values: pd.Series) -> None:
        self.fit_summary(self.summarise(values))

    def summarise(self, values: pd.Series) -> Counts | Moments:
        """Classes: each label's count and first raw value; regression: the moments (features/summaries.py)."""
        if self.is_classification:
            present = values.dropna()
            return Counts.of(keys_of(present), present)
        return Moments.of(to_numbers(values, self.name, strict=True).to_numpy(np.float64))

    def fit_summary(self, summary: Counts | Moments) -> None:
        if isinstance(summary, Counts):
            self.classes = [_json_value(summary.first[k]) for k in sorted(summary.first, key=_class_order)]
            if len(self.classes) < 2:
                raise DataError(f"Target column {self.name!r} has a single class ({self.classes!r}) in the "
                                "training data; classification needs at least two.")
        else:
            self.mean = summary.mean
            self.std = summary.std if summary.std > 1e-12 else 1.0

    def transform(self, values: pd.Series) -> np.ndarray:
        if not self.is_classification:
            return ((to_numbers(values, self.name, strict=True) - self.mean) / self.std).to_numpy(np.float32)
        lookup = {value_key(c): i for i, c in enumerate(self.classes)}
        keys = keys_of(values)
        codes = keys.map(lookup)
        unseen = codes.isna()
        if unseen.any():
            examples = sorted({str(k) for k in keys[unseen].head(50)})[:5]
            raise DataError(f"Target column {self.name!r} holds value(s) the model never saw in training: "
                            f"{examples}; the model knows {self.classes}.")
        return codes.to_numpy(dtype=np.int64)

    def decode(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[indices]

    def unscale(self, predictions: np.ndarray) -> np.ndarray:
        return predictions * self.std + self.mean

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task.value, "classes": self.classes, "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TargetEncoder:
        encoder = cls(state["name"], state["task"])
        encoder.classes, encoder.mean, encoder.std = list(state["classes"]), state["mean"], state["std"]
        return encoder


def _json_value(value: Any) -> Any:
    """Class labels are saved in JSON: keep ints, floats, bools and strings as they are."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value).strip()


def _class_order(key: str) -> tuple[int, float, str]:
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)
