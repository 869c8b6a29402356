"""Images: decoded once to uint8 [rows, channels, size, size]; normalisation statistics fitted on train.

The tensor stays uint8 in memory (4× smaller than float); the encoder scales, augments and normalises
each batch on the training device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwell.config import ImageOptions
from deepwell.data.media import LoadedFile, decode_column, decode_image, image_is_colour, resolve_path
from deepwell.errors import DataError
from deepwell.features.base import Feature

STAT_SAMPLE = 2000


class ImageFeature(Feature):
    type = "image"
    block = "own"
    reads_files = True

    @property
    def image(self) -> ImageOptions:
        return self.options.image or ImageOptions()

    def choose_channels(self, values: pd.Series, base_dir=None) -> int:
        if self.image.channels != "auto":
            return int(self.image.channels)
        sample = [v.array if isinstance(v, LoadedFile) else resolve_path(v, base_dir) for v in values.dropna().head(20)]
        return 3 if any(image_is_colour(v) for v in sample) else 1

    def decoder(self, channels: int):
        size = self.image.size

        def decode(value: Any) -> np.ndarray:
            if isinstance(value, LoadedFile) and value.array.shape == (size, size, channels):
                return value.array
            return decode_image(value.source if isinstance(value, LoadedFile) else value, size, channels)

        return decode

    def fit(self, values: pd.Series) -> None:
        self.channels = self.choose_channels(values)
        decoded = decode_column(values.head(STAT_SAMPLE), self.decoder(self.channels))
        arrays = [a for a in decoded.arrays if a is not None]
        if not arrays:
            raise DataError(f"Column {self.name!r}: none of the training images could be decoded.")
        pixels = np.stack(arrays).reshape(-1, self.channels).astype(np.float64) / 255.0
        self.mean = pixels.mean(axis=0).tolist()
        self.std = np.maximum(pixels.std(axis=0), 1e-3).tolist()

    def transform(self, values: pd.Series, strict: bool = False, errors: dict | None = None,
                  base_dir=None) -> np.ndarray:
        size = self.image.size
        decoded = decode_column(values, self.decoder(self.channels), base_dir)
        if decoded.failures and errors is None:
            index, value, reason = decoded.failures[0]
            raise DataError(f"Column {self.name!r}: {len(decoded.failures)} image(s) could not be read; "
                            f"first at row {index} ({value}): {reason}")
        out = np.zeros((len(values), self.channels, size, size), dtype=np.uint8)
        for row, array in enumerate(decoded.arrays):
            if array is not None:
                out[row] = array.transpose(2, 0, 1)
        for index, _, reason in decoded.failures:
            errors.setdefault(index, f"{self.name}: {reason}")
        return out

    def encoder_spec(self) -> dict[str, Any]:
        o = self.image
        return {"kind": "image", "channels": self.channels, "size": o.size, "mean": self.mean, "std": self.std,
                "width": o.width, "depth": o.depth,
                "augment": {"enabled": o.augment, "crop_scale": o.crop_scale, "flip": o.flip,
                            "rotation": o.rotation, "colour_jitter": o.colour_jitter}}

    def get_state(self) -> dict[str, Any]:
        return {"channels": self.channels, "mean": self.mean, "std": self.std}

    def set_state(self, state: dict[str, Any]) -> None:
        self.channels, self.mean, self.std = int(state["channels"]), list(state["mean"]), list(state["std"])



def load_image_column(name: str, values: pd.Series, options: ImageOptions, base_dir=None
                      ) -> tuple[pd.Series, list[tuple[Any, str, str]], int]:
    """Decode a whole column once (before splitting): (LoadedFile per row or None, failures, channels)."""
    from deepwell.config import ColumnConfig

    feature = ImageFeature(name, ColumnConfig(type="image", image=options))
    channels = feature.choose_channels(values, base_dir)
    decoded = decode_column(values, feature.decoder(channels), base_dir)
    loaded = pd.Series([None if a is None else LoadedFile(str(v), a) for v, a in zip(values, decoded.arrays,
                                                                                     strict=True)],
                       index=values.index, dtype=object)
    return loaded, decoded.failures, channels
