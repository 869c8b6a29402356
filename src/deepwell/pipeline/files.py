"""Image and audio columns decoded once before splitting — or, when they would take over a quarter of the
machine's memory (or `data.streaming: always` says so), only checked now and decoded batch by batch while
training. Unreadable files skip their row
(listed in the run folder) or stop the run (`on_bad_file: error`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from deepwell.config import Config
from deepwell.errors import DataError, warn
from deepwell.features.files import FileFeature
from deepwell.features.pipeline import FEATURE_TYPES, make_feature
from deepwell.runtime import available_memory


class SkippedFile(NamedTuple):
    row: Any
    file: str
    reason: str


def load_files(frame: pd.DataFrame, config: Config, base_dir: Path | None, source: str
               ) -> tuple[pd.DataFrame, list[SkippedFile]]:
    """Decode every image/audio column once, before splitting; bad files are skipped or stop the run.

    `auto` options (such as an image column's channels) are fixed here and written into `config`.
    """
    skipped: list[SkippedFile] = []
    for name, column in config.columns.items():
        if column.type not in FEATURE_TYPES:
            continue
        feature = make_feature(name, column)
        if not isinstance(feature, FileFeature):
            continue
        feature.resolve(frame[name], base_dir)
        if feature.options.in_memory is None:
            keep = _keep_in_memory(feature, len(frame), config)
            feature.options = feature.options.model_copy(update={"in_memory": keep})
            if not keep and config.files_in_memory == "auto" and config.data.streaming != "always":
                warn(f"{source}: column {name!r} is decoded batch by batch while training (it would take "
                     f"{feature.bytes_per_row() * len(frame) / 2**30:.1f} GiB in memory).")
        config.columns[name] = feature.options
        loaded, failures = feature.load_column(frame[name], base_dir)
        if failures and config.on_bad_file == "error":
            shown = "; ".join(f"row {i}: {f} ({r})" for i, f, r in failures[:5])
            raise DataError(f"{source}: {len(failures)} file(s) in column {name!r} cannot be read: {shown}. "
                            "Set `on_bad_file: skip` to train without them.")
        frame = frame.assign(**{name: loaded})
        skipped += [SkippedFile(*failure) for failure in failures]
    if skipped:
        bad_rows = {row for row, _, _ in skipped}
        frame = frame.drop(index=list(bad_rows)).reset_index(drop=True)
        warn(f"{source}: skipped {len(bad_rows)} row(s) whose files cannot be read; the list is saved as "
             "skipped_files.csv in the run folder.")
        if frame.empty:
            raise DataError(f"{source}: no readable files left after skipping {len(bad_rows)} bad one(s).")
    return frame, skipped


MEMORY_SHARE = 0.25


def _keep_in_memory(feature: FileFeature, rows: int, config: Config) -> bool:
    """files_in_memory as said; auto: decoded once when they take under MEMORY_SHARE of the memory, and never
    under `data.streaming: always` (a class folder or a streamed table's files are then read batch by batch)."""
    if config.files_in_memory != "auto":
        return config.files_in_memory == "always"
    if config.data.streaming == "always":
        return False
    return feature.bytes_per_row() * rows <= MEMORY_SHARE * available_memory()


