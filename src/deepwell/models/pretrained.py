"""Pretrained Hugging Face encoders (text, images, audio) inside the network: fine-tuned whole, or through a
PEFT adapter (LoRA; prompt tuning for text) with the base weights frozen.

Full fine-tuning: built from the encoder folder's config.json only (`from_config`: no weights, no code) when a
saved model is rebuilt, its weights then coming from the model's own weights.safetensors. An adapter: the base
weights always come from the base folder (its SHA-256 checked by runs/model_files.py before), and the model
folder holds only what `base_state_keys` leaves out: the adapter and everything above it.
`learning_rate_scale` sets how fast the encoder's parameters learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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


def adapted(model: nn.Module, spec: dict[str, Any], saved: bool) -> nn.Module:
    """The model with the spec's PEFT adapter around it (its base weights frozen), or as it is (`full`)."""
    method = spec.get("fine_tune", "full")
    if method == "full":
        return model
    with quiet_peft():
        return _peft_model(model, spec, method, saved)


@contextmanager
def quiet_peft() -> Iterator[None]:
    """PEFT's warnings that say nothing to a user: a deprecated question it asks transformers, and GPT-2's Conv1D
    layers, for which it sets fan_in_fan_out itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        warnings.filterwarnings("ignore", "fan_in_fan_out is set to False", UserWarning)
        yield


def _peft_model(model: nn.Module, spec: dict[str, Any], method: str, saved: bool) -> nn.Module:
    import peft

    if method == "lora":
        o = spec["lora"]
        return peft.get_peft_model(model, peft.LoraConfig(r=int(o["rank"]), lora_alpha=float(o["alpha"]),
                                                          lora_dropout=float(o["dropout"]),
                                                          target_modules=o["target_modules"], bias="none"))
    o = spec["prompt"]
    from_text = o.get("init_text") is not None and not saved  # a saved model's tokens come from its weights
    config = peft.PromptTuningConfig(
        task_type=peft.TaskType.FEATURE_EXTRACTION, num_virtual_tokens=int(o["virtual_tokens"]),
        prompt_tuning_init=peft.PromptTuningInit.TEXT if from_text else peft.PromptTuningInit.RANDOM,
        prompt_tuning_init_text=o.get("init_text") if from_text else None,
        tokenizer_name_or_path=spec["source"] if from_text else None)
    return peft.get_peft_model(model, config)


def linear_layer_names(config: Any) -> list[str]:
    """The last name part of every linear layer of the architecture `config` describes, in model order — what
    an encoder's LoRA adapts by default (PEFT matches a module by that suffix). The model is built on the meta
    device: no weights, no memory.

    Every linear layer rather than PEFT's table for BERT-like models (query and value): on three text sets
    (results/foundation*.md) validation accuracy tied (mean 0.8610 against 0.8606) and test accuracy was higher
    on all three (SMS 0.9964 against 0.9916, debian-packages 0.7833 against 0.7650, the holdout man-names
    0.7710 against 0.7672), as Dettmers et al. (QLoRA, 2023) found adapting every linear layer is what matches
    full fine-tuning; it costs 1.7× the trainable parameters (a 3.3 MB model folder)."""
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return list(dict.fromkeys(name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                              if isinstance(module, nn.Linear)))


def lora_targets(model_type: str) -> list[str] | str:
    """PEFT's LoRA target modules for a causal language model's architecture (GPT-2: c_attn), else every
    linear layer."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as KNOWN

    return list(KNOWN.get(model_type, [])) or "all-linear"


class _Adaptable(nn.Module):
    """A pretrained model (`self.model`) that may carry a PEFT adapter."""

    model: nn.Module
    adapter: bool = False

    def _build(self, spec: dict[str, Any], load_weights: bool) -> None:
        self.adapter = spec.get("fine_tune", "full") != "full"
        base = build_pretrained(spec, load_weights or self.adapter)
        self.model = adapted(base, spec, saved=not load_weights)

    def base_state_keys(self) -> set[str]:
        """State that comes from the base folder unchanged (not saved with an adapter): all but what learns."""
        if not self.adapter:
            return set()
        learning = {name for name, p in self.model.named_parameters() if p.requires_grad}
        return {f"model.{key}" for key in self.model.state_dict() if key not in learning}

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class PretrainedTextEncoder(_Adaptable):
    def __init__(self, spec: dict[str, Any], load_weights: bool = True) -> None:
        super().__init__()
        self._build(spec, load_weights)
        self.pad_id = int(spec["pad_id"])
        self.learning_rate_scale = float(spec["learning_rate_scale"])
        self.output_dim = int(spec["dim"])
        self.virtual_tokens = int(spec["prompt"]["virtual_tokens"]) if spec.get("fine_tune") == "prompt" else 0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != self.pad_id).long()
        if not torch.onnx.is_in_onnx_export():  # a traced graph would keep the example batch's width for every batch
            longest = int(mask.sum(dim=1).max()) if tokens.numel() else 0  # right padding: drop all-padding columns
            tokens, mask = tokens[:, :max(longest, 1)], mask[:, :max(longest, 1)]
        hidden = self.model(input_ids=tokens, attention_mask=mask).last_hidden_state
        hidden = hidden[:, self.virtual_tokens:]  # prompt tuning: the virtual tokens come first; pool the text's
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class PretrainedImageEncoder(_Adaptable):
    """uint8 images → augmentation (train mode) → the processor's normalisation → the model → pooled vector."""

    def __init__(self, spec: dict[str, Any], load_weights: bool = True) -> None:
        super().__init__()
        from deepwell.features.pretrained import pooled
        from deepwell.models.vision import ImageAugment

        self._build(spec, load_weights)
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


class PretrainedAudioEncoder(_Adaptable):
    """int16 waveforms → random time shift (train mode) → the feature extractor's per-clip normalisation →
    the model (its convolutional feature encoder frozen, as is usual for wav2vec 2.0-style models) → mean
    over time."""

    def __init__(self, spec: dict[str, Any], load_weights: bool = True) -> None:
        super().__init__()
        from deepwell.features.pretrained import pooled

        self._build(spec, load_weights)
        if not self.adapter and hasattr(self.model, "freeze_feature_encoder"):
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
