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
from deepwell.edge.media import resolve_path
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
        """Decode a whole column once, before splitting: a LoadedFile per row (None where it failed).

        A column that is not kept in memory is only checked; its values become absolute paths."""
        keep = self.options.in_memory is not False
        decoded = decode_column(values, self._decode, base_dir, keep=keep)
        paths = [resolve_path(v, base_dir) for v in values]
        loaded = [None if a is None else (LoadedFile(str(p), a) if keep else p)
                  for p, a in zip(paths, decoded.arrays, strict=True)]
        return pd.Series(loaded, index=values.index, dtype=object), decoded.failures

    def bytes_per_row(self) -> int:
        """Memory one decoded value takes, to decide whether a column fits in memory."""
        return int(self.stack([None], 1).nbytes)

    def decoded_sample(self, values: pd.Series, rows: int = 2000) -> list[np.ndarray]:
        arrays = [a for a in decode_column(values.head(rows), self._decode).arrays if a is not None]
        if not arrays:
            raise DataError(f"Column {self.name!r}: none of the training files could be decoded.")
        return arrays

    def transform(self, values: pd.Series, strict: bool = False, errors: dict | None = None,
                  base_dir: Path | None = None) -> np.ndarray:
        if self.options.in_memory is False and errors is None:  # training on a column too big for memory
            return LazyFiles(self, [resolve_path(v, base_dir) for v in values])
        decoded = decode_column(values, self._decode, base_dir)
        if decoded.failures and errors is None:
            index, value, reason = decoded.failures[0]
            raise DataError(f"Column {self.name!r}: {len(decoded.failures)} file(s) could not be read; "
                            f"first at row {index} ({value}): {reason}")
        for index, _, reason in decoded.failures:
            errors.setdefault(index, f"{self.name}: {reason}")
        return self.stack(list(decoded.arrays), len(values))


class LazyFiles:
    """A file column decoded batch by batch: indexing it (as the trainer does with tensors) decodes just
    those rows, in threads, and returns the same tensor the in-memory column would hold."""

    lazy = True  # the trainer fetches such inputs one batch ahead

    def __init__(self, feature: FileFeature, values: list[Any], device: Any = None) -> None:
        self.feature, self.values, self.device = feature, values, device

    def __len__(self) -> int:
        return len(self.values)

    def to(self, device: Any) -> LazyFiles:
        return LazyFiles(self.feature, self.values, device)

    def __getitem__(self, index: Any):
        import torch

        rows = range(len(self.values))[index] if isinstance(index, slice) else \
            [int(i) for i in (index.tolist() if hasattr(index, "tolist") else index)]
        decoded = decode_column(pd.Series([self.values[i] for i in rows], dtype=object), self.feature._decode)
        if decoded.failures:
            _, value, reason = decoded.failures[0]
            raise DataError(f"Column {self.feature.name!r}: {value} could not be read while training: {reason}")
        tensor = torch.from_numpy(self.feature.stack(list(decoded.arrays), len(rows)))
        return tensor if self.device is None else tensor.to(self.device)
