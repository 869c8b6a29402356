"""Audio: decoded once to int16 waveforms [rows, samples] at one rate and length.

Waveforms (not spectrograms) are kept, so the encoder can time-shift them in training; the log-mel
spectrogram is computed per batch on the training device. Its mean and spread are fitted on train.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell.config import AudioOptions
from deepwell.data.media import LoadedFile
from deepwell.edge.media import decode_audio, read_audio, resolve_path, trim_silence
from deepwell.features.files import FileFeature

AUTO_DURATION = (0.5, 10.0)  # seconds: the range `duration: auto` chooses from


class AudioFeature(FileFeature):
    type = "audio"

    @property
    def audio(self) -> AudioOptions:
        return self.options.audio or AudioOptions()

    @property
    def samples(self) -> int:
        return int(round(self.audio.sample_rate * self.audio.duration))

    def resolve(self, values: pd.Series, base_dir: Path | None) -> None:
        """`duration: auto` → the 95th percentile of (trimmed) clip lengths in a sample of 200 clips, rounded
        up to a tenth of a second, within 0.5–10 s: long words are not cut, and padding stays small."""
        if self.audio.duration != "auto":
            return
        sample = values.dropna()
        sample = sample.sample(min(len(sample), 200), random_state=0)
        seconds = [self._seconds(resolve_path(v.source if isinstance(v, LoadedFile) else v, base_dir))
                   for v in sample]
        seconds = [s for s in seconds if s is not None]
        chosen = math.ceil(10 * float(np.percentile(seconds, 95))) / 10 if seconds else 1.0
        self._set_audio(duration=min(max(chosen, AUTO_DURATION[0]), AUTO_DURATION[1]))

    def _seconds(self, value: Any) -> float | None:
        try:
            wave = read_audio(value, self.audio.sample_rate)
        except Exception:  # an unreadable file is reported when the column is loaded
            return None
        if self.audio.trim_silence:
            wave = trim_silence(wave, self.audio.sample_rate)
        return len(wave) / self.audio.sample_rate

    def _set_audio(self, **changes: Any) -> None:
        self.options = self.options.model_copy(update={"audio": self.audio.model_copy(update=changes)})

    def decode(self, value: Any) -> np.ndarray:
        return decode_audio(value, self.audio.sample_rate, self.samples, trim=self.audio.trim_silence)

    def accepts(self, array: np.ndarray) -> bool:
        return array.shape == (self.samples,) and array.dtype == np.int16

    def stack(self, arrays: list[np.ndarray | None], rows: int) -> np.ndarray:
        out = np.zeros((rows, self.samples), dtype=np.int16)
        for row, array in enumerate(arrays):
            if array is not None:
                out[row] = array
        return out

    def fit(self, values: pd.Series) -> None:
        from deepwell.models.audio import LogMel

        self.resolve(values, None)
        waves = torch.from_numpy(np.stack(self.decoded_sample(values, rows=500)))
        with torch.no_grad():
            mel = LogMel(self.spectrogram_spec())(waves)
        self.mean, self.std = float(mel.mean()), max(float(mel.std()), 1e-3)

    def spectrogram_spec(self) -> dict[str, Any]:
        o = self.audio
        return {"sample_rate": o.sample_rate, "n_mels": o.n_mels, "window": int(o.sample_rate * o.window_ms / 1000),
                "hop": int(o.sample_rate * o.hop_ms / 1000)}

    def encoder_spec(self) -> dict[str, Any]:
        o = self.audio
        return {"kind": "audio", "spectrogram": self.spectrogram_spec(), "mean": self.mean, "std": self.std,
                "width": o.width, "depth": o.depth,
                "augment": {"enabled": o.augment, "time_shift": int(o.time_shift * self.samples),
                            "frequency_warp": o.frequency_warp, "time_stretch": o.time_stretch,
                            "frequency_masks": o.frequency_masks, "frequency_mask_width": o.frequency_mask_width,
                            "time_masks": o.time_masks, "time_mask_width": o.time_mask_width}}

    def get_state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "trim_silence": self.audio.trim_silence}

    def set_state(self, state: dict[str, Any]) -> None:
        self.mean, self.std = float(state["mean"]), float(state["std"])
        self._set_audio(trim_silence=bool(state.get("trim_silence", False)))  # models saved before trimming
