"""Run: the only owner of the run folder, the MLflow tracker and the report. `train` = prepare → fit → score,
with every result written to a new run folder (crash-safe, resumable) and mirrored to MLflow."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from deepwell import __version__
from deepwell.config import ClusterConfig, Config, Preset
from deepwell.data.identity import DataIdentity
from deepwell.data.io import TableLike
from deepwell.data.profile import run_profile
from deepwell.errors import DataError
from deepwell.features.pipeline import Preprocessor
from deepwell.inference.predict import from_outputs, with_thresholds
from deepwell.model import Model
from deepwell.pipeline.fit import Fitted, fit, fit_preprocessor
from deepwell.pipeline.prepare import ConfigLike, Prepared, prepare, prepare_again
from deepwell.pipeline.score import Scored, score
from deepwell.runs.files import write_json, write_text
from deepwell.runs.layout import RunFolder, RunStatus
from deepwell.tracking.callback import TrackEpochs
from deepwell.tracking.tracker import MlflowTracker, TrackingOptions
from deepwell.training.callbacks import Callback
from deepwell.training.state import StopReason


def train(data: TableLike | None = None, target: str | None = None, *, config: ConfigLike = None,
          output: str | Path = "runs", name: str | None = None, epochs: int | None = None, seed: int | None = None,
          preset: Preset | None = None, quiet: bool = False, resume: str | Path | None = None,
          track: bool | None = None, tracking_uri: str | None = None, experiment: str | None = None,
          register: str | None = None, cluster: ClusterConfig | dict[str, Any] | None = None,
          callbacks: Sequence[Callback] = ()) -> Model:
    """Train a network on a table and save a run folder; returns the trained `Model`.

    `data` is a file path (CSV, TSV, Parquet, JSONL), a folder of class folders, or a DataFrame. `resume`
    continues a run folder whose training was interrupted (for a DataFrame run, pass the same DataFrame again).
    `preset` (fast, balanced, best; default: the config's, balanced) trades time for accuracy: one network, or an
    ensemble of several averaged into one model where the data is small enough to afford it.
    The run is tracked in MLflow when it is installed (`tracking_uri`, else $MLFLOW_TRACKING_URI, else
    OUTPUT/mlflow.db; `track=False`, or DEEPWELL_TRACK=0 in the environment, to skip); `register` adds the model to
    the registry under that name. `cluster` (a ClusterConfig or its fields, e.g. {"backend": "ray", "workers": 4})
    trains on a Ray cluster instead of this process; a resumed run keeps its own unless `cluster` is given.
    `callbacks` (training.callbacks.Callback) see the training loop.
    """
    cluster = _cluster(cluster)
    tracking = TrackingOptions(enabled=track, uri=tracking_uri, experiment=experiment, register=register,
                               home=Path(output))
    if resume is not None:
        return _resume(RunFolder.existing(resume), data, quiet, tracking, callbacks, cluster)
    if data is None:
        raise DataError("No data given: pass a table file, a folder of class folders, or a DataFrame.")
    prepared = prepare(data, target, config, epochs=epochs, seed=seed, preset=preset, progress=not quiet)
    if cluster is not None:
        prepared.config.cluster = cluster
    run, tracker = _open(prepared, output, name, tracking)
    return _execute(run, prepared, tracker, quiet=quiet, resume=False, callbacks=callbacks)


def record(prepared: Prepared, fitted: Fitted, scored: Scored, *, output: str | Path = "runs",
           name: str | None = None, **tracking: Any) -> Model:
    """A run folder (and MLflow run) for a fit made elsewhere — e.g. the round `--auto-capacity` keeps."""
    run, tracker = _open(prepared, output, name, TrackingOptions(
        enabled=tracking.get("track"), uri=tracking.get("tracking_uri"), experiment=tracking.get("experiment"),
        register=tracking.get("register"), home=Path(output)))
    write_text(run.preprocessor, fitted.preprocessor.to_json())
    for epoch in fitted.result.history:
        tracker.log_epoch(epoch.row())
    return _finish(run, prepared, fitted, scored, tracker)


def _open(prepared: Prepared, output: str | Path, name: str | None,
          tracking: TrackingOptions) -> tuple[RunFolder, MlflowTracker]:
    """A new run folder with what is known before training, and its MLflow run."""
    config, identity = prepared.config, prepared.identity
    run = RunFolder.create(output, name, prepared.source)
    write_text(run.config, config.to_yaml())
    run.write_info(status=RunStatus.RUNNING.value, deepwell_version=__version__, data=identity.to_dict(),
                   split=prepared.split_sizes(), skipped_files=len(prepared.skipped),
                   **({"streamed": {"sample_rows": config.data.sample_rows,
                                    "unlabelled_rows": prepared.stream.unlabelled}} if prepared.stream else {}))
    write_json(run.profile, run_profile(prepared.frame, config, prepared.splits))
    if prepared.skipped:
        pd.DataFrame(prepared.skipped).to_csv(run.skipped_files, index=False)
    tracker = MlflowTracker(tracking)
    tracker.start(run, config.model_dump(mode="json"), {
        "deepwell.version": __version__, "data.path": identity.path or "DataFrame", "data.sha256": identity.digest,
        "target": config.target, "task": config.task.value, "run_dir": str(run.path.resolve())})
    if tracker.summary():
        run.write_info(tracking=tracker.summary())
    return run, tracker


def _cluster(cluster: ClusterConfig | dict[str, Any] | None) -> ClusterConfig | None:
    if cluster is None or isinstance(cluster, ClusterConfig):
        return cluster
    return Config.validate_dict({"target": "-", "cluster": cluster}, source="cluster").cluster


def _resume(run: RunFolder, data: TableLike | None, quiet: bool, tracking: TrackingOptions,
            callbacks: Sequence[Callback], cluster: ClusterConfig | None) -> Model:
    info = run.read_info()
    recorded = DataIdentity.from_dict(info.get("data") or {})
    if data is None:
        if recorded is None or not recorded.path:
            raise DataError(f"{run.path} was trained on a DataFrame; pass the same DataFrame to resume it.")
        data = recorded.path
    prepared = prepare_again(data, Config.from_yaml(run.config), recorded, str(run.path), progress=not quiet)
    if cluster is not None:
        prepared.config.cluster = cluster
    run.write_info(status=RunStatus.RUNNING.value, error=None)
    tracker = MlflowTracker(tracking)
    tracker.resume((info.get("tracking") or {}).get("run_id"))
    return _execute(run, prepared, tracker, quiet=quiet, resume=True, callbacks=callbacks)


def _execute(run: RunFolder, prepared: Prepared, tracker: MlflowTracker, *, quiet: bool, resume: bool,
             callbacks: Sequence[Callback]) -> Model:
    """Fit and score; a failure is recorded in run.json (the checkpoint stays for --resume) and the tracker."""
    try:
        fitted = fit(prepared.config, prepared.splits, preprocessor=_preprocessor(run, prepared, resume),
                     callbacks=[TrackEpochs(tracker), *callbacks], progress=not quiet, checkpoint=run.checkpoint,
                     resume=resume, stream=prepared.stream)
        try:
            scored = score(fitted, prepared.splits)
        finally:
            fitted.release()
    except BaseException as exc:
        run.write_info(status=RunStatus.FAILED.value, error=f"{type(exc).__name__}: {exc}")
        tracker.fail(f"{type(exc).__name__}: {exc}")
        raise
    return _finish(run, prepared, fitted, scored, tracker)


def _preprocessor(run: RunFolder, prepared: Prepared, resume: bool) -> Preprocessor:
    """Fitted on the training split and kept in the run folder, so a resumed run reuses the very same
    state (some fits, such as a learned tokenizer, may differ slightly when repeated)."""
    if resume and run.preprocessor.is_file():
        return Preprocessor.from_state(json.loads(run.preprocessor.read_text(encoding="utf-8")))
    preprocessor = fit_preprocessor(prepared.config, prepared.splits, prepared.stream)
    write_text(run.preprocessor, preprocessor.to_json())
    return preprocessor


def _audit(run: RunFolder, prepared: Prepared, model: Model, fitted: Fitted) -> None:
    """fairness.json: the bias audit of the test split; with a mitigation, beside the unmitigated model's."""
    from deepwell.fairness.run import audit_model, compare

    fairness = prepared.config.fairness
    if not fairness.sensitive or not len(prepared.splits.test):
        return

    def audit_of(audited: Model):
        return audit_model(audited, prepared.splits.test, fairness.sensitive, favourable=fairness.favourable,
                           privileged=fairness.privileged)

    audit = audit_of(model)
    if fairness.mitigate != "none":
        audit.mitigation = compare(fairness.mitigate, audit_of(_unmitigated(prepared, model, fitted)), audit)
    write_json(run.fairness, audit.to_dict())


def _explain(run: RunFolder, prepared: Prepared, model: Model) -> None:
    """explanations.json and explanations/: permutation importance on the test split, Integrated Gradients for its
    first rows (`explain.rows`); a note instead when captum is not installed."""
    import importlib.util

    settings, test = prepared.config.explain, prepared.splits.test
    if not settings.enabled or not len(test):
        return
    if importlib.util.find_spec("captum") is None:
        write_json(run.explanations, {"skipped": "captum is not installed: pip install 'deepwell[explain]'"})
        return
    from deepwell.explain.run import explain_model

    found = explain_model(model, test, range(min(settings.rows, len(test))), importance=True)
    found.save(run.explanations_folder)
    write_json(run.explanations, found.to_dict())


def _unmitigated(prepared: Prepared, model: Model, fitted: Fitted) -> Model:
    """What the run would have trained without its mitigation: the same network without its thresholds, the network
    a reduction trained first, or (reweigh) a network trained on the same splits, preprocessing and seeds."""
    if prepared.config.fairness.mitigate == "threshold":
        return Model(model.preprocessor, model.network, model.meta)
    if fitted.unmitigated is not None:
        return Model(model.preprocessor, fitted.unmitigated, model.meta)
    config = prepared.config.model_copy(deep=True)
    config.fairness.mitigate = "none"
    return fit(config, prepared.splits, preprocessor=model.preprocessor).model()


def _finish(run: RunFolder, prepared: Prepared, fitted: Fitted, scored: Scored, tracker: MlflowTracker) -> Model:
    """Every result into the run folder, then the report and the tracker."""
    from deepwell.monitoring.profile import build_profile
    from deepwell.reports import build_report
    from deepwell.reports.plots import learning_curves, save

    settled = prepared.config.model_copy(deep=True)  # the scale fit raced for replaces auto (pipeline/race.py)
    settled.model.periodic_scale = fitted.config.model.periodic_scale
    write_text(run.config, settled.to_yaml())
    model = fitted.model(run.path)
    model.metrics, model.diagnosis = scored.metrics, scored.diagnosis
    if prepared.config.fairness.mitigate == "threshold":
        from deepwell.fairness.run import fit_model_thresholds

        model.thresholds = fit_model_thresholds(model, prepared.splits.validation, prepared.config.fairness)
    held_out = None if scored.test_outputs is None else with_thresholds(
        model, prepared.splits.test, from_outputs(model, scored.test_outputs))
    model.reference = build_profile(model.preprocessor, model.task, prepared.splits.train, held_out)
    model.save(run.model)
    history = fitted.result.history_frame()
    history.to_csv(run.history, index=False)
    write_json(run.metrics, scored.metrics.to_dict())
    write_json(run.diagnosis, scored.diagnosis.to_dict())
    save(learning_curves(history, scored.metrics.primary_metric), run.learning_curves)
    if scored.test_outputs is not None:
        held_out.table(prepared.splits.test).to_csv(run.predictions, index=False)
    _audit(run, prepared, model, fitted)
    _explain(run, prepared, model)
    stop = fitted.result.stop_reason
    status = RunStatus.INTERRUPTED if stop == StopReason.INTERRUPTED else RunStatus.FINISHED
    run.write_info(status=status.value, stop_reason=stop.value)
    build_report(run.path)
    tracker.finish(run, scored.metrics, scored.diagnosis.verdict.value, status.value)
    if tracker.summary():
        run.write_info(tracking=tracker.summary())
    return model
