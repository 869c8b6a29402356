"""Train/validation/test splits: seeded and stratified fractions, a user's split column, or separate files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from deepwell.config import SplitConfig
from deepwell.data.io import read_table
from deepwell.errors import ConfigError, DataError, warn

MIN_ROWS = 20
_SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "val": "validation",
                "valid": "validation", "dev": "validation", "test": "test", "testing": "test"}


@dataclass
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_table(frame: pd.DataFrame, split: SplitConfig, *, seed: int, stratify_by: str | None,
                source: str = "data", target: str | None = None) -> Splits:
    """Split `frame`; `stratify_by` names the target column for classification, None for regression.

    Rows of separate validation/test files without a `target` value are dropped: they cannot be scored.
    `split.train_subsample` < 1 keeps only that share of the training split (validation and test unchanged).
    """
    splits = _split(frame, split, seed=seed, stratify_by=stratify_by, source=source, target=target)
    if split.train_subsample < 1:
        kept, _ = _two_way(splits.train, 1 - split.train_subsample, seed, stratify_by, source)
        splits = Splits(kept, splits.validation, splits.test)
    return splits


def _split(frame: pd.DataFrame, split: SplitConfig, *, seed: int, stratify_by: str | None, source: str,
           target: str | None) -> Splits:
    if split.column is not None:
        return _split_by_column(frame, split.column, source)
    validation = _labelled_file(split.validation_file, target) if split.validation_file else None
    test = _labelled_file(split.test_file, target) if split.test_file else None
    if validation is not None and test is not None:
        return Splits(frame.reset_index(drop=True), validation, test)
    if validation is not None:  # only a validation file: carve the test split out of the main file
        train, test = _two_way(frame, split.test / (split.train + split.test), seed, stratify_by, source)
        return Splits(train, validation, test)
    if test is not None:
        train, validation = _two_way(frame, split.validation / (split.train + split.validation), seed,
                                     stratify_by, source)
        return Splits(train, validation, test)
    _require_rows(frame, source, split)
    held_out = split.validation + split.test
    train, rest = _two_way(frame, held_out, seed, stratify_by, source)
    if split.test == 0:
        return Splits(train, rest, rest.iloc[0:0])
    validation, test = _two_way(rest, split.test / held_out, seed, stratify_by, source)
    return Splits(train, validation, test)


def _labelled_file(path: Path, target: str | None) -> pd.DataFrame:
    frame = read_table(path)
    if target is None:
        return frame
    if target not in frame.columns:
        raise DataError(f"{path}: lacks the target column {target!r}, needed to score the model on it.")
    return frame[frame[target].notna()].reset_index(drop=True)


def _require_rows(frame: pd.DataFrame, source: str, split: SplitConfig) -> None:
    smallest = min(f for f in (split.train, split.validation, split.test) if f > 0)
    needed = max(MIN_ROWS, int(2 / smallest) + 1)
    if len(frame) < needed:
        raise DataError(
            f"{source}: {len(frame)} labelled rows is too few for a "
            f"{split.train:.0%}/{split.validation:.0%}/{split.test:.0%} train/validation/test split; "
            f"deepwell needs at least {needed} so every split has rows to learn from or measure on. "
            "Add rows, or give separate validation/test files (split.validation_file, split.test_file).")


def _two_way(frame: pd.DataFrame, second_share: float, seed: int, stratify_by: str | None,
             source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels = frame[stratify_by] if stratify_by else None
    try:
        first, second = train_test_split(frame, test_size=second_share, random_state=seed, stratify=labels)
    except ValueError as exc:
        if labels is None:
            raise DataError(f"{source}: cannot split {len(frame)} rows: {exc}") from None
        warn(f"{source}: a class of {stratify_by!r} is too rare to stratify the split ({str(exc)[:200]}); "
             "splitting at random instead.")
        first, second = train_test_split(frame, test_size=second_share, random_state=seed)
    return first.reset_index(drop=True), second.reset_index(drop=True)


def _split_by_column(frame: pd.DataFrame, column: str, source: str) -> Splits:
    if column not in frame.columns:
        raise ConfigError(f"split.column {column!r} is not a column of {source}.")
    names = frame[column].astype("string").str.strip().str.lower().map(_SPLIT_NAMES)
    unknown = frame.loc[names.isna(), column].dropna().unique()[:5].tolist()
    if names.isna().any():
        raise DataError(f"{source}: column {column!r} must hold train, validation (or val) and test for every "
                        f"row; found {unknown or 'missing values'}.")
    parts = {name: frame[names == name].drop(columns=column).reset_index(drop=True)
             for name in ("train", "validation", "test")}
    for name in ("train", "validation"):
        if parts[name].empty:
            raise DataError(f"{source}: split column {column!r} marks no rows as {name}.")
    return Splits(parts["train"], parts["validation"], parts["test"])

