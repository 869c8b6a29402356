"""Finding and comparing runs: `deepwell runs` (from MLflow) and `deepwell compare` (MLflow runs or run folders)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from deepwell.errors import ConfigError
from deepwell.evaluation.results import RunMetrics
from deepwell.runs.layout import RunFolder
from deepwell.tracking.registry import _client
from deepwell.tracking.tracker import DEFAULT_EXPERIMENT, flatten, quiet_mlflow

FINAL_PREFIXES = ("test_", "validation_", "baseline_", "training_", "before_", "after_")
KEY_METRICS = ("test_accuracy", "test_roc_auc", "test_f1_macro", "test_rmse", "test_r2",
               "baseline_test_accuracy", "baseline_test_rmse", "after_loss", "after_exact_match")


def list_runs(experiment: str | None = None, tracking_uri: str | None = None) -> pd.DataFrame:
    """Runs of an experiment, newest first, with their key metrics."""
    name = experiment or DEFAULT_EXPERIMENT
    with quiet_mlflow():
        mlflow, _ = _client(tracking_uri)
        if mlflow.get_experiment_by_name(name) is None:
            raise ConfigError(f"No MLflow experiment named {name!r} at {mlflow.get_tracking_uri()}.")
        found = mlflow.search_runs(experiment_names=[name], order_by=["attributes.start_time DESC"])
    if found.empty:
        return pd.DataFrame(columns=["run_id", "name", "status", "started", "task", "target"])
    table = pd.DataFrame({
        "run_id": found["run_id"], "name": found.get("tags.mlflow.runName"), "status": found["status"],
        "started": pd.to_datetime(found["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
        "task": found.get("tags.task"), "target": found.get("tags.target")})
    for metric in KEY_METRICS:
        if f"metrics.{metric}" in found and found[f"metrics.{metric}"].notna().any():
            table[metric] = found[f"metrics.{metric}"].round(4)
    return table


def generation_flat(metrics: dict[str, Any]) -> dict[str, float]:
    """A fine-tuned causal LM's metrics.json as flat numbers: before_loss, after_exact_match, …"""
    return {f"{when}_{key}": value for when in ("before", "after") for key, value in metrics[when].items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def run_summary(ref: str, tracking_uri: str | None = None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(label, params, metrics) of a run folder or an MLflow run id."""
    run = RunFolder(Path(ref))
    if run.config.is_file():
        params = flatten(yaml.safe_load(run.config.read_text(encoding="utf-8")))
        metrics: dict[str, Any] = {}
        if run.metrics.is_file():
            data = json.loads(run.metrics.read_text(encoding="utf-8"))
            metrics = generation_flat(data) if data.get("kind") == "generation" else RunMetrics.from_dict(data).flat()
        return run.path.name, params, metrics
    with quiet_mlflow():
        mlflow, client = _client(tracking_uri)
        try:
            run = client.get_run(ref)
        except mlflow.exceptions.MlflowException:
            raise ConfigError(f"{ref!r} is neither a run folder nor an MLflow run id at "
                              f"{mlflow.get_tracking_uri()}.") from None
    final = {k: v for k, v in run.data.metrics.items() if k.startswith(FINAL_PREFIXES)}
    return run.info.run_name or ref, dict(run.data.params), final


def compare(refs: list[str], tracking_uri: str | None = None, all_params: bool = False) -> pd.DataFrame:
    """Settings that differ (all of them with `all_params`) and every final metric, one column per run."""
    if len(refs) < 2:
        raise ConfigError("compare needs at least two runs (run folders or MLflow run ids).")
    summaries = [run_summary(ref, tracking_uri) for ref in refs]
    labels = [label if [s[0] for s in summaries].count(label) == 1 else f"{label} ({ref})"
              for (label, _, _), ref in zip(summaries, refs, strict=True)]
    params = pd.DataFrame({label: {k: str(v) for k, v in p.items()} for label, (_, p, _) in
                           zip(labels, summaries, strict=True)})
    if not all_params and len(params):
        params = params[params.nunique(axis=1, dropna=False) > 1]
    metrics = pd.DataFrame({label: m for label, (_, _, m) in zip(labels, summaries, strict=True)})
    params.index = [f"param {k}" for k in params.index]
    metrics.index = [f"metric {k}" for k in metrics.index]
    return pd.concat([params, metrics.sort_index()])
