"""Free text: lower-cased word and punctuation tokens, a vocabulary, padded id rows for an embedding bag."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwell.features.base import Feature

PAD, UNKNOWN = 0, 1
TOKEN_PATTERN = r"\w+|[^\w\s]"


def tokenize(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna("").str.lower().str.findall(TOKEN_PATTERN)


class TextFeature(Feature):
    type = "text"
    block = "own"

    def fit(self, values: pd.Series) -> None:
        counts = tokenize(values).explode().dropna().value_counts()
        counts = counts[counts >= self.options.min_frequency]
        self.vocabulary = counts.index[: self.options.max_vocabulary].tolist()

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        lookup = {token: i + 2 for i, token in enumerate(self.vocabulary)}
        length = self.options.max_tokens
        out = np.full((len(values), length), PAD, dtype=np.int64)
        for row, tokens in enumerate(tokenize(values)):
            ids = [lookup.get(t, UNKNOWN) for t in tokens[:length]]
            out[row, : len(ids)] = ids
        return out

    def encoder_spec(self) -> dict[str, Any]:
        return {"kind": "bag", "num_embeddings": len(self.vocabulary) + 2,
                "dim": self.options.embedding_dim or 64}

    def get_state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary}

    def set_state(self, state: dict[str, Any]) -> None:
        self.vocabulary = list(state["vocabulary"])
