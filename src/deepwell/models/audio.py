"""Audio encoder: waveform → (random time shift) → log-mel spectrogram → (SpecAugment) → residual CNN.

The spectrogram is computed with torch.stft and a triangular mel filter bank, per batch on the training
device; the augmentations are batched masks and gathers, seeded by torch's RNG, active in train mode only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from deepwell.models.vision import ResidualCNN


def mel_filter_bank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] triangular filters equally spaced on the HTK mel scale."""
    def to_mel(hz: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + hz / 700.0)

    def to_hz(mel: torch.Tensor) -> torch.Tensor:
        return 700.0 * (10 ** (mel / 2595.0) - 1.0)

    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(torch.linspace(0.0, float(to_mel(torch.tensor(sample_rate / 2))), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower).clamp_min(1e-6)
    falling = (upper - bins) / (upper - centre).clamp_min(1e-6)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LogMel(nn.Module):
    """int16 or float waveforms [batch, samples] → log-mel [batch, n_mels, frames]."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.window_length, self.hop = int(spec["window"]), int(spec["hop"])
        self.n_fft = 2 ** math.ceil(math.log2(self.window_length))
        self.register_buffer("window", torch.hann_window(self.window_length), persistent=False)
        self.register_buffer("filters", mel_filter_bank(int(spec["sample_rate"]), self.n_fft, int(spec["n_mels"])),
                             persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        waves = waves.float() / 32768.0 if not waves.is_floating_point() else waves
        if torch.onnx.is_in_onnx_export():
            spectrum = self._power_by_convolution(waves)
        else:
            spectrum = torch.stft(waves, self.n_fft, self.hop, self.window_length, self.window, center=True,
                                  return_complex=True).abs().pow(2)
        return torch.log(torch.matmul(self.filters, spectrum) + 1e-6)

    def _power_by_convolution(self, waves: torch.Tensor) -> torch.Tensor:
        """torch.stft's power spectrum (centred, reflect-padded frames, the window zero-padded to n_fft) as one
        strided convolution with the windowed DFT basis: what ONNX can express (its STFT takes no complex
        output in the exporter). The same numbers within float error; export checks them against torch.stft."""
        bins = self.n_fft // 2 + 1
        left = (self.n_fft - self.window_length) // 2
        window = nn.functional.pad(self.window, (left, self.n_fft - self.window_length - left))
        angle = 2 * math.pi * torch.outer(torch.arange(bins, dtype=torch.float64),
                                          torch.arange(self.n_fft, dtype=torch.float64)) / self.n_fft
        basis = torch.cat([torch.cos(angle), torch.sin(angle)]) * window.double()
        padded = nn.functional.pad(waves[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        parts = nn.functional.conv1d(padded, basis.float()[:, None, :].to(waves.device), stride=self.hop)
        return parts[:, :bins].pow(2) + parts[:, bins:].pow(2)


def _random_ranges(batch: int, size: int, widest: int, device: torch.device) -> torch.Tensor:
    """[batch, size] bool: one random range of width 0..widest per row."""
    width = torch.randint(0, widest + 1, (batch, 1), device=device)
    start = (torch.rand(batch, 1, device=device) * (size - width + 1).clamp_min(1)).long()
    positions = torch.arange(size, device=device)
    return (positions >= start) & (positions < start + width)


class AudioEncoder(nn.Module):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.logmel = LogMel(spec["spectrogram"])
        self.mean, self.std = float(spec["mean"]), float(spec["std"])
        self.augment = dict(spec["augment"])
        n_mels = int(spec["spectrogram"]["n_mels"])
        self.cnn = ResidualCNN(1, int(spec["width"]), int(spec["depth"]), n_mels)
        self.output_dim = self.cnn.output_dim

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        augment = self.training and self.augment["enabled"]
        if augment and self.augment["time_shift"] > 0:
            waves = self.shift(waves, int(self.augment["time_shift"]))
        mel = (self.logmel(waves) - self.mean) / self.std
        if augment:
            mel = self._spec_augment(self._warp(mel))
        return self.cnn(mel.unsqueeze(1))

    @staticmethod
    def shift(waves: torch.Tensor, largest: int) -> torch.Tensor:
        """Each clip rolled by a random number of samples up to ±largest (another moment of speaking)."""
        batch, samples = waves.shape
        shift = torch.randint(-largest, largest + 1, (batch, 1), device=waves.device)
        index = (torch.arange(samples, device=waves.device) - shift) % samples
        return torch.gather(waves, 1, index)

    def _warp(self, mel: torch.Tensor) -> torch.Tensor:
        """Random frequency warp (vocal-tract length perturbation: another speaker's formants) and time
        stretch (another speaking rate), one affine resampling of the whole batch."""
        warp, stretch = float(self.augment.get("frequency_warp", 0)), float(self.augment.get("time_stretch", 0))
        if warp == 0 and stretch == 0:
            return mel
        batch = mel.shape[0]
        frequency = 1 + (torch.rand(batch, device=mel.device) * 2 - 1) * warp
        time = 1 + (torch.rand(batch, device=mel.device) * 2 - 1) * stretch
        zero = torch.zeros(batch, device=mel.device)
        # grid x runs along frames (time), y along mel bands; y is anchored at the lowest band
        theta = torch.stack([torch.stack([time, zero, zero], dim=1),
                             torch.stack([zero, frequency, frequency - 1], dim=1)], dim=1)
        image = mel.unsqueeze(1)
        grid = torch.nn.functional.affine_grid(theta, list(image.shape), align_corners=False)
        return torch.nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                                               align_corners=False).squeeze(1)

    def _spec_augment(self, mel: torch.Tensor) -> torch.Tensor:
        batch, bands, frames = mel.shape
        keep = torch.ones_like(mel, dtype=torch.bool)
        for _ in range(int(self.augment["frequency_masks"])):
            keep &= ~_random_ranges(batch, bands, int(self.augment["frequency_mask_width"]), mel.device)[:, :, None]
        for _ in range(int(self.augment["time_masks"])):
            keep &= ~_random_ranges(batch, frames, int(self.augment["time_mask_width"]), mel.device)[:, None, :]
        return mel * keep  # masked cells become 0, the normalised mean
