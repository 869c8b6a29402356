"""The model folder: weights.safetensors + preprocessor.json + architecture.json + meta.json.

Nothing in it is executable: the network is rebuilt from the architecture JSON and filled with tensors.
A folder is written whole beside its target and swapped in, so a save that fails leaves the old model.
An encoder with a PEFT adapter refers to its base folder (`base` in its spec: name, path, SHA-256 of the
weights); weights.safetensors then holds only what learned, and loading finds the base and checks its hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepwell.errors import ModelFileError
from deepwell.evaluation.diagnosis import Diagnosis
from deepwell.evaluation.results import RunMetrics
from deepwell.fairness.thresholds import GroupThresholds
from deepwell.features.pipeline import Preprocessor
from deepwell.models import base_folder
from deepwell.models.network import TabularNetwork, learned_state, with_base_state
from deepwell.monitoring.profile import ReferenceProfile
from deepwell.runs.files import staged_folder, write_json, write_text

FORMAT = "deepwell-model"
FORMAT_VERSION = 1
FILES = ("meta.json", "architecture.json", "preprocessor.json", "weights.safetensors")
METRICS, DIAGNOSIS = "metrics.json", "diagnosis.json"  # optional: what the model scored when it was trained
REFERENCE = "reference.json"  # optional: the training data's profile that drift is measured against
THRESHOLDS = "fairness_thresholds.json"  # optional: group-specific decision thresholds (--mitigate threshold)


@dataclass
class SavedModel:
    preprocessor: Preprocessor
    network: TabularNetwork
    meta: dict[str, Any]
    metrics: RunMetrics | None = None
    diagnosis: Diagnosis | None = None
    reference: ReferenceProfile | None = None
    thresholds: GroupThresholds | None = None


def save_model_folder(path: Path, preprocessor: Preprocessor, network: TabularNetwork, meta: dict[str, Any],
                      metrics: RunMetrics | None = None, diagnosis: Diagnosis | None = None,
                      reference: ReferenceProfile | None = None, thresholds: GroupThresholds | None = None) -> None:
    with staged_folder(Path(path)) as staging:
        state = learned_state(network)
        save_file(state, str(staging / "weights.safetensors"), metadata={"format": FORMAT})
        write_text(staging / "preprocessor.json", preprocessor.to_json())
        preprocessor.save_assets(staging / "assets")
        write_json(staging / "architecture.json", _portable(network.architecture))
        write_json(staging / "meta.json", {"format": FORMAT, "format_version": FORMAT_VERSION, **meta})
        if metrics is not None:
            write_json(staging / METRICS, metrics.to_dict())
        if diagnosis is not None:
            write_json(staging / DIAGNOSIS, diagnosis.to_dict())
        if reference is not None:
            write_json(staging / REFERENCE, reference.to_dict())
        if thresholds is not None:
            write_json(staging / THRESHOLDS, thresholds.to_dict())


def find_model_folder(path: str | Path) -> Path:
    """Accept a model folder or a run folder holding `model/`."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model or run folder.")
    if (path / "model").is_dir():
        return path / "model"
    if path.is_dir() and any((path / name).exists() for name in FILES):
        return path
    raise ModelFileError(f"{path}: not a deepwell model folder (expected {', '.join(FILES)}) "
                         "nor a run folder with a model/ inside.")


def load_model_folder(path: str | Path) -> SavedModel:
    folder = find_model_folder(path)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise ModelFileError(f"{folder}: incomplete model folder, missing {', '.join(missing)}. "
                             "Was the training run interrupted before it saved a model?")
    meta = _read_json(folder / "meta.json")
    if meta.get("format") != FORMAT or not isinstance(meta.get("format_version"), int):
        raise ModelFileError(f"{folder / 'meta.json'}: not a deepwell model description.")
    if meta["format_version"] > FORMAT_VERSION:
        raise ModelFileError(f"{folder}: saved by a newer deepwell (format {meta['format_version']}); "
                             f"this version reads format {FORMAT_VERSION}. Upgrade deepwell.")
    try:
        preprocessor = Preprocessor.from_state(_read_json(folder / "preprocessor.json"))
        preprocessor.attach_assets(folder / "assets")
        network = TabularNetwork.from_architecture(_located(_read_json(folder / "architecture.json"), folder))
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{folder}: preprocessor.json or architecture.json is damaged: "
                             f"{type(exc).__name__}: {exc}") from None
    try:
        weights = load_file(str(folder / "weights.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{folder / 'weights.safetensors'}: damaged weights file ({exc}).") from None
    try:
        network.load_state_dict(with_base_state(network, weights), strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = (lines[1] if len(lines) > 1 else lines[0])[:240]
        raise ModelFileError(f"{folder / 'weights.safetensors'}: weights do not match architecture.json "
                             f"({first}).") from None
    network.eval()
    return SavedModel(preprocessor, network, meta, _optional(folder, METRICS, RunMetrics.from_dict),
                      _optional(folder, DIAGNOSIS, Diagnosis.from_dict),
                      _optional(folder, REFERENCE, ReferenceProfile.from_dict),
                      _optional(folder, THRESHOLDS, GroupThresholds.from_dict))


def _optional(folder: Path, name: str, parse: Any) -> Any:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return parse(_read_json(path))
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{path}: damaged ({name} does not match this version of deepwell).") from None


def _portable(architecture: dict[str, Any]) -> dict[str, Any]:
    """Encoders built from files (a fine-tuned pretrained encoder) point at the model's own assets/ copy
    and are rebuilt from its config only: their weights are in weights.safetensors. An adapter's encoder
    points at its base, found again by `base` when the model is loaded."""
    def portable(key: str, spec: dict[str, Any]) -> dict[str, Any]:
        if "source" not in spec:
            return spec
        return {**spec, "source": "base" if "base" in spec else f"assets/{key}", "saved": True}

    return {**architecture, "inputs": {key: portable(key, spec) for key, spec in architecture["inputs"].items()}}


def _located(architecture: dict[str, Any], folder: Path) -> dict[str, Any]:
    def located(spec: dict[str, Any]) -> dict[str, Any]:
        if "source" not in spec:
            return spec
        source = base_folder.locate(spec["base"], folder) if "base" in spec else folder / spec["source"]
        return {**spec, "source": str(source)}

    return {**architecture, "inputs": {key: located(spec) for key, spec in architecture["inputs"].items()}}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: damaged JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object.")
    return data
