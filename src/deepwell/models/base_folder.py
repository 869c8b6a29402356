"""A pretrained Hugging Face folder as a base: its weights checked (safetensors only), identified by SHA-256, and
found again by that identity when an adapter trained on it is loaded.

An adapter (a PEFT LoRA or prompt-tuning model: encoders in models/pretrained.py, causal LMs in generation/) refers
to its base instead of copying it: `identity()` records the name it was configured with, the folder it was read
from and the hash of its weights; `locate()` returns a folder holding exactly those weights, or explains.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from deepwell.errors import ConfigError, ModelFileError

WEIGHTS = "model.safetensors"
SHARDS = "model.safetensors.index.json"  # large models: weights in shards the index names


def weight_files(folder: Path) -> list[Path]:
    """The folder's safetensors weight files (one, or the shards of its index); empty when it has none."""
    folder = Path(folder)
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    if (folder / SHARDS).is_file():
        try:
            names = sorted(set(json.loads((folder / SHARDS).read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            raise ConfigError(f"{folder / SHARDS}: damaged shard index (expected a 'weight_map').") from None
        return [folder / name for name in names]
    return []


def check_weights(folder: Path, what: str = "pretrained encoder") -> None:
    """Refuse a folder without safetensors weights, naming the pickle files it has instead."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such {what} folder.")
    files = weight_files(folder)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{folder}: the shard index names {', '.join(missing)}, which are missing.")
    if not files:
        pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt*"))
        found = f" (it has {', '.join(pickled)}: pickle files, which can run code when loaded)" if pickled else ""
        raise ConfigError(f"{folder}: {what} folder without {WEIGHTS}{found}; deepwell loads safetensors "
                          "weights only. Convert it with transformers' save_pretrained(safe_serialization=True).")


def weights_hash(folder: Path) -> str:
    """SHA-256 over the folder's weight files (in order): the identity an adapter checks before it is applied."""
    digest = hashlib.sha256()
    for path in weight_files(folder):
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


_HASHES: dict[tuple, str] = {}


def cached_hash(folder: Path) -> str:
    """`weights_hash`, remembered per (files, sizes, mtimes) for this process (a base is often 100s of MB)."""
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in weight_files(folder))
    if key not in _HASHES:
        _HASHES[key] = weights_hash(folder)
    return _HASHES[key]


def identity(name: str, folder: Path) -> dict[str, str]:
    """What an adapter records of its base: the name as configured, the folder it was read from, the hash."""
    return {"name": str(name), "path": str(Path(folder).resolve()), "sha256": cached_hash(folder)}


def locate(base: dict[str, str], model: Path) -> Path:
    """The base an adapter was trained on: at its recorded path, else where its configured name resolves (an
    installed model package), and only with the very weights it was trained on."""
    from deepwell.features.pretrained import resolve_pretrained

    candidates = [Path(base["path"])]
    try:
        candidates.append(resolve_pretrained(base["name"]))
    except ConfigError:
        pass
    different = []
    for candidate in dict.fromkeys(candidates):
        if weight_files(candidate) and all(f.is_file() for f in weight_files(candidate)):
            if cached_hash(candidate) == base["sha256"]:
                return candidate
            different.append(str(candidate))
    found = f"; {', '.join(different)} holds different weights (the base changed since training)" if different else ""
    raise ModelFileError(f"{model}: this model holds an adapter for the base model {base['name']!r} and refers to "
                         f"it instead of copying it: expected at {base['path']} with weights of SHA-256 "
                         f"{base['sha256'][:16]}…{found}. Put that base folder back (or install its package), "
                         "then load again.")


def transformers_quietly(what: str):
    """The transformers module with its progress bars and notes off, or a ConfigError saying what needs it."""
    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise ConfigError(f"{what} need transformers: pip install 'deepwell[llm]'.") from None
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    return transformers
