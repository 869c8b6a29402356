"""Decoding a column of media files into fixed-size arrays, once, in parallel threads (one file is decoded by
`edge/media.py`, shared with the edge runtime).

Values may be file paths (relative ones resolved against the table's folder), raw bytes, PIL images or
numpy arrays, so the same code serves training tables, class folders and Python-API predictions.
A file that cannot be decoded yields an error string for its row instead of an exception, so one bad
file never takes the batch down with it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwell.edge.media import decode_each, resolve_path

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg"}


@dataclass(frozen=True, eq=False)
class LoadedFile:
    """A decoded file that remembers where it came from: tables print the path, features use the array."""

    source: str
    array: np.ndarray

    def __str__(self) -> str:
        return self.source

    __repr__ = __str__


@dataclass
class Decoded:
    """Arrays for the rows that decoded, and (row index, value, reason) for those that did not."""

    arrays: pd.Series
    failures: list[tuple[Any, str, str]]


def image_side(value: Any) -> int | None:
    """The shorter side of one image in pixels (only the header is read), None when unreadable."""
    from PIL import Image

    try:
        if isinstance(value, np.ndarray):
            return int(min(value.shape[:2]))
        with Image.open(value if isinstance(value, Path) else io.BytesIO(value)) as image:
            return int(min(image.size))
    except Exception:
        return None


def image_is_colour(value: Any) -> bool:
    """Cheap look at one image's mode, used to choose 1 or 3 channels for a column."""
    from PIL import Image

    try:
        if isinstance(value, np.ndarray):
            return value.ndim == 3 and value.shape[-1] >= 3
        with Image.open(value if isinstance(value, Path) else io.BytesIO(value)) as image:
            return image.mode not in ("L", "LA", "1", "I", "I;16", "F")
    except Exception:
        return False


def decode_column(values: pd.Series, decode, base_dir: Path | None = None, threads: int | None = None,
                  keep: bool = True) -> Decoded:
    """Decode every value with `decode(value)`; Pillow and soundfile release the GIL, so threads scale.

    keep=False only checks that each value decodes (arrays are dropped at once, memory stays flat)."""
    resolved = [resolve_path(v, base_dir) for v in values]
    results = decode_each(resolved, decode, threads, keep)
    arrays = pd.Series([r[0] for r in results], index=values.index, dtype=object)
    failures = [(index, str(value), reason) for index, value, (array, reason) in
                zip(values.index, resolved, results, strict=True) if array is None]
    return Decoded(arrays, failures)


def looks_like_media(values: pd.Series, extensions: set[str], share: float = 0.9) -> bool:
    """A string column whose values mostly end in one of `extensions`."""
    text = values.dropna().astype(str)
    if text.empty:
        return False
    suffixes = text.head(500).str.lower().str.extract(r"(\.[a-z0-9]+)$")[0]
    return bool(suffixes.isin(extensions).mean() >= share)
