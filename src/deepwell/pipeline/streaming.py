"""Streaming: a table too large for memory, read in record batches and never held whole (`data.streaming`).

Pass 1, `prepare_stream` (one pass over the table): types and the task come from its first rows; every row
with a target gets its split from a seeded hash of its values (data/stream.py); the training rows' summaries
are merged batch by batch — exact value counts for categories, two-valued columns and classes, exact
moments for numbers, dates and a regression target (features/summaries.py) — and each split keeps a seeded
sample of `data.sample_rows` rows (the rows whose hash is smallest: uniform, and the same in every pass).
Text tokenizers and file columns fit on the training sample, and so do the numbers' bin edges. Image and audio
columns hold paths (relative ones under the table file's folder) and are decoded in pass 2; a file that cannot be
read skips its row there (`on_bad_file: skip`, counted and warned) or stops the run naming it.

Pass 2, `stream_tensors` (one more pass, in `fit`): every row transformed by the fitted preprocessor into chunk
stores on disk per split (training/chunks.py), which training reads epoch after epoch and scoring once.

What runs on the samples (bounded memory): the data profile, the reference learner of the fit diagnosis, the
training scores, the drift reference, explanations, the bias audit and predictions.csv. Validation and test
metrics are computed on every row.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepwell.config import Config
from deepwell.data.split import Splits
from deepwell.data.stream import SPLIT_NAMES, TRAIN, TableStream, fraction_codes, hash_split, hash_unit
from deepwell.edge.media import resolve_path
from deepwell.errors import ConfigError, DataError, warn
from deepwell.features.pipeline import FEATURE_TYPES, TARGET_KEY, Preprocessor, unfitted_features
from deepwell.features.summaries import merge
from deepwell.features.target import TargetEncoder
from deepwell.runtime import available_memory
from deepwell.training.chunks import ChunkData, ChunkStore

HEAD_ROWS = 20_000  # first rows that column types and the task are inferred from


@dataclass
class Stream:
    """A streamed table after pass 1: what fitting the preprocessor and the passes after it need."""

    table: TableStream
    summaries: dict[str, Any]  # feature key (TARGET_KEY: the target) → its summary over the training rows
    sizes: dict[str, int]  # rows per split
    unlabelled: int = 0  # rows without a target value, left out
    base_dir: Path | None = None  # what relative file paths are under


@dataclass
class StreamedTensors:
    """Every row of each split transformed, in chunk stores on disk (deleted by `release`)."""

    train: ChunkData
    validation: ChunkData
    test: ChunkData
    folder: Path
    sizes: dict[str, int] = field(default_factory=dict)

    def release(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def wants_streaming(data: Any, config: Config) -> bool:
    """`data.streaming`: always or never as said; auto streams a table file or folder that would take more
    than `data.memory_share` of the memory available. A DataFrame is in memory already."""
    setting = config.data.streaming
    if not isinstance(data, (str, Path)) or not Path(data).exists():
        if setting == "always" and not isinstance(data, (str, Path)):
            raise ConfigError("data.streaming is always, but the data is a DataFrame already in memory; stream "
                              "a table file or a folder of Parquet/CSV files instead.")
        return False
    path = Path(data)
    if path.is_dir() and not TableStream.is_table_folder(path):
        return False  # class folders of images or recordings
    if setting != "auto":
        return setting == "always"
    try:
        estimate = TableStream.open(path, config.data.batch_rows).memory_estimate()
    except Exception:  # not a table file, or a damaged one: reading it whole says what is wrong
        return False
    return estimate > config.data.memory_share * available_memory()


def check_streamable(config: Config, source: str) -> None:
    """What streaming does not do (yet), refused before the first pass."""
    refused = []
    if config.fairness.mitigate != "none":
        refused.append(f"fairness.mitigate {config.fairness.mitigate!r} (it weighs or re-trains on all rows)")
    if config.split.validation_file or config.split.test_file:
        refused.append("split.validation_file / split.test_file (give a split column instead)")
    if config.split.train_subsample < 1:
        refused.append("split.train_subsample")
    if refused:
        raise ConfigError(f"{source} is streamed (data.streaming), which does not support "
                          f"{'; '.join(refused)}. Set data.streaming: never to read the table into memory.")


def streamed_columns(config: Config) -> list[str]:
    used = [config.target, *config.columns, config.split.column, config.weight_column, *config.fairness.sensitive]
    return list(dict.fromkeys(c for c in used if c))


def first_pass(table: TableStream, config: Config, source: str, progress: bool = False,
               base_dir: Path | None = None) -> tuple[Stream, Splits]:
    """Summaries of the training rows, a seeded sample of each split and the rows per split."""
    from deepwell.training.progress import RowProgress

    features = unfitted_features(config.columns)
    target = TargetEncoder(config.target, config.task)
    columns = streamed_columns(config)
    summaries: dict[str, Any] = {}
    samples: list[tuple[pd.DataFrame, np.ndarray] | None] = [None, None, None]
    sizes, unlabelled = [0, 0, 0], 0
    with RowProgress("pass 1: summaries", table.row_count(), progress) as shown:
        for frame in numbered(table, config, base_dir):
            shown.advance(len(frame))
            unlabelled += _summarise(frame, config, features, target, summaries, samples, sizes)
    if unlabelled:
        warn(f"{source}: {unlabelled} row(s) have no value in target {config.target!r} and are left out of "
             "training and evaluation.")
    counts = dict(zip(SPLIT_NAMES, sizes, strict=True))
    if not counts["train"] or not counts["validation"]:
        raise DataError(f"{source}: streaming found {counts['train']} training and {counts['validation']} "
                        "validation rows; both splits need rows.")
    parts = [s[0].reset_index(drop=True) if s is not None else pd.DataFrame(columns=columns) for s in samples]
    return Stream(table, summaries, counts, unlabelled, base_dir), Splits(*parts)


def _summarise(frame: pd.DataFrame, config: Config, features: list, target: TargetEncoder, summaries: dict[str, Any],
               samples: list, sizes: list[int]) -> int:
    """One batch into the running summaries (merged in place), samples and split sizes; its unlabelled rows."""
    frame, dropped = labelled(frame, config.target)
    codes, unit = split_of(frame, config)
    train = frame[codes == TRAIN]
    found = {f.key: f.summarise(train[f.name]) for f in features}
    found[TARGET_KEY] = target.summarise(train[config.target])
    summaries.update(merge(summaries, {k: v for k, v in found.items() if v is not None}))
    for code in range(3):
        rows = codes == code
        sizes[code] += int(rows.sum())
        samples[code] = smallest(samples[code], frame[rows], unit[rows], config.data.sample_rows)
    return dropped


def numbered(table: TableStream, config: Config, base_dir: Path | None):
    """The table's batches (the columns used), each indexed by its rows' positions in the whole table (errors
    name them); image and audio paths made absolute (relative ones are under `base_dir`)."""
    files = file_columns(config)
    start = 0
    for frame in table.batches(streamed_columns(config)):
        frame.index = pd.RangeIndex(start, start + len(frame))
        start += len(frame)
        for name in files:
            frame[name] = [str(resolve_path(v, base_dir)) if isinstance(v, str) else v for v in frame[name]]
        yield frame


def file_columns(config: Config) -> list[str]:
    return [name for name, column in config.columns.items()
            if getattr(FEATURE_TYPES.get(column.type), "reads_files", False)]


def labelled(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    values = frame[target]
    present = (values.notna() & (values.astype("string").str.strip() != "").fillna(False)).to_numpy(bool)
    return (frame, 0) if present.all() else (frame[present], int((~present).sum()))


def training_rows(frame: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The labelled rows of `frame` that the row hash puts in the training split."""
    rows, _ = labelled(frame, config.target)
    return rows[split_of(rows, config)[0] == TRAIN]


def split_of(frame: pd.DataFrame, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Each row's split code and its hash in [0, 1) (what the samples keep the smallest of)."""
    hashed = frame.drop(columns=[config.split.column]) if config.split.column else frame
    unit = hash_unit(hashed, config.training.seed)
    return hash_split(frame, config.split, config.training.seed) if config.split.column else \
        fraction_codes(unit, config.split), unit


def smallest(kept: tuple[pd.DataFrame, np.ndarray] | None, frame: pd.DataFrame, unit: np.ndarray,
             size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The `size` rows with the smallest hash among those kept so far and `frame`'s (bottom-k sampling)."""
    if kept is not None:
        frame, unit = pd.concat([kept[0], frame]), np.concatenate([kept[1], unit])
    if len(frame) > size:
        index = np.sort(np.argpartition(unit, size)[:size])
        frame, unit = frame.iloc[index], unit[index]
    return frame, unit


def stream_tensors(stream: Stream, config: Config, preprocessor: Preprocessor, progress: bool = False
                   ) -> StreamedTensors:
    """Pass 2: every row's network inputs, target and weight, written per split into chunk stores. Batches are
    transformed by DataLoader worker processes (batch i by worker i mod workers), written here in order; one worker
    per CPU this process may use (at most four): this process only writes, so on 2 CPUs two workers took a
    million-row table's pass from 21 s to 12.5 s."""
    from deepwell.runtime import available_cpus
    from deepwell.training.progress import RowProgress

    cache = config.data.cache_dir
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="deepwell-chunks-", dir=cache))
    stores = [ChunkStore(folder / name) for name in SPLIT_NAMES]
    workers = min(available_cpus(), 4)
    loader = torch.utils.data.DataLoader(_Transformed(stream, config, preprocessor), batch_size=None,
                                         num_workers=workers, prefetch_factor=2 if workers else None)
    skipped = 0
    try:
        with RowProgress("pass 2: chunks", sum(stream.sizes.values()), progress) as shown:
            for parts in loader:
                if isinstance(parts, str):  # a worker's DataError, by its message
                    raise DataError(parts)
                parts, bad = parts
                skipped += bad
                for store, part in zip(stores, parts, strict=True):
                    if part is not None:
                        store.append(*part)
                        shown.advance(len(part[1]))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if skipped:
        warn(f"{stream.table.path}: skipped {skipped} row(s) whose image or audio files cannot be read.")
    data = [ChunkData(store) for store in stores]
    return StreamedTensors(*data, folder=folder, sizes={n: len(d) for n, d in zip(SPLIT_NAMES, data, strict=True)})


class _Transformed(torch.utils.data.IterableDataset):
    """The stream's batches, each as its three splits' (inputs, target, weight) or None, and the rows skipped
    for unreadable files: one DataLoader worker's share of them."""

    def __init__(self, stream: Stream, config: Config, preprocessor: Preprocessor) -> None:
        self.stream, self.config, self.preprocessor = stream, config, preprocessor

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        config = self.config
        try:
            for index, frame in enumerate(numbered(self.stream.table, config, self.stream.base_dir)):
                if index % workers != worker:
                    continue
                frame, _ = labelled(frame, config.target)
                codes, _ = split_of(frame, config)
                parts = [self._rows(frame[codes == code]) for code in range(len(SPLIT_NAMES))]
                yield [part for part, _ in parts], sum(bad for _, bad in parts)
        except DataError as exc:  # crosses the process boundary as its message
            yield str(exc)

    def _rows(self, part: pd.DataFrame) -> tuple[tuple | None, int]:
        """(inputs, target, weight) of a split's rows, without those whose files cannot be read; how many."""
        from deepwell.pipeline.fit import row_weights

        if not len(part):
            return None, 0
        errors: dict[Any, str] = {}
        inputs = self.preprocessor.transform(part, errors=errors)
        if errors and self.config.on_bad_file == "error":
            row, reason = next(iter(errors.items()))
            raise DataError(f"{self.stream.table.path}: row {row}: {reason}. Set `on_bad_file: skip` to train "
                            "without such rows.")
        if errors:
            keep = ~part.index.isin(list(errors))
            inputs = {k: v[torch.from_numpy(keep)] for k, v in inputs.items()}
            part = part[keep]
        if not len(part):
            return None, len(errors)
        return (inputs, self.preprocessor.transform_target(part), row_weights(part, self.config)), len(errors)
