"""What a feature's fit needs to know about its training values, summed over batches.

A feature whose fit depends only on counts of its values or on their moments fits from a summary
(`Feature.summarise` → `Feature.fit_summary`). Fitting a table in memory is the one-batch case of the same
path, so a table streamed in record batches (data/stream.py) gets the state a single pass over all its rows
gives: exact counts and exact moments (Chan et al.'s pairwise update), in any batch order up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Moments:
    """Count, mean, second and third central moments (sums), and the minimum of the non-missing values;
    `missing` counts the missing ones."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    minimum: float = np.inf
    missing: int = 0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        """The moments of one batch of floats (NaN: missing)."""
        values = np.asarray(values, dtype=np.float64)
        present = values[~np.isnan(values)]
        missing = len(values) - len(present)
        if not len(present):
            return cls(missing=missing)
        mean = float(present.mean())
        deviations = present - mean
        return cls(len(present), mean, float(np.dot(deviations, deviations)), float((deviations ** 3).sum()),
                   float(present.min()), missing)

    def merge(self, other: Moments) -> Moments:
        if not other.count or not self.count:
            keep = self if self.count else other
            return Moments(keep.count, keep.mean, keep.m2, keep.m3, keep.minimum, self.missing + other.missing)
        n_a, n_b = self.count, other.count
        n = n_a + n_b
        delta = other.mean - self.mean
        m2 = self.m2 + other.m2 + delta ** 2 * n_a * n_b / n
        m3 = (self.m3 + other.m3 + delta ** 3 * n_a * n_b * (n_a - n_b) / n ** 2
              + 3 * delta * (n_a * other.m2 - n_b * self.m2) / n)
        return Moments(n, self.mean + delta * n_b / n, m2, m3, min(self.minimum, other.minimum),
                       self.missing + other.missing)

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0), 0 without values."""
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0

    @property
    def skew(self) -> float:
        """The bias-adjusted sample skewness pandas' `Series.skew` gives (0 for fewer than 3 values or none
        spread)."""
        n = self.count
        if n < 3 or self.m2 <= 1e-14 * max(1.0, self.mean ** 2) * n:
            return 0.0
        g1 = (self.m3 / n) / (self.m2 / n) ** 1.5
        return float(g1 * np.sqrt(n * (n - 1)) / (n - 2))


@dataclass
class Counts:
    """How often each value key occurs (missing values apart), and the first raw value seen per key."""

    counts: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    first: dict[str, Any] = field(default_factory=dict)
    missing: int = 0

    @classmethod
    def of(cls, keys: pd.Series, values: pd.Series | None = None) -> Counts:
        """`keys` from `features.base.keys_of` (None: missing); `values`, when given, the raw values (the first
        raw value of each key is kept: a target's class labels)."""
        given = keys.notna().to_numpy()
        present = pd.Series(keys.to_numpy()[given], dtype=object)
        first: dict[str, Any] = {}
        if values is not None:  # by position: the index may repeat labels
            firsts = present.drop_duplicates()
            first = dict(zip(firsts.tolist(), values.to_numpy()[given][firsts.index].tolist(), strict=True))
        return cls(present.value_counts(), first, int(len(keys) - len(present)))

    def merge(self, other: Counts) -> Counts:
        counts = self.counts.add(other.counts, fill_value=0).astype("int64") if len(self.counts) else other.counts
        first = {**other.first, **self.first}  # the earlier batch's raw value wins
        return Counts(counts, first, self.missing + other.missing)

    def most_common(self) -> pd.Series:
        """Counts from the most frequent key down (ties in a fixed order: a batch's as value_counts gives it,
        merged batches' in key order)."""
        return self.counts.sort_values(ascending=False, kind="stable")


def merge(summaries: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """Per feature key, the summaries so far merged with one batch's."""
    return {key: summaries[key].merge(value) if key in summaries else value for key, value in batch.items()}
