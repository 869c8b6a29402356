"""Columns whose values are files (images, audio): decoded once per table, in threads, row errors kept.

A subclass says how one value decodes to a fixed-shape array and how arrays stack into a tensor;
loading, bad-file bookkeeping and the `LoadedFile` pass-through are shared here.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwell.data.media import LoadedFile, decode_column
from deepwell.errors import DataError
from deepwell.features.base import Feature

Failures = list[tuple[Any, str, str]]
"""(row index, file, reason) for every value that could not be decoded."""


class FileFeature(Feature):
    block = "own"
    reads_files = True

    @abstractmethod
    def decode(self, value: Any) -> np.ndarray:
        """One path, bytes or in-memory object → a fixed-shape array."""

    @abstractmethod
    def stack(self, arrays: list[np.ndarray | None], rows: int) -> np.ndarray:
        """Arrays (None for failed rows) → the column's input array, zeros where None."""

    def resolve(self, values: pd.Series, base_dir: Path | None) -> None:
        """Fix any `auto` option by looking at the data (e.g. colour or grayscale); default: nothing."""

    def _decode(self, value: Any) -> np.ndarray:
        if isinstance(value, LoadedFile):
            return value.array if self.accepts(value.array) else self.decode(value.source)
        return self.decode(value)

    def accepts(self, array: np.ndarray) -> bool:
        """Whether an already-decoded array has this feature's shape (skip decoding again)."""
        return True

    def load_column(self, values: pd.Series, base_dir: Path | None) -> tuple[pd.Series, Failures]:
        """Decode a whole column once, before splitting: a LoadedFile per row (None where it failed)."""
        decoded = decode_column(values, self._decode, base_dir)
        loaded = [None if a is None else LoadedFile(str(v), a)
                  for v, a in zip(values, decoded.arrays, strict=True)]
        return pd.Series(loaded, index=values.index, dtype=object), decoded.failures

    def decoded_sample(self, values: pd.Series, rows: int = 2000) -> list[np.ndarray]:
        arrays = [a for a in decode_column(values.head(rows), self._decode).arrays if a is not None]
        if not arrays:
            raise DataError(f"Column {self.name!r}: none of the training files could be decoded.")
        return arrays

    def transform(self, values: pd.Series, strict: bool = False, errors: dict | None = None,
                  base_dir: Path | None = None) -> np.ndarray:
        decoded = decode_column(values, self._decode, base_dir)
        if decoded.failures and errors is None:
            index, value, reason = decoded.failures[0]
            raise DataError(f"Column {self.name!r}: {len(decoded.failures)} file(s) could not be read; "
                            f"first at row {index} ({value}): {reason}")
        for index, _, reason in decoded.failures:
            errors.setdefault(index, f"{self.name}: {reason}")
        return self.stack(list(decoded.arrays), len(values))
