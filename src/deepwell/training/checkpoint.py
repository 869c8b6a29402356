"""Crash-safe checkpoints: one safetensors file (weights, best weights, optimizer state) with the
trainer's bookkeeping as JSON metadata, written to a temporary file and renamed into place.

A SIGKILL at any moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from deepwell.errors import ModelFileError
from deepwell.runs.files import atomic_path


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    best_state: dict[str, torch.Tensor] | None, averaged: dict[str, torch.Tensor] | None,
                    trainer_state: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for prefix, state in (("best", best_state), ("average", averaged)):
        if state is not None:
            tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in state.items()})
    optim = optimizer.state_dict()
    for index, state in optim["state"].items():
        for key, value in state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{key}"] = tensor.detach().cpu().contiguous()
    metadata = {"trainer": json.dumps(trainer_state), "param_groups": json.dumps(optim["param_groups"])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                    ) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore model and optimizer in place; return (best weights, trainer bookkeeping, averaged weights)."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        trainer_state = json.loads(metadata["trainer"])
        param_groups = json.loads(metadata["param_groups"])
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        raise ModelFileError(f"Checkpoint {path} is damaged or incomplete ({exc}); it cannot be resumed.") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    averaged = {k[8:]: v for k, v in tensors.items() if k.startswith("average.")} or None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    return best, trainer_state, averaged
