"""The contract every column type follows: fit on training values, transform to arrays, state as JSON."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from deepwell.config import ColumnConfig
from deepwell.edge.values import is_missing as _absent
from deepwell.edge.values import value_key  # noqa: F401  (one canonical key, shared with the edge runtime)
from deepwell.errors import WrongValues


class Feature(ABC):
    """One input column. Subclasses set `type` and `block`.

    block "numeric": transform gives float32 [rows, width]; all such blocks are concatenated into one
    matrix so the network handles every numeric-like column in a single operation.
    block "own": transform gives the column's own array and `encoder_spec` describes its encoder.
    """

    type: ClassVar[str]
    block: ClassVar[str] = "numeric"

    def __init__(self, name: str, options: ColumnConfig, key: str | None = None) -> None:
        self.name = name  # the column read
        self.options = options
        self.key = key or name  # the network input's name: a second feature of one column has its own

    def fit(self, values: pd.Series) -> None:
        """Learn state from the training values (a feature that fits from a summary needs nothing else)."""
        self.fit_summary(self.summarise(values))

    def summarise(self, values: pd.Series) -> Any:
        """What `fit_summary` needs of a batch of training values, mergeable across batches (its `merge`:
        features/summaries.py); None: this feature fits on the values themselves (a streamed table gives it a
        seeded sample of its training rows)."""
        return None

    def fit_summary(self, summary: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} fits on values, not on a summary")

    @abstractmethod
    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        """strict=True (prediction) refuses values of the wrong type instead of treating them as missing."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None: ...

    def output_names(self) -> list[str]:
        """Names of the numeric outputs (numeric block only), for explanations and debugging."""
        return [self.name]

    def encoder_spec(self) -> dict[str, Any]:
        """Architecture of this column's encoder (own block only), saved as JSON."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {"type": self.type, "options": self.options.model_dump(mode="json"), **self.get_state()}


def keys_of(values: pd.Series) -> pd.Series:
    """value_key over a column (object dtype out); missing values and blank strings become None.

    A plain loop: value_key is Python per value anyway, and pandas' own map costs more than the work itself on
    the one-row tables a server predicts."""
    keys = [None if _absent(v) else value_key(v) or None for v in values.tolist()]
    return pd.Series(keys, index=values.index, dtype=object)


def wrong_values_error(column: str, values: pd.Series, bad: pd.Series, expected: str) -> WrongValues:
    rows = bad[bad].index[:5].tolist()
    return WrongValues(column, expected, [(r, values.loc[r]) for r in rows], int(bad.sum()))
