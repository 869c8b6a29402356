"""Prepare: raw data → a fully resolved configuration, labelled rows with decoded files, and three splits.

Nothing here trains; `pipeline.fit` starts from a `Prepared`, and tuning prepares once for all its trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from deepwell.config import PRESETS, AudioOptions, ColumnConfig, Config, ImageOptions, Preset, TextOptions
from deepwell.data.folders import SPLIT as FOLDER_SPLIT
from deepwell.data.folders import TARGET as FOLDER_TARGET
from deepwell.data.folders import folder_table
from deepwell.data.identity import DataIdentity
from deepwell.data.inference import infer_column_type, infer_task, profile_table, resolve_levels
from deepwell.data.io import TableLike, as_frame
from deepwell.data.split import Splits, split_table
from deepwell.errors import ConfigError, DataError, did_you_mean, listing, warn
from deepwell.features.number import to_numbers
from deepwell.pipeline.files import SkippedFile, load_files
from deepwell.pipeline.presets import resolve_sizes, resolve_text_encoders
from deepwell.task import Task

if TYPE_CHECKING:
    from deepwell.pipeline.streaming import Stream

MONITORS = {"classification": {"loss", "accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"},
            "regression": {"loss", "rmse", "mae", "r2"}}
ConfigLike = Config | dict | str | Path | None


@dataclass
class Prepared:
    """Everything training needs from the data, resolved once."""

    config: Config  # every `auto` resolved: column types, task, batch and ensemble size, file options
    splits: Splits
    source: str  # the data's name in messages ("dataframe" for a DataFrame)
    frame: pd.DataFrame  # labelled rows, files decoded (the data profile reads it)
    identity: DataIdentity
    skipped: list[SkippedFile] = field(default_factory=list)
    stream: Stream | None = None  # a streamed table (data.streaming): `splits` and `frame` are its samples

    def split_sizes(self) -> dict[str, int]:
        """Rows per split (of the whole table when streamed)."""
        return dict(self.stream.sizes) if self.stream is not None else self.splits.sizes()


def prepare(data: TableLike, target: str | None = None, config: ConfigLike = None, *, epochs: int | None = None,
            seed: int | None = None, preset: Preset | None = None, progress: bool = False) -> Prepared:
    """Read `data` (table file, class folders or DataFrame), resolve the config, decode files, split. A table
    too large for memory (data.streaming) is streamed instead: pipeline/streaming.py (`progress`: a bar over its
    first pass)."""
    streamed = _streamed_config(data, target, config)
    if streamed is not None:
        return _prepare_stream(data, target, streamed, epochs, seed, preset, progress)
    frame, source, target, config = read_data(data, target, config)
    resolved = resolve(frame, source, target, config, epochs, seed, preset)
    identity = DataIdentity.of(data, frame)
    frame = labelled_rows(frame, resolved, source)
    frame, skipped = load_files(frame, resolved, base_dir_of(data), source)
    splits = split(frame, resolved, source)
    resolve_levels(resolved, splits.train)
    resolve_sizes(resolved, len(splits.train))
    return Prepared(resolved, splits, run_source(data, source), frame, identity, skipped)


def prepare_again(data: TableLike, config: Config, recorded: DataIdentity | None, run: str,
                  progress: bool = False) -> Prepared:
    """The same preparation as run `run`'s first one, from its saved (resolved) config; refuses changed data."""
    if config.data.streaming == "always" and isinstance(data, (str, Path)):
        identity = DataIdentity.of(data, pd.DataFrame())
        _same_data(identity, recorded, str(data), run)
        return _stream_prepared(data, config, str(data), identity, progress)
    frame, source, _, _ = read_data(data, config.target, config)
    identity = DataIdentity.of(data, frame)
    _same_data(identity, recorded, source if isinstance(data, (str, Path)) else "The DataFrame", run)
    if config.model.ensemble_size == "auto":  # a run saved before ensembles existed trained one network
        config.model.ensemble_size = 1
    frame = labelled_rows(frame, config, source)
    frame, skipped = load_files(frame, config, base_dir_of(data), source)
    return Prepared(config, split(frame, config, source), run_source(data, source), frame, identity, skipped)


def _same_data(identity: DataIdentity, recorded: DataIdentity | None, what: str, run: str) -> None:
    if recorded is not None and identity.digest != recorded.digest:
        raise DataError(f"{what} changed since run {run} started; resuming on different data would not "
                        "reproduce the run. Start a new run instead.")


def _streamed_config(data: TableLike, target: str | None, config: ConfigLike) -> Config | None:
    """The loaded config when `data` is a table file or folder that is to be streamed, else None."""
    from deepwell.pipeline.streaming import wants_streaming

    if isinstance(data, (str, Path)) and Path(data).is_dir() and not _table_folder(data):
        return None  # class folders
    if not isinstance(data, (str, Path)):
        if config is not None:
            wants_streaming(data, load_config(config, target))  # refuses streaming: always for a DataFrame
        return None
    loaded = load_config(config, target)
    return loaded if wants_streaming(data, loaded) else None


def _table_folder(path: str | Path) -> bool:
    from deepwell.data.stream import TableStream

    return TableStream.is_table_folder(path)


def _prepare_stream(data: str | Path, target: str | None, config: Config, epochs: int | None, seed: int | None,
                    preset: Preset | None, progress: bool) -> Prepared:
    """Column types and the task from the table's first rows, then the first streaming pass."""
    from deepwell.data.stream import TableStream
    from deepwell.pipeline.streaming import HEAD_ROWS, training_rows

    source = str(data)
    head = TableStream.open(data, config.data.batch_rows).head(HEAD_ROWS)
    resolved = resolve(head, source, target, config, epochs, seed, preset, streaming=True)
    resolved.data.streaming = "always"  # resolved: a resumed run streams too
    resolve_levels(resolved, training_rows(head, resolved))
    return _stream_prepared(data, resolved, source, DataIdentity.of(data, head), progress)


def _stream_prepared(data: str | Path, config: Config, source: str, identity: DataIdentity,
                     progress: bool) -> Prepared:
    from deepwell.data.stream import TableStream
    from deepwell.pipeline.streaming import check_streamable, first_pass

    check_streamable(config, source)
    stream, samples = first_pass(TableStream.open(data, config.data.batch_rows), config, source, progress,
                                 base_dir_of(data))
    resolve_sizes(config, stream.sizes["train"])
    samples, skipped = _sample_files(samples, config, source)
    frame = pd.concat([samples.train, samples.validation, samples.test], ignore_index=True)
    return Prepared(config, samples, source, frame, identity, skipped, stream=stream)


def _sample_files(samples: Splits, config: Config, source: str) -> tuple[Splits, list[SkippedFile]]:
    """A streamed table's samples with their image/audio files decoded (their paths are absolute by now), the
    columns' `auto` options fixed from the training sample's."""
    parts, skipped = [], []
    for part in (samples.train, samples.validation, samples.test):
        if len(part):
            part, bad = load_files(part, config, None, source)
            skipped += bad
        parts.append(part)
    return Splits(*parts), skipped


def run_source(data: TableLike, source: str) -> str:
    return source if isinstance(data, (str, Path)) else "dataframe"


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
                        f"{did_you_mean(config.target, frame.columns)} Columns: {listing(frame.columns)}.")
    unknown = [c for c in config.columns if c not in frame.columns]
    if unknown:
        hints = "".join(did_you_mean(c, frame.columns) for c in unknown)
        raise ConfigError(f"The config describes column(s) {listing(unknown)} that {source} "
                          f"does not have.{hints}")
    if config.weight_column is not None and config.weight_column not in frame.columns:
        raise ConfigError(f"weight_column {config.weight_column!r} is not a column of {source}."
                          f"{did_you_mean(config.weight_column, frame.columns)}")
    _check_fairness(frame, config, source)
    skip = {config.target, config.split.column, config.weight_column}
    if config.fairness.exclude_sensitive:
        skip |= set(config.fairness.sensitive)
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
        if not config.task.is_regression:
            _check_labels(frame, config, source)
    if config.fairness.mitigate in ("threshold", "reductions") and config.task != Task.BINARY:
        raise ConfigError(f"fairness.mitigate {config.fairness.mitigate!r} needs a target with two classes; "
                          f"{config.target!r} is a {config.task.value} target. Use reweigh instead.")
    return config


def _check_fairness(frame: pd.DataFrame, config: Config, source: str) -> None:
    fairness = config.fairness
    absent = [c for c in fairness.sensitive if c not in frame.columns]
    if absent:
        hints = "".join(did_you_mean(c, frame.columns) for c in absent)
        raise ConfigError(f"fairness.sensitive names column(s) {listing(absent)} that {source} does not have.{hints}")
    if fairness.mitigate != "none" and not fairness.sensitive:
        raise ConfigError(f"fairness.mitigate is {fairness.mitigate!r} but no sensitive column is given "
                          "(--sensitive COL).")
    if fairness.exclude_sensitive and not fairness.sensitive:
        raise ConfigError("fairness.exclude_sensitive is set but no sensitive column is given (--sensitive COL).")


def _check_labels(frame: pd.DataFrame, config: Config, source: str) -> None:
    """A target inferred as classes must look like labels, not free text or identifiers (one class per row)."""
    kind, _ = infer_column_type(frame[config.target])
    if kind not in ("text", "id"):
        return
    values = frame[config.target].dropna()
    labels = [f"{name!r} ({frame[name].nunique()} values)" for name in frame.columns
              if name != config.target and 2 <= frame[name].nunique() <= 20]
    hint = f" Columns that look like labels: {listing(labels, quote=False)}." if labels else ""
    what = "free text" if kind == "text" else "an identifier"
    raise DataError(f"{source}: target column {config.target!r} looks like {what} "
                    f"({values.nunique():,} distinct values in {len(values):,} rows), not labels to predict.{hint} "
                    "Pick another --target, or set `task: multiclass` in the config if these really are classes.")


def resolve(frame: pd.DataFrame, source: str, target: str | None, config: Any, epochs: int | None,
            seed: int | None, preset: Preset | None = None, streaming: bool = False) -> Config:
    """The configuration with overrides applied and every `auto` resolved from the data. A streamed table
    (`streaming`) gets no automatic sentence encoder: a frozen MiniLM over millions of texts takes hours on a
    CPU (one given explicitly is kept)."""
    resolved = load_config(config, target)
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}.")
        resolved.preset = preset
    if epochs is not None:
        resolved.training.epochs = epochs
    if seed is not None:
        resolved.training.seed = seed
    resolved = resolve_config(frame, resolved, source)
    if streaming:
        for column in resolved.columns.values():
            if column.type == "text":
                column.text = column.text or TextOptions()
                if column.text.sentence_encoder == "auto":
                    column.text.sentence_encoder = "none"
    resolved = resolve_text_encoders(resolved)
    _check_monitor(resolved)
    return resolved


def _check_monitor(config: Config) -> None:
    family = config.task.family
    if config.training.monitor not in MONITORS[family]:
        raise ConfigError(f"training.monitor {config.training.monitor!r} is not a {family} metric; "
                          f"choose one of {', '.join(sorted(MONITORS[family]))}.")


def describe(data: TableLike, target: str | None = None) -> pd.DataFrame:
    """One row per column: inferred type, dtype, missing and distinct counts, examples, notes."""
    frame, _ = as_frame(data)
    return pd.DataFrame([p.as_dict() for p in profile_table(frame, target)])


# --- rows -----------------------------------------------------------------------------------------
def read_data(data: TableLike, target: str | None, config: Any) -> tuple[pd.DataFrame, str, str | None, Any]:
    """A folder of class folders is read as a table of paths with `label` (and `split`) columns; a folder of
    table files (a Parquet dataset) as one table."""
    if isinstance(data, (str, Path)) and Path(data).is_dir() and _table_folder(data):
        from deepwell.data.stream import TableStream

        return TableStream.open(data).read(), str(data), target, config
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        frame, _ = folder_table(data)
        if config is None:  # class folders are categories, even when named 0, 1, 2 …
            task = Task.BINARY if frame[FOLDER_TARGET].nunique() == 2 else Task.MULTICLASS
            config = {"target": target or FOLDER_TARGET, "task": task}
        config = load_config(config, target)
        if FOLDER_SPLIT in frame.columns and config.split.column is None:  # train/ val/ test/ folders decide
            config.split.column = FOLDER_SPLIT
        return frame, str(data), target, config
    frame, source = as_frame(data)
    return frame, source, target, config


def base_dir_of(data: TableLike) -> Path | None:
    """Relative file paths in a table are relative to the table file's folder."""
    return Path(data).parent if isinstance(data, (str, Path)) and not Path(data).is_dir() else None


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
    if config.task.is_regression:
        try:
            to_numbers(frame[config.target], config.target, strict=True)
        except DataError as exc:
            raise DataError(f"{source}: the task is regression, so the target must hold numbers. {exc} "
                            "For categories, set `task: multiclass` in the config.") from None
    elif frame[config.target].nunique() < 2:
        raise DataError(f"{source}: target column {config.target!r} holds a single class "
                        f"({frame[config.target].iloc[0]!r}); classification needs at least two classes.")
    if config.weight_column is not None:
        _check_weights(frame[config.weight_column], source)
    return frame


def _check_weights(column: pd.Series, source: str) -> None:
    weights = pd.to_numeric(column, errors="coerce")
    bad = column.index[weights.isna() | (weights < 0)].tolist()
    if bad:
        raise DataError(f"{source}: weight column {column.name!r} must hold numbers ≥ 0; rows {bad[:5]} hold "
                        f"{column[bad[:5]].tolist()}" + (f" ({len(bad) - 5} more)" if len(bad) > 5 else "") + ".")
    if not (weights > 0).any():
        raise DataError(f"{source}: every value of weight column {column.name!r} is 0; nothing would be learned.")


def split(frame: pd.DataFrame, config: Config, source: str) -> Splits:
    stratify = config.target if not config.task.is_regression and config.split.stratify else None
    return split_table(frame, config.split, seed=config.training.seed, stratify_by=stratify, source=source,
                       target=config.target)


