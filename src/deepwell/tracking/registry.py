"""The MLflow model registry: list registered models, point an alias (e.g. `production`) at a version, and
load a deepwell model from a `models:/NAME@ALIAS` (or `models:/NAME/VERSION`, `runs:/ID/model`) URI.

Loading reads the deepwell model folder stored inside the MLflow model (safetensors + JSON); it does not run
the pyfunc code, so loading still executes nothing from the downloaded files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from deepwell.errors import ConfigError, ModelFileError
from deepwell.tracking.tracker import TrackingOptions, quiet_mlflow


def _client(tracking_uri: str | None):
    try:
        import mlflow
    except ImportError:
        raise ConfigError("The model registry needs MLflow: pip install 'deepwell[track]'.") from None
    uri = TrackingOptions(uri=tracking_uri).resolved_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise ConfigError(f"No MLflow store at {uri[len('sqlite:///'):]}: nothing has been tracked there yet. Train "
                          "with tracking first, or point at the store with --tracking-uri (or -o, the folder of "
                          "run folders whose mlflow.db to read).")
    mlflow.set_tracking_uri(uri)
    return mlflow, mlflow.MlflowClient(uri)


def list_models(tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """One row per model version: name, version, aliases, run id, creation time."""
    rows = []
    with quiet_mlflow():
        mlflow, client = _client(tracking_uri)
        for registered in client.search_registered_models():
            aliases = registered.aliases or {}
            for version in client.search_model_versions(f"name='{registered.name}'"):
                rows.append({"name": registered.name, "version": int(version.version),
                             "aliases": sorted(a for a, v in aliases.items() if str(v) == str(version.version)),
                             "run_id": version.run_id, "created": int(version.creation_timestamp or 0)})
    return sorted(rows, key=lambda r: (r["name"], -r["version"]))


def promote(name: str, version: int, alias: str = "production", tracking_uri: str | None = None) -> None:
    """Point `alias` at `version` of `name` (registry aliases, not the deprecated stages)."""
    with quiet_mlflow():
        mlflow, client = _client(tracking_uri)
        try:
            client.get_model_version(name, str(version))
        except mlflow.exceptions.MlflowException:
            known = [str(r["version"]) for r in list_models(tracking_uri) if r["name"] == name]
            raise ConfigError(f"Registered model {name!r} has no version {version} "
                              f"(versions: {', '.join(known) or 'none'}).") from None
        client.set_registered_model_alias(name, alias, str(version))


def download_model(uri: str, tracking_uri: str | None = None) -> Path:
    """The deepwell model folder inside a registered (or logged) MLflow model, downloaded to a temporary folder."""
    with quiet_mlflow():
        mlflow, _ = _client(tracking_uri)
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                             dst_path=tempfile.mkdtemp(prefix="deepwell-")))
        except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad URI
            raise ModelFileError(f"{uri}: cannot be fetched from the MLflow registry "
                                 f"({type(exc).__name__}: {exc}).") from None
    mlmodel = local / "MLmodel"
    try:
        flavor = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))["flavors"]["python_function"]
        folder = local / flavor["artifacts"]["deepwell_model"]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise ModelFileError(f"{uri}: not a deepwell model (no deepwell_model artifact in its MLmodel).") from None
    return folder
