"""Crash-safe checkpoints: one safetensors file (weights, best weights, averaged weights, optimizer state) with
the trainer's and its callbacks' bookkeeping as JSON metadata, written to a temporary file and renamed into place.

A SIGKILL at any moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from deepwell.errors import ModelFileError
from deepwell.runs.files import atomic_path

if TYPE_CHECKING:
    from deepwell.training.trainer import Trainer


def save_checkpoint(path: Path, trainer: Trainer) -> None:
    """Weights without a PEFT adapter's base (`learned_state`): a LoRA run's checkpoint is the adapter's size."""
    from deepwell.models.network import learned_state

    network = trainer.network
    tensors = _prefixed("model", learned_state(network))
    tensors.update(_prefixed("best", learned_state(network, trainer.best_state or {})))
    if trainer.average is not None:
        tensors.update(_prefixed("average", learned_state(network, trainer.average.state)))
    optim = trainer.optimizer.state_dict()
    for index, state in optim["state"].items():
        for key, value in state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = tensor.detach().cpu().contiguous()
    metadata = {"trainer": json.dumps(trainer.bookkeeping()), "param_groups": json.dumps(optim["param_groups"])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_checkpoint(path: Path, trainer: Trainer) -> None:
    """Restore the trainer (network, optimizer, best and averaged weights, bookkeeping) in place."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        bookkeeping = json.loads(metadata["trainer"])
        param_groups = json.loads(metadata["param_groups"])
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        raise ModelFileError(f"Checkpoint {path} is damaged or incomplete ({exc}); it cannot be resumed.") from None
    from deepwell.models.network import with_base_state

    network = trainer.network
    complete = {part: with_base_state(network, _unprefixed(part, tensors)) if _unprefixed(part, tensors) else None
                for part in ("model", "best", "average")}
    network.load_state_dict(complete["model"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    trainer.optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    trainer.restore(bookkeeping, best=complete["best"], averaged=complete["average"])


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in state.items()}


def _unprefixed(prefix: str, tensors: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
