"""Decoding one image or audio file into the fixed-size array a model takes: the one implementation, used by
training (`data/media.py` re-exports these) and by the edge runtime alike.

Only numpy, Pillow and soundfile, imported where used. Resampling is scipy's `resample_poly` (a Kaiser-windowed
polyphase FIR filter, the same taps) written in numpy, so the edge runtime needs no scipy.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def resolve_path(value: Any, base_dir: Path | None) -> Any:
    """A path value as a Path (a relative one under `base_dir`); bytes and arrays as they are."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        path = Path(value)
        return base_dir / path if base_dir is not None and not path.is_absolute() else path
    return value


def decode_each(values: list[Any], decode: Callable[[Any], np.ndarray], threads: int | None = None,
                keep: bool = True) -> list[tuple[np.ndarray | None, str]]:
    """(array, "") or (None, reason) per value, decoded in threads (Pillow and soundfile release the GIL).
    keep=False only checks that each value decodes (arrays are dropped at once, memory stays flat)."""

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
        return list(pool.map(attempt, values, chunksize=16))


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
        divisor = math.gcd(int(rate), int(sample_rate))
        wave = resample_poly(wave, sample_rate // divisor, int(rate) // divisor).astype(np.float32)
    return wave


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """scipy.signal.resample_poly(x, up, down) for 1-D x (default Kaiser window, β = 5, zero padding): the
    upsampled signal filtered by the same FIR taps, evaluated only at the output samples kept."""
    divisor = math.gcd(up, down)
    up, down = up // divisor, down // divisor
    x = np.asarray(x, dtype=np.float64)
    if up == down == 1:
        return x.copy()
    n_in = len(x)
    n_out = n_in * up // down + bool(n_in * up % down)
    half = 10 * max(up, down)
    taps = _lowpass(2 * half + 1, 1.0 / max(up, down)) * up
    pre_pad = down - half % down
    taps = np.concatenate([np.zeros(pre_pad), taps])
    first = (half + pre_pad) // down  # output samples of the full convolution dropped at the start
    t = (first + np.arange(n_out)) * down  # positions in the upsampled, filtered signal
    reach = -(-len(taps) // up)  # input samples each output sample can see
    i = t[:, None] // up - np.arange(reach)[None, :]
    k = t[:, None] - i * up
    valid = (i >= 0) & (i < n_in) & (k < len(taps))
    return (np.where(valid, x[i.clip(0, max(n_in - 1, 0))] * taps[k.clip(0, len(taps) - 1)], 0.0)).sum(axis=1)


def _lowpass(count: int, cutoff: float) -> np.ndarray:
    """scipy.signal.firwin(count, cutoff, window=("kaiser", 5.0)): a windowed sinc scaled to unit gain at DC."""
    m = np.arange(count) - (count - 1) / 2
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(count, 5.0)
    return taps / taps.sum()


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
