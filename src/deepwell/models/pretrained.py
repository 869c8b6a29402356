"""Pretrained Hugging Face encoders (text, images, audio) inside the network, fine-tuned end to end.

Built from the encoder folder's config.json only (`from_config`: no weights, no code); the weights come
from the folder when training starts and from the model's own weights.safetensors after a save, so a
fine-tuned model reloads exactly. `learning_rate_scale` makes its parameters learn more slowly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def build_pretrained(spec: dict[str, Any], load_weights: bool) -> nn.Module:
    """The folder's model: with its weights when training starts, from config.json only when a saved model
    is rebuilt (its fine-tuned weights then come from weights.safetensors)."""
    from transformers import AutoConfig, AutoModel

    source = Path(spec["source"])
    if load_weights:
        return AutoModel.from_pretrained(source, local_files_only=True, use_safetensors=True,
                                         trust_remote_code=False)
    return AutoModel.from_config(AutoConfig.from_pretrained(source, local_files_only=True))


class PretrainedTextEncoder(nn.Module):
    def __init__(self, spec: dict[str, Any], load_weights: bool = True) -> None:
        super().__init__()
        self.model = build_pretrained(spec, load_weights)
        self.pad_id = int(spec["pad_id"])
        self.learning_rate_scale = float(spec["learning_rate_scale"])
        self.output_dim = int(spec["dim"])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != self.pad_id).long()
        hidden = self.model(input_ids=tokens, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class PretrainedImageEncoder(nn.Module):
    """uint8 images → augmentation (train mode) → the processor's normalisation → the model → pooled vector."""

    def __init__(self, spec: dict[str, Any], load_weights: bool = True) -> None:
        super().__init__()
        from deepwell.features.pretrained import pooled
        from deepwell.models.vision import ImageAugment

        self.model = build_pretrained(spec, load_weights)
        self.pool = pooled
        augment = spec["augment"]
        self.augment = ImageAugment(augment["crop_scale"], augment["flip"], augment["rotation"],
                                    augment["colour_jitter"]) if augment["enabled"] else nn.Identity()
        self.register_buffer("mean", torch.tensor(spec["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.learning_rate_scale = float(spec["learning_rate_scale"])
        self.output_dim = int(spec["dim"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.augment(images.float().div_(255.0))
        return self.pool(self.model(pixel_values=(x - self.mean) / self.std))


class PretrainedAudioEncoder(nn.Module):
    """int16 waveforms → random time shift (train mode) → the feature extractor's per-clip normalisation →
    the model (its convolutional feature encoder frozen, as is usual for wav2vec 2.0-style models) → mean
    over time."""

    def __init__(self, spec: dict[str, Any], load_weights: bool = True) -> None:
        super().__init__()
        from deepwell.features.pretrained import pooled

        self.model = build_pretrained(spec, load_weights)
        if hasattr(self.model, "freeze_feature_encoder"):
            self.model.freeze_feature_encoder()
        self.pool = pooled
        self.normalize = bool(spec["normalize"])
        self.time_shift = int(spec["time_shift"]) if spec["augment"] else 0
        self.learning_rate_scale = float(spec["learning_rate_scale"])
        self.output_dim = int(spec["dim"])

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        from deepwell.models.audio import AudioEncoder

        x = waves.float() / 32768.0
        if self.training and self.time_shift > 0:
            x = AudioEncoder.shift(x, self.time_shift)
        if self.normalize:  # as Wav2Vec2FeatureExtractor(do_normalize=True): zero mean, unit variance per clip
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-7)
        return self.pool(self.model(input_values=x))
