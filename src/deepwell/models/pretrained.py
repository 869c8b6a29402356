"""A pretrained Hugging Face text encoder inside the network, fine-tuned end to end.

Built from the encoder folder's config.json only (`from_config`: no weights, no code); the weights come
from the folder when training starts and from the model's own weights.safetensors after a save, so a
fine-tuned model reloads exactly. `learning_rate_scale` makes its parameters learn more slowly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class PretrainedTextEncoder(nn.Module):
    def __init__(self, spec: dict[str, Any], load_weights: bool = True) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        source = Path(spec["source"])
        if load_weights:
            self.model = AutoModel.from_pretrained(source, local_files_only=True, use_safetensors=True,
                                                   trust_remote_code=False)
        else:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(source, local_files_only=True))
        self.pad_id = int(spec["pad_id"])
        self.learning_rate_scale = float(spec["learning_rate_scale"])
        self.output_dim = int(spec["dim"])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != self.pad_id).long()
        hidden = self.model(input_ids=tokens, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
