"""TabularNetwork: encoders → concatenation → MLP trunk (optionally residual) → task head.

The network is fully described by a JSON-able architecture dict, so a saved model is rebuilt from
data alone and loading never runs code from the model folder.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepwell.config import ModelConfig
from deepwell.models.encoders import build_encoder

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def _norm(kind: str, width: int) -> nn.Module:
    return {"batch": lambda: nn.BatchNorm1d(width), "layer": lambda: nn.LayerNorm(width),
            "none": nn.Identity}[kind]()


class ResidualBlock(nn.Module):
    """Pre-norm block: x + dropout(act(linear(norm(x))))."""

    def __init__(self, width: int, config: ModelConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(_norm(config.normalization, width), nn.Linear(width, width),
                                  ACTIVATIONS[config.activation](), nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TabularNetwork(nn.Module):
    def __init__(self, inputs: dict[str, dict[str, Any]], config: ModelConfig, output_dim: int) -> None:
        super().__init__()
        self.architecture = {"inputs": inputs, "model": config.model_dump(mode="json"), "output_dim": output_dim}
        self.encoders = nn.ModuleDict({key: build_encoder(spec, config.embedding_dropout, config.numeric_embedding)
                                       for key, spec in inputs.items()})
        width_in = sum(encoder.output_dim for encoder in self.encoders.values())
        width = config.hidden_width
        act = ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        if config.hidden_layers == 0:
            width = width_in
        elif config.residual:
            layers += [nn.Linear(width_in, width)]
            layers += [ResidualBlock(width, config) for _ in range(config.hidden_layers)]
            layers += [_norm(config.normalization, width), act()]
        else:
            for i in range(config.hidden_layers):
                layers += [nn.Linear(width_in if i == 0 else width, width), _norm(config.normalization, width),
                           act(), nn.Dropout(config.dropout)]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, output_dim)

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> TabularNetwork:
        return cls(architecture["inputs"], ModelConfig.model_validate(architecture["model"]),
                   int(architecture["output_dim"]))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        encoded = [encoder(batch[key]) for key, encoder in self.encoders.items()]
        hidden = torch.cat(encoded, dim=1) if len(encoded) > 1 else encoded[0]
        return self.head(self.trunk(hidden))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
