"""Categories: a vocabulary of frequent values, an unknown bucket and a missing bucket, then an embedding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwell.features.base import Feature, keys_of
from deepwell.features.summaries import Counts

UNKNOWN, MISSING = 0, 1  # reserved indices; vocabulary values start at 2


def embedding_size(cardinality: int) -> int:
    """fastai's rule of thumb, capped so embeddings stay small beside the MLP."""
    return int(min(64, max(2, round(1.6 * cardinality**0.56))))


class CategoryFeature(Feature):
    type = "category"
    block = "own"

    def summarise(self, values: pd.Series) -> Counts:
        return Counts.of(keys_of(values))

    def fit_summary(self, summary: Counts) -> None:
        counts = summary.most_common()
        counts = counts[counts >= self.options.min_frequency]
        self.vocabulary = counts.index[: self.options.max_vocabulary].tolist()

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        return self._indices(keys_of(values))

    def _indices(self, keys: pd.Series) -> np.ndarray:
        lookup = self._lookup()
        return np.array([MISSING if key is None else lookup.get(key, UNKNOWN) for key in keys], dtype=np.int64)

    def _lookup(self) -> dict[str, int]:
        """value → index, built once per vocabulary (fit and set_state replace the list)."""
        if getattr(self, "_lookup_of", None) is not self.vocabulary:
            self._lookup_table = {key: i + 2 for i, key in enumerate(self.vocabulary)}
            self._lookup_of = self.vocabulary
        return self._lookup_table

    def encoder_spec(self) -> dict[str, Any]:
        size = len(self.vocabulary) + 2
        return {"kind": "embedding", "num_embeddings": size,
                "dim": self.options.embedding_dim or embedding_size(size)}

    def get_state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary}

    def set_state(self, state: dict[str, Any]) -> None:
        self.vocabulary = list(state["vocabulary"])
