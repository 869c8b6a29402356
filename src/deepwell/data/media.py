"""Decoding media files (images now; audio next) into fixed-size arrays, once, in parallel threads.

Values may be file paths (relative ones resolved against the table's folder), raw bytes, PIL images or
numpy arrays, so the same code serves training tables, class folders and Python-API predictions.
A file that cannot be decoded yields an error string for its row instead of an exception, so one bad
file never takes the batch down with it.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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


def resolve_path(value: Any, base_dir: Path | None) -> Any:
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        path = Path(value)
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    return value


def decode_image(value: Any, size: int, channels: int) -> np.ndarray:
    """uint8 [size, size, channels]: shorter side resized to `size`, then centre-cropped."""
    from PIL import Image, ImageOps

    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8:
            scale = 255.0 if value.size and float(np.nanmax(value)) <= 1.0 else 1.0
            value = np.clip(value * scale, 0, 255).astype(np.uint8)
        image = Image.fromarray(value.squeeze(-1) if value.ndim == 3 and value.shape[-1] == 1 else value)
    elif isinstance(value, (bytes, bytearray)):
        image = Image.open(io.BytesIO(value))
    elif isinstance(value, Path):
        if not value.exists():
            raise FileNotFoundError(f"file does not exist: {value}")
        image = Image.open(value)
    elif hasattr(value, "convert") and hasattr(value, "size"):
        image = value
    else:
        raise TypeError(f"expected an image path, bytes, PIL image or array, got {type(value).__name__}")
    image.load()
    image = ImageOps.exif_transpose(image).convert("L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def decode_audio(value: Any, sample_rate: int, samples: int, trim: bool = False) -> np.ndarray:
    """int16 [samples]: mixed to mono, resampled (polyphase), silence trimmed (`trim`), centre-cropped or
    zero-padded."""
    wave = read_audio(value, sample_rate)
    if trim:
        wave = trim_silence(wave, sample_rate)
    if len(wave) >= samples:
        start = (len(wave) - samples) // 2
        wave = wave[start:start + samples]
    else:
        pad = samples - len(wave)
        wave = np.pad(wave, (pad // 2, pad - pad // 2))
    return (np.clip(wave, -1, 1) * 32767).astype(np.int16)


def read_audio(value: Any, sample_rate: int) -> np.ndarray:
    """float32 mono waveform at `sample_rate` from a path, file bytes or an array (already at that rate)."""
    import soundfile
    from scipy.signal import resample_poly

    if isinstance(value, np.ndarray):  # in-memory audio must already be at the model's sample rate
        wave, rate = value.astype(np.float32), sample_rate
        if np.issubdtype(value.dtype, np.integer):
            wave = wave / np.iinfo(value.dtype).max
    elif isinstance(value, (bytes, bytearray)):
        wave, rate = soundfile.read(io.BytesIO(value), dtype="float32", always_2d=True)
    elif isinstance(value, Path):
        if not value.exists():
            raise FileNotFoundError(f"file does not exist: {value}")
        wave, rate = soundfile.read(value, dtype="float32", always_2d=True)
    else:
        raise TypeError(f"expected an audio path, bytes or array, got {type(value).__name__}")
    wave = wave.mean(axis=1) if wave.ndim == 2 else wave
    if rate != sample_rate:
        divisor = np.gcd(int(rate), int(sample_rate))
        wave = resample_poly(wave, sample_rate // divisor, int(rate) // divisor).astype(np.float32)
    return wave


def trim_silence(wave: np.ndarray, sample_rate: int, below_peak_db: float = 40.0) -> np.ndarray:
    """The waveform from its first to its last 10 ms frame within `below_peak_db` of the loudest frame."""
    frame = max(1, sample_rate // 100)
    frames = len(wave) // frame
    if frames == 0:
        return wave
    energy = np.square(wave[:frames * frame].reshape(frames, frame), dtype=np.float64).mean(axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-below_peak_db / 10))
    if len(loud) == 0:  # digital silence
        return wave
    return wave[loud[0] * frame:(loud[-1] + 1) * frame]


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

    def attempt(value: Any) -> tuple[np.ndarray | None, str]:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None, "missing value"
        try:
            array = decode(value)
            return (array if keep else np.zeros(0, dtype=np.uint8)), ""
        except Exception as exc:  # any decoder failure becomes a per-row reason
            return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]

    workers = threads or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(attempt, resolved, chunksize=16))
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
