"""A disk cache of frozen-encoder embeddings, so a second run (another seed, another head, a tuning trial)
on the same texts, images or clips skips the encoder entirely.

One safetensors file per encoder and input setting: the SHA-1 of each input and its embedding. Written
atomically; two runs writing at once lose at most each other's new entries, never the file. The location is
`$DEEPWELL_CACHE_DIR/embeddings` (default `~/.cache/deepwell/embeddings`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepwell.runs.files import atomic_path


def cache_root() -> Path:
    base = os.environ.get("DEEPWELL_CACHE_DIR") or Path.home() / ".cache" / "deepwell"
    return Path(base) / "embeddings"


def encoder_fingerprint(source: Path, setting: str) -> str:
    """Identifies the encoder by its weights (not its path) plus whatever changes its output."""
    digest = hashlib.sha256(setting.encode())
    with (source / "model.safetensors").open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def input_key(value: str | bytes | np.ndarray) -> bytes:
    if isinstance(value, np.ndarray):
        value = f"{value.dtype}{value.shape}".encode() + np.ascontiguousarray(value).tobytes()
    elif isinstance(value, str):
        value = value.encode("utf-8")
    return hashlib.sha1(value).digest()


class EmbeddingCache:
    """The cached embeddings of one encoder setting: read from disk once, looked up (and, while training,
    extended), written once per table that added to it."""

    def __init__(self, fingerprint: str, dim: int) -> None:
        self.path, self.dim = cache_root() / f"{fingerprint}.safetensors", dim
        self.stored = _read(self.path, dim)
        self.changed = False

    def embeddings(self, inputs: Sequence[str | bytes | np.ndarray], embed: Callable[[list[int]], np.ndarray],
                   remember: bool = True) -> np.ndarray:
        """Embeddings of `inputs`; `embed(positions)` computes those not cached ([len(positions), dim]).
        `remember=False` (prediction) only looks up: the cache neither grows nor is rewritten per request."""
        keys = [input_key(v) for v in inputs]
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        missing = []
        for position, key in enumerate(keys):
            row = self.stored.get(key)
            if row is None:
                missing.append(position)
            else:
                out[position] = row
        if missing:
            computed = embed(missing)
            out[missing] = computed
            if remember:
                self.stored.update({keys[p]: computed[i] for i, p in enumerate(missing)})
                self.changed = True
        return out

    def save(self) -> None:
        if self.changed:
            _write(self.path, self.stored)
            self.changed = False


def _read(path: Path, dim: int) -> dict[bytes, np.ndarray]:
    try:
        tensors = load_file(str(path))
        keys, vectors = tensors["keys"].numpy(), tensors["vectors"].numpy()
    except (OSError, SafetensorError, KeyError):  # absent or damaged: start afresh
        return {}
    if vectors.ndim != 2 or vectors.shape[1] != dim or keys.shape != (len(vectors), 20):
        return {}
    return {k.tobytes(): v for k, v in zip(keys, vectors, strict=True)}


def _write(path: Path, stored: dict[bytes, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = np.frombuffer(b"".join(stored), dtype=np.uint8).reshape(len(stored), 20)
    vectors = np.stack(list(stored.values())).astype(np.float32)
    with atomic_path(path) as tmp:
        save_file({"keys": torch.from_numpy(keys.copy()), "vectors": torch.from_numpy(vectors)}, str(tmp))
