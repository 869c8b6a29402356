"""TabularNetwork: encoders → concatenation → MLP trunk (optionally residual) → task head; and
EnsembleNetwork: several of them trained together and averaged, one model to save, serve and export.

A network is fully described by a JSON-able architecture dict, so a saved model is rebuilt from
data alone and loading never runs code from the model folder (`build_network`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepwell.config import SMOOTH_SCALE, ModelConfig
from deepwell.models.dropout import Dropout
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
                                  ACTIVATIONS[config.activation](), Dropout(config.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class InputModules(nn.ModuleDict):
    """The encoders by network input key. A key is a column name, which may hold a '.' that torch refuses in a module
    name; it is stored escaped ('%' → '%25', '.' → '%2E': state keys stay one string per column, exactly reversible)
    and every method here takes and gives the key itself."""

    @staticmethod
    def _stored(key: str) -> str:
        return key.replace("%", "%25").replace(".", "%2E")

    @staticmethod
    def _key(stored: str) -> str:
        return stored.replace("%2E", ".").replace("%25", "%")

    def __getitem__(self, key: str) -> nn.Module:
        return super().__getitem__(self._stored(key))

    def __setitem__(self, key: str, module: nn.Module) -> None:
        super().__setitem__(self._stored(key), module)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(self._stored(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(self._stored(key))

    def __iter__(self):
        return (self._key(stored) for stored in super().__iter__())

    def keys(self):
        return list(iter(self))

    def items(self):
        return [(self._key(stored), module) for stored, module in super().items()]

    def pop(self, key: str) -> nn.Module:
        return super().pop(self._stored(key))


class TabularNetwork(nn.Module):
    def __init__(self, inputs: dict[str, dict[str, Any]], config: ModelConfig, output_dim: int) -> None:
        super().__init__()
        if config.periodic_scale == "auto":  # unresolved (no race ran, pipeline/race.py): what auto is without one
            config = config.model_copy(update={"periodic_scale": SMOOTH_SCALE})
        self.architecture = {"inputs": inputs, "model": config.model_dump(mode="json"), "output_dim": output_dim}
        self.encoders = InputModules({key: build_encoder(spec, config.embedding_dropout, config.numeric_embedding,
                                                      config.periodic_scale) for key, spec in inputs.items()})
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
                           act(), Dropout(config.dropout)]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, output_dim)

    @classmethod
    def from_architecture(cls, architecture: dict[str, Any]) -> TabularNetwork | EnsembleNetwork:
        """The network an architecture dict describes: one network, or an ensemble when `ensemble_size` > 1."""
        model = {"ensemble_size": 1, **architecture["model"]}  # saved before ensembles existed: one network
        return build_network(architecture["inputs"], ModelConfig.model_validate(model), int(architecture["output_dim"]),
                             architecture.get("members"), architecture.get("member_weights"))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        encoded = [encoder(batch[key]) for key, encoder in self.encoders.items()]
        hidden = torch.cat(encoded, dim=1) if len(encoded) > 1 else encoded[0]
        return self.head(self.trunk(hidden))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


class EnsembleNetwork(nn.Module):
    """Several networks on the same inputs, each trained on its own and averaged: probabilities for classes,
    values for regression. One output per row like a single network — for classes the log of the mean
    probability, so `softmax` gives the average — so prediction, serving and export need nothing new.

    `architecture["members"]` holds each member's model settings (they may differ: the preset varies the
    architectures), so a saved ensemble is rebuilt from data alone. `weights` (summing to 1; default equal) weigh
    the members' average — a fairness reduction's mixture (fairness/reductions.py) is one such ensemble.
    """

    def __init__(self, networks: list[TabularNetwork], config: ModelConfig,
                 weights: list[float] | None = None) -> None:
        """An ensemble of `networks` (trained ones are used as they are, not copied)."""
        super().__init__()
        first = networks[0].architecture
        self.architecture = {"inputs": first["inputs"], "output_dim": first["output_dim"],
                             "model": config.model_copy(update={"ensemble_size": len(networks)}).model_dump(
                                 mode="json"),
                             "members": [n.architecture["model"] for n in networks]}
        if weights is not None:
            self.architecture["member_weights"] = [float(w) for w in weights]
        self.members = nn.ModuleList(networks)
        self.regression = int(first["output_dim"]) == 1
        shares = torch.full((len(networks),), 1 / len(networks)) if weights is None else torch.tensor(weights)
        self.register_buffer("log_weights", shares.float().log().view(-1, 1, 1), persistent=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = torch.stack([member(batch).float() for member in self.members])
        if self.regression:
            return (outputs * self.log_weights.exp()).sum(dim=0)
        return torch.logsumexp(outputs.log_softmax(dim=-1) + self.log_weights, dim=0)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_network(inputs: dict[str, dict[str, Any]], config: ModelConfig, output_dim: int,
                  members: list[dict[str, Any]] | None = None,
                  weights: list[float] | None = None) -> TabularNetwork | EnsembleNetwork:
    """One network, or the ensemble `members` describes (a saved architecture's member settings and weights)."""
    if not members:
        return TabularNetwork(inputs, config, output_dim)
    return EnsembleNetwork([TabularNetwork(inputs, ModelConfig.model_validate(m), output_dim) for m in members], config,
                           weights)


def base_state_keys(network: nn.Module) -> set[str]:
    """State keys that come unchanged from a pretrained base folder (an encoder with a PEFT adapter): left out
    of weights and checkpoints, which then hold only what learned."""
    keys: set[str] = set()
    for name, module in network.named_modules():
        if hasattr(module, "base_state_keys"):
            keys |= {f"{name}.{key}" for key in module.base_state_keys()}
    return keys


def learned_state(network: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """`state` (default: the network's) without the base keys, as CPU tensors ready for safetensors."""
    shared = base_state_keys(network)
    state = network.state_dict() if state is None else state
    return {k: v.detach().cpu().contiguous() for k, v in state.items() if k not in shared}


def with_base_state(network: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A learned state completed with the base weights the network holds (the inverse of `learned_state`)."""
    shared = base_state_keys(network)
    if not shared:
        return state
    current = network.state_dict()
    return {**{k: current[k] for k in shared}, **state}
