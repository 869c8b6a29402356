"""train(): raw table → resolved config → splits → fitted features → tensors → trained network → run folder.

This module only orchestrates; each step lives in its own package. The CLI calls these same functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell import __version__
from deepwell.config import AudioOptions, ColumnConfig, Config, ImageOptions
from deepwell.data.folders import SPLIT as FOLDER_SPLIT
from deepwell.data.folders import TARGET as FOLDER_TARGET
from deepwell.data.folders import folder_table
from deepwell.data.inference import infer_column_type, infer_task, profile_table
from deepwell.data.io import TableLike, as_frame, file_sha256
from deepwell.data.profile import run_profile
from deepwell.data.split import Splits, split_table
from deepwell.errors import ConfigError, DataError, did_you_mean, warn
from deepwell.evaluation.diagnosis import Diagnosis, diagnose
from deepwell.evaluation.metrics import classification_metrics, fit_baseline, primary_metric, regression_metrics
from deepwell.evaluation.reference import reference_scores
from deepwell.features.files import FileFeature
from deepwell.features.number import to_numbers
from deepwell.features.pipeline import FEATURE_TYPES, Preprocessor, make_feature
from deepwell.features.target import TargetEncoder
from deepwell.model import Model, evaluate_outputs
from deepwell.models.network import TabularNetwork
from deepwell.reports import build_report
from deepwell.runs.files import write_json, write_text
from deepwell.runs.layout import RunFolder
from deepwell.tracking.tracker import MlflowTracker, TrackingOptions
from deepwell.training.trainer import FitResult, TensorData, Trainer, auto_batch_size, predict_outputs

MONITORS = {"classification": {"loss", "accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"},
            "regression": {"loss", "rmse", "mae", "r2"}}


# --- configuration -----------------------------------------------------------------------------
def load_config(config: Config | dict | str | Path | None, target: str | None) -> Config:
    """A Config from an object, a dict or a YAML path; `target` (when given) overrides the config's."""
    if isinstance(config, Config):
        resolved = config.model_copy(deep=True)
    elif isinstance(config, (str, Path)):
        resolved = Config.from_yaml(config, target=target)
    elif isinstance(config, dict):
        resolved = Config.validate_dict({**config, **({"target": target} if target else {})})
    elif config is None:
        if not target:
            raise ConfigError("No target column given: pass --target COLUMN (or target= in Python).")
        resolved = Config(target=target)
    else:
        raise ConfigError(f"config must be a Config, a dict or a YAML path, got {type(config).__name__}.")
    if target:
        resolved.target = target
    return resolved


def resolve_config(frame: pd.DataFrame, config: Config, source: str) -> Config:
    """Fill in what the config leaves open: each column's type and the task. Checks names against the data."""
    config = config.model_copy(deep=True)
    if config.target not in frame.columns:
        raise DataError(f"{source}: target column {config.target!r} is not in the table."
                        f"{did_you_mean(config.target, frame.columns)} Columns: {', '.join(frame.columns)}.")
    unknown = [c for c in config.columns if c not in frame.columns]
    if unknown:
        hints = "".join(did_you_mean(c, frame.columns) for c in unknown)
        raise ConfigError(f"The config describes column(s) {', '.join(map(repr, unknown))} that {source} "
                          f"does not have.{hints}")
    skip = {config.target, config.split.column}
    columns: dict[str, ColumnConfig] = {}
    for name in frame.columns:
        if name in skip:
            continue
        if name in config.columns:
            columns[name] = config.columns[name]
            continue
        kind, note = infer_column_type(frame[name])
        if kind == "empty":
            raise DataError(f"{source}: column {name!r} is empty in every row. An empty column often means a "
                            "wrong delimiter or header; if it is expected, exclude it with "
                            f"`columns: {{{name}: {{type: ignore}}}}` in the config.")
        if kind == "id":
            warn(f"{source}: column {name!r} looks like an identifier ({note}); it is not used as an input. "
                 f"Set its type in the config to use it.")
        columns[name] = ColumnConfig(type=kind)
    for column in columns.values():  # file columns show their options in the resolved config
        if column.type == "image" and column.image is None:
            column.image = ImageOptions()
        if column.type == "audio" and column.audio is None:
            column.audio = AudioOptions()
    config.columns = columns
    if config.task == "auto":
        config.task = infer_task(frame[config.target], config.target)
    return config


def labelled_rows(frame: pd.DataFrame, config: Config, source: str) -> pd.DataFrame:
    """Rows with a target value, checked against the task (numeric for regression, ≥ 2 classes otherwise)."""
    target = frame[config.target]
    present = target.notna() & (target.astype("string").str.strip() != "").fillna(False)
    if not present.any():
        raise DataError(f"{source}: target column {config.target!r} has no values (every row is empty).")
    if not present.all():
        warn(f"{source}: {int((~present).sum())} row(s) have no value in target {config.target!r} and are "
             "left out of training and evaluation.")
        frame = frame[present.to_numpy()].reset_index(drop=True)
    if config.task == "regression":
        try:
            to_numbers(frame[config.target], config.target, strict=True)
        except DataError as exc:
            raise DataError(f"{source}: the task is regression, so the target must hold numbers. {exc} "
                            "For categories, set `task: multiclass` in the config.") from None
    elif frame[config.target].nunique() < 2:
        raise DataError(f"{source}: target column {config.target!r} holds a single class "
                        f"({frame[config.target].iloc[0]!r}); classification needs at least two classes.")
    return frame


def _check_monitor(config: Config) -> None:
    family = "regression" if config.task == "regression" else "classification"
    if config.training.monitor not in MONITORS[family]:
        raise ConfigError(f"training.monitor {config.training.monitor!r} is not a {family} metric; "
                          f"choose one of {', '.join(sorted(MONITORS[family]))}.")


def describe(data: TableLike, target: str | None = None) -> pd.DataFrame:
    """One row per column: inferred type, dtype, missing and distinct counts, examples, notes."""
    frame, _ = as_frame(data)
    return pd.DataFrame([p.as_dict() for p in profile_table(frame, target)])


# --- training ----------------------------------------------------------------------------------
def train(data: TableLike | None = None, target: str | None = None, *,
          config: Config | dict | str | Path | None = None, output: str | Path = "runs",
          name: str | None = None, epochs: int | None = None, seed: int | None = None,
          quiet: bool = False, resume: str | Path | None = None, track: bool | None = None,
          tracking_uri: str | None = None, experiment: str | None = None, register: str | None = None,
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> Model:
    """Train a network on a table and save a run folder; returns the trained `Model`.

    `data` is a file path (CSV, TSV, Parquet, JSONL) or a DataFrame. `resume` continues a run folder
    whose training was interrupted (for a DataFrame run, pass the same DataFrame again). The run is tracked
    in MLflow when it is installed (`tracking_uri`, else $MLFLOW_TRACKING_URI, else ./mlflow.db;
    `track=False`, or DEEPWELL_TRACK=0 in the environment, to skip); `register` adds the model to the
    registry under that name. `on_epoch_end(row)` sees each epoch's history row (it may raise to stop).
    """
    tracking = TrackingOptions(enabled=track, uri=tracking_uri, experiment=experiment, register=register)
    if resume is not None:
        return _resume(RunFolder.existing(resume), data, quiet, tracking, on_epoch_end)
    if data is None:
        raise DataError("No data given: pass a table file, a folder of class folders, or a DataFrame.")
    frame, source, target, config = _read_data(data, target, config)
    config = _resolved(frame, source, target, config, epochs, seed)
    identity = _data_identity(data, frame)
    frame = labelled_rows(frame, config, source)
    loaded, skipped = load_files(frame, config, base_dir_of(data), source)
    splits = _split(loaded, config, source)
    if config.training.batch_size == "auto":
        config.training.batch_size = auto_batch_size(len(splits.train))
    run = RunFolder.create(output, name, source if isinstance(data, (str, Path)) else "dataframe")
    write_text(run.config, config.to_yaml())
    run.write_info(status="running", deepwell_version=__version__, data=identity, split=splits.sizes(),
                   skipped_files=len(skipped))
    write_json(run.profile, run_profile(frame, config, splits))
    if skipped:
        pd.DataFrame(skipped, columns=["row", "file", "reason"]).to_csv(run.skipped_files, index=False)
    tracker = MlflowTracker(tracking)
    tracker.start(run, config.model_dump(mode="json"), {
        "deepwell.version": __version__, "data.path": identity.get("path") or "DataFrame",
        "data.sha256": identity.get("sha256") or identity.get("hash"), "target": config.target,
        "task": config.task, "run_dir": str(run.path.resolve())})
    return _fit(run, config, splits, quiet, resume=False, tracker=tracker, on_epoch_end=on_epoch_end)


def prepare_config(data: TableLike, target: str | None, config: Config | dict | str | Path | None, *,
                   epochs: int | None = None, seed: int | None = None) -> tuple[Config, int, str]:
    """(resolved config, labelled rows, source name) without training: what tune and diagnose start from."""
    frame, source, target, config = _read_data(data, target, config)
    resolved = _resolved(frame, source, target, config, epochs, seed)
    return resolved, len(labelled_rows(frame, resolved, source)), source if isinstance(data, (str, Path)) \
        else "dataframe"


def _resolved(frame: pd.DataFrame, source: str, target: str | None, config: Any, epochs: int | None,
              seed: int | None) -> Config:
    """The configuration with overrides applied and every `auto` resolved from the data."""
    resolved = load_config(config, target)
    if epochs is not None:
        resolved.training.epochs = epochs
    if seed is not None:
        resolved.training.seed = seed
    resolved = resolve_config(frame, resolved, source)
    _check_monitor(resolved)
    return resolved


def _read_data(data: TableLike, target: str | None, config: Any) -> tuple[pd.DataFrame, str, str | None, Any]:
    """A folder of class folders is read as a table of paths with `label` (and `split`) columns."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        frame, _ = folder_table(data)
        if config is None:  # class folders are categories, even when named 0, 1, 2 …
            task = "binary" if frame[FOLDER_TARGET].nunique() == 2 else "multiclass"
            config = {"target": target or FOLDER_TARGET, "task": task}
            if FOLDER_SPLIT in frame.columns:
                config["split"] = {"column": FOLDER_SPLIT}
        return frame, str(data), target, config
    frame, source = as_frame(data)
    return frame, source, target, config


def base_dir_of(data: TableLike) -> Path | None:
    """Relative file paths in a table are relative to the table file's folder."""
    return Path(data).parent if isinstance(data, (str, Path)) and not Path(data).is_dir() else None


def load_files(frame: pd.DataFrame, config: Config, base_dir: Path | None, source: str
               ) -> tuple[pd.DataFrame, list[tuple[Any, str, str]]]:
    """Decode every image/audio column once, before splitting; bad files are skipped or stop the run.

    `auto` options (such as an image column's channels) are fixed here and written into `config`.
    """
    skipped: list[tuple[Any, str, str]] = []
    for name, column in config.columns.items():
        if column.type not in FEATURE_TYPES:
            continue
        feature = make_feature(name, column)
        if not isinstance(feature, FileFeature):
            continue
        feature.resolve(frame[name], base_dir)
        if feature.options.in_memory is None:
            fits = feature.bytes_per_row() * len(frame) <= MEMORY_SHARE * _physical_memory()
            keep = {"always": True, "never": False}.get(config.files_in_memory, fits)
            feature.options = feature.options.model_copy(update={"in_memory": keep})
            if not keep and config.files_in_memory == "auto":
                warn(f"{source}: column {name!r} is decoded batch by batch while training (it would take "
                     f"{feature.bytes_per_row() * len(frame) / 2**30:.1f} GiB in memory).")
        config.columns[name] = feature.options
        loaded, failures = feature.load_column(frame[name], base_dir)
        if failures and config.on_bad_file == "error":
            shown = "; ".join(f"row {i}: {f} ({r})" for i, f, r in failures[:5])
            raise DataError(f"{source}: {len(failures)} file(s) in column {name!r} cannot be read: {shown}. "
                            "Set `on_bad_file: skip` to train without them.")
        frame = frame.assign(**{name: loaded})
        skipped += failures
    if skipped:
        bad_rows = {row for row, _, _ in skipped}
        frame = frame.drop(index=list(bad_rows)).reset_index(drop=True)
        warn(f"{source}: skipped {len(bad_rows)} row(s) whose files cannot be read; the list is saved as "
             "skipped_files.csv in the run folder.")
        if frame.empty:
            raise DataError(f"{source}: no readable files left after skipping {len(bad_rows)} bad one(s).")
    return frame, skipped


def _fit(run: RunFolder, config: Config, splits: Splits, quiet: bool, resume: bool,
         tracker: MlflowTracker, on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> Model:
    """Train and finish the run: report page, tracking. A failure is recorded in run.json (the checkpoint
    stays for --resume) and in the tracker."""
    if tracker.summary():
        run.write_info(tracking=tracker.summary())
    try:
        model = _train_and_save(run, config, splits, quiet, resume, tracker, on_epoch_end)
    except BaseException as exc:
        run.write_info(status="failed", error=f"{type(exc).__name__}: {exc}")
        tracker.fail(f"{type(exc).__name__}: {exc}")
        raise
    build_report(run.path)
    tracker.finish(run, model.metrics, run.read_info().get("status", "finished"))
    if tracker.summary():
        run.write_info(tracking=tracker.summary())
    return model


MEMORY_SHARE = 0.25


def _physical_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _split(frame: pd.DataFrame, config: Config, source: str) -> Splits:
    stratify = config.target if config.task != "regression" and config.split.stratify else None
    return split_table(frame, config.split, seed=config.training.seed, stratify_by=stratify, source=source,
                       target=config.target)


def _data_identity(data: TableLike, frame: pd.DataFrame) -> dict[str, Any]:
    if isinstance(data, (str, Path)):
        return {"path": str(Path(data).resolve()), "sha256": _content_hash(data)}
    return {"path": None, "hash": _frame_hash(frame)}


def _content_hash(data: str | Path) -> str:
    """A file's sha256, or for a folder the hash of its file listing (names, sizes, modification times)."""
    path = Path(data)
    if not path.is_dir():
        return file_sha256(path)
    listing = sorted(f"{p.relative_to(path)}\t{p.stat().st_size}\t{p.stat().st_mtime_ns}"
                     for p in path.rglob("*") if p.is_file())
    return hashlib.sha256("\n".join(listing).encode()).hexdigest()


def _frame_hash(frame: pd.DataFrame) -> str:
    return str(int(pd.util.hash_pandas_object(frame, index=False).sum()))


def _resume(run: RunFolder, data: TableLike | None, quiet: bool, tracking: TrackingOptions,
            on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> Model:
    info = run.read_info()
    config = Config.from_yaml(run.config)
    recorded = info.get("data") or {}
    if data is None:
        if not recorded.get("path"):
            raise DataError(f"{run.path} was trained on a DataFrame; pass the same DataFrame to resume it.")
        data = recorded["path"]
    frame, source, _, _ = _read_data(data, config.target, config)
    if isinstance(data, (str, Path)) and recorded.get("sha256") and _content_hash(data) != recorded["sha256"]:
        raise DataError(f"{source} changed since run {run.path} started; resuming on different data would "
                        "not reproduce the run. Start a new run instead.")
    if not isinstance(data, (str, Path)) and recorded.get("hash") and _frame_hash(frame) != recorded["hash"]:
        raise DataError(f"The DataFrame differs from the one run {run.path} started with.")
    frame = labelled_rows(frame, config, source)
    frame, _ = load_files(frame, config, base_dir_of(data), source)
    run.write_info(status="running", error=None)
    tracker = MlflowTracker(tracking)
    tracker.resume((info.get("tracking") or {}).get("run_id"))
    return _fit(run, config, _split(frame, config, source), quiet, resume=True, tracker=tracker,
                on_epoch_end=on_epoch_end)


def _train_and_save(run: RunFolder, config: Config, splits: Splits, quiet: bool, resume: bool,
                    tracker: MlflowTracker, on_epoch_end: Callable[[dict[str, Any]], None] | None) -> Model:
    seed = config.training.seed
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    preprocessor = _preprocessor(run, config, splits, resume)
    encoder = preprocessor.target
    train_data = TensorData(preprocessor.transform(splits.train), preprocessor.transform_target(splits.train))
    validation = TensorData(preprocessor.transform(splits.validation),
                            preprocessor.transform_target(splits.validation))
    output_dim = 1 if config.task == "regression" else len(encoder.classes)
    network = TabularNetwork(preprocessor.encoder_specs(), config.model, output_dim)
    y_train = train_data.target.numpy()
    baseline = fit_baseline(config.task, encoder.unscale(y_train) if config.task == "regression" else y_train,
                            output_dim)
    trainer = Trainer(network, config.task, config.training, _metric_fn(encoder),
                      checkpoint_path=run.checkpoint, class_weights=_class_weights(config, y_train, output_dim),
                      show_progress=not quiet, monitor_metric=primary_metric(config.task),
                      on_epoch_end=_each(tracker.log_epoch, on_epoch_end))
    result = trainer.fit(train_data, validation, resume=resume)
    meta = {"deepwell_version": __version__, "task": config.task, "target": config.target,
            "baseline": baseline, "parameters": network.parameter_count(),
            "best_epoch": result.best_epoch}
    model = Model(preprocessor, network, meta, run_dir=run.path)
    model.save(run.model)
    pd.DataFrame(result.history).to_csv(run.history, index=False)
    model.metrics = _final_metrics(model, run, config, splits, train_data, validation, result, trainer)
    model.diagnosis = diagnose_run(run, model.metrics, config)
    status = "interrupted" if result.stop_reason == "interrupted" else "finished"
    run.write_info(status=status, stop_reason=result.stop_reason)
    return model


def _each(*callbacks: Callable[[dict[str, Any]], None] | None) -> Callable[[dict[str, Any]], None]:
    def call(row: dict[str, Any]) -> None:
        for callback in callbacks:
            if callback is not None:
                callback(row)
    return call


def _preprocessor(run: RunFolder, config: Config, splits: Splits, resume: bool) -> Preprocessor:
    """Fitted on the training split and kept in the run folder, so a resumed run reuses the very same
    state (some fits, such as a learned tokenizer, may differ slightly when repeated)."""
    if resume and run.preprocessor.is_file():
        return Preprocessor.from_state(json.loads(run.preprocessor.read_text(encoding="utf-8")))
    preprocessor = Preprocessor.fit(splits.train, config.columns, TargetEncoder(config.target, config.task))
    write_text(run.preprocessor, preprocessor.to_json())
    return preprocessor


def _reference(model: Model, train: TensorData, validation: TensorData, config: Config) -> dict[str, Any] | None:
    """Gradient boosting on the same table-like inputs: the achievable error the diagnosis compares with."""
    target = model.preprocessor.target
    try:
        return reference_scores(model.preprocessor.encoder_specs(), train.inputs, train.target.numpy(),
                                validation.inputs, validation.target.numpy(), config.task, len(target.classes),
                                _metric_fn(target))
    except (ValueError, MemoryError) as exc:
        warn(f"No reference learner for the fit diagnosis ({exc}); it judges bias from the baseline alone.")
        return None


def diagnose_run(run: RunFolder, metrics: dict[str, Any], config: Config) -> Diagnosis:
    """The fit diagnosis, saved as diagnosis.json, with the learning curves as learning_curves.png."""
    from deepwell.reports.plots import learning_curves, save

    history = pd.read_csv(run.history)
    diagnosis = diagnose(history, metrics, config.model_dump(mode="json"))
    write_json(run.diagnosis, diagnosis.as_dict())
    save(learning_curves(history, metrics["primary_metric"]), run.learning_curves)
    return diagnosis


def _metric_fn(encoder: TargetEncoder):
    if encoder.task == "regression":
        return lambda out, y: regression_metrics(encoder.unscale(y), encoder.unscale(out))
    return lambda out, y: classification_metrics(y, out, encoder.classes, detailed=False)


def _class_weights(config: Config, y_train: np.ndarray, n_classes: int) -> torch.Tensor | None:
    if config.task == "regression" or config.training.class_weight == "none":
        return None
    counts = np.bincount(y_train, minlength=n_classes).astype(float)
    return torch.tensor(len(y_train) / (n_classes * np.clip(counts, 1, None)), dtype=torch.float32)


TRAIN_SAMPLE = 10_000  # training rows re-scored in eval mode for the fit diagnosis


def _final_metrics(model: Model, run: RunFolder, config: Config, splits: Splits, train: TensorData,
                   validation: TensorData, result: FitResult, trainer: Trainer) -> dict[str, Any]:
    """Test, validation and (on a sample) training metrics of the final weights, in eval mode."""
    sample = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:TRAIN_SAMPLE].sort().values
    train_inputs = {k: v[sample] for k, v in train.inputs.items()}
    metrics: dict[str, Any] = {
        "train": evaluate_outputs(model, predict_outputs(model.network, train_inputs, config.task, model.device),
                                  train.target[sample].numpy()),
        "task": config.task, "target": config.target, "primary_metric": primary_metric(config.task),
        "validation": evaluate_outputs(model, predict_outputs(model.network, validation.inputs, config.task,
                                                               model.device), validation.target.numpy()),
        "test": None,
        "training": {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                     "stop_reason": result.stop_reason, "seconds": round(result.seconds, 3),
                     "parameters": model.parameter_count, "batch_size": config.training.batch_size,
                     "device": str(trainer.device)},
        "split": splits.sizes(),
        "reference": _reference(model, train, validation, config),
    }
    if len(splits.test):
        outputs = predict_outputs(model.network, model.preprocessor.transform(splits.test), config.task,
                                  model.device)
        metrics["test"] = evaluate_outputs(model, outputs, model.preprocessor.transform_target(splits.test).numpy())
        model.table_with_predictions(splits.test, outputs).to_csv(run.predictions, index=False)
    write_json(run.metrics, metrics)
    return metrics
