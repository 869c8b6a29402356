"""Images: decoded once to uint8 [rows, channels, size, size]; normalisation statistics fitted on train.

The tensor stays uint8 in memory (4× smaller than float); the encoder scales, augments and normalises
each batch on the training device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwell.config import ImageOptions
from deepwell.data.media import LoadedFile, image_is_colour, image_side
from deepwell.edge.media import decode_image, resolve_path
from deepwell.features.files import FileFeature

AUTO_SIZE = (16, 64)  # pixels: the range `size: auto` chooses from


class ImageFeature(FileFeature):
    type = "image"

    @property
    def image(self) -> ImageOptions:
        return self.options.image or ImageOptions()

    @property
    def channels(self) -> int:
        return 1 if self.image.channels == "auto" else int(self.image.channels)

    def resolve(self, values: pd.Series, base_dir: Path | None) -> None:
        """`channels: auto` → 3 if any of 20 images is in colour; `size: auto` → their median shorter side,
        rounded up to a multiple of 8, within 16–64 px (small scans are not blown up 8×, photos are cut to 64)."""
        if "auto" not in (self.image.channels, self.image.size):
            return
        sample = [v.array if isinstance(v, LoadedFile) else resolve_path(v, base_dir)
                  for v in values.dropna().head(20)]
        changes: dict[str, Any] = {}
        if self.image.channels == "auto":
            changes["channels"] = 3 if any(image_is_colour(v) for v in sample) else 1
        if self.image.size == "auto":
            sides = [side for side in map(image_side, sample) if side]
            side = float(np.median(sides)) if sides else AUTO_SIZE[1]
            changes["size"] = int(min(max(8 * np.ceil(side / 8), AUTO_SIZE[0]), AUTO_SIZE[1]))
        self.options = self.options.model_copy(update={"image": self.image.model_copy(update=changes)})

    def decode(self, value: Any) -> np.ndarray:
        return decode_image(value, self.image.size, self.channels)

    def accepts(self, array: np.ndarray) -> bool:
        return array.shape == (self.image.size, self.image.size, self.channels)

    def stack(self, arrays: list[np.ndarray | None], rows: int) -> np.ndarray:
        size = self.image.size
        out = np.zeros((rows, self.channels, size, size), dtype=np.uint8)
        for row, array in enumerate(arrays):
            if array is not None:
                out[row] = array.transpose(2, 0, 1)
        return out

    def fit(self, values: pd.Series) -> None:
        self.resolve(values, None)
        pixels = np.stack(self.decoded_sample(values)).reshape(-1, self.channels).astype(np.float64) / 255.0
        self.mean = pixels.mean(axis=0).tolist()
        self.std = np.maximum(pixels.std(axis=0), 1e-3).tolist()

    def encoder_spec(self) -> dict[str, Any]:
        o = self.image
        return {"kind": "image", "channels": self.channels, "size": o.size, "mean": self.mean, "std": self.std,
                "width": o.width, "depth": o.depth,
                "augment": {"enabled": o.augment, "crop_scale": o.crop_scale, "flip": o.flip,
                            "rotation": o.rotation, "colour_jitter": o.colour_jitter}}

    def get_state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std}

    def set_state(self, state: dict[str, Any]) -> None:
        self.mean, self.std = list(state["mean"]), list(state["std"])
