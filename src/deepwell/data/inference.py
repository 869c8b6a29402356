"""Infer what each column holds (number, binary, category, text, datetime, id) and what the task is.

Inference looks at values, not only dtypes: numbers stored as strings are numbers, dates stored as
strings are dates, unique-per-row codes are IDs. Every choice can be overridden in the config.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from deepwell.config import MAX_LEVELS, Config
from deepwell.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, looks_like_media
from deepwell.errors import DataError
from deepwell.task import Task

SAMPLE_ROWS = 2000
PARSE_SHARE = 0.95  # share of non-missing values that must parse for a string column to be numeric/date
_DATE_LIKE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d{1,2}:\d{2}.*)?\s*$")
_ID_NAME = re.compile(r"(^|_|\b)(id|uuid|guid|key|index)$", re.IGNORECASE)


@dataclass
class ColumnProfile:
    """What `deepwell describe` shows for one column."""

    name: str
    type: str  # a ColumnType, or "empty" when every value is missing
    dtype: str
    missing: int
    distinct: int
    examples: list[str]
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def infer_column_type(series: pd.Series) -> tuple[str, str]:
    """Return (type, note). Type "empty" means every value is missing."""
    values = series.dropna()
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        values = values[values.astype(str).str.strip() != ""]
    n = len(values)
    if n == 0:
        return "empty", "all values missing"
    if pd.api.types.is_bool_dtype(values):
        return "binary", ""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime", "expanded to year, month, day, day of week, hour"
    if pd.api.types.is_numeric_dtype(values):
        return _numeric_type(series.name, values)
    text = values.astype(str).str.strip()
    if looks_like_media(text, IMAGE_EXTENSIONS):
        return "image", "image file paths"
    if looks_like_media(text, AUDIO_EXTENSIONS):
        return "audio", "audio file paths"
    sample = text.sample(min(SAMPLE_ROWS, n), random_state=0) if n > SAMPLE_ROWS else text
    numeric = pd.to_numeric(sample, errors="coerce")
    if numeric.notna().mean() >= PARSE_SHARE:
        kind, note = _numeric_type(series.name, pd.to_numeric(text, errors="coerce").dropna())
        bad = int(pd.to_numeric(text, errors="coerce").isna().sum())
        if bad:
            note = (note + "; " if note else "") + f"{bad} non-numeric value(s) treated as missing"
        return kind, note
    if sample.str.match(_DATE_LIKE).mean() >= PARSE_SHARE and _parse_dates(sample).notna().mean() >= PARSE_SHARE:
        return "datetime", "expanded to year, month, day, day of week, hour"
    distinct = text.nunique()
    if distinct == 2:
        return "binary", ""
    words = sample.str.split().str.len().mean()
    if words >= 3 or (distinct / n > 0.5 and sample.str.len().mean() >= 20):
        return "text", f"free text, {words:.1f} words on average"
    if distinct == n and n >= 10:
        return "id", "unique per row: dropped (an identifier carries no pattern)"
    return "category", ""


def _numeric_type(name: object, values: pd.Series) -> tuple[str, str]:
    distinct = values.nunique()
    if distinct == 2:
        return "binary", ""
    is_integer = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if is_integer and distinct == len(values) and len(values) >= 10:
        ordered = np.sort(values.to_numpy(dtype=float))
        consecutive = bool(np.all(np.diff(ordered) == 1))
        if consecutive or _ID_NAME.search(str(name)):
            return "id", "unique integer per row: dropped (an identifier carries no pattern)"
    if distinct == 1:
        return "number", "constant: carries no information"
    return "number", ""


LEVEL_BINS, LEVEL_GAIN, LEVEL_FOLDS, LEVEL_PRIOR = 10, 0.02, 5, 5.0
"""The levels screen: a number's values, told apart, must predict the target out of fold with LEVEL_GAIN less squared
error than a piecewise-linear function of its size through LEVEL_BINS quantile bins (per-value means shrunk toward the
fold's mean by LEVEL_PRIOR rows). Chosen on the suite's tune part (results/ablation-levels.md): it keeps Adult's capital
gains, Boston's tax rates and fishing's catch rates, and leaves out ages and incomes, whose levels only fitted noise
(chile, participation, slid), and finely measured numbers (diamonds' carats), which a smooth function follows."""


def resolve_levels(config: Config, train: pd.DataFrame) -> Config:
    """Each number column's `levels: auto` → whether its values repeat like labels and, told apart, predict the
    target better than its magnitude does, judged on the training rows only (in place)."""
    target = None
    for name, column in config.columns.items():
        if column.type != "number" or column.levels != "auto":
            continue
        column.levels = False
        if not repeats_as_levels(train[name], config.data.level_repeats, MAX_LEVELS):
            continue
        if target is None:
            target = _target_matrix(train[config.target], config.task)
        x = pd.to_numeric(train[name], errors="coerce").to_numpy(dtype=float)
        known = ~np.isnan(x) & ~np.isnan(target).any(axis=1)
        column.levels = levels_predict_better(x[known], target[known], config.training.seed)
    return config


def repeats_as_levels(values: pd.Series, repeats: float, max_levels: int) -> bool:
    """Whether a number column's values repeat like labels: at least 3 distinct values, at most `max_levels`,
    each held by `repeats` rows or more on average (a site's catch rate, a town's tax rate, a code)."""
    if repeats <= 0:
        return False
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    distinct = numbers.nunique()
    return 3 <= distinct <= max_levels and len(numbers) >= repeats * distinct


def levels_predict_better(x: np.ndarray, target: np.ndarray, seed: int) -> bool:
    """Whether the mean target of each value of `x` predicts `target` (rows × outputs) out of fold with at least
    LEVEL_GAIN less squared error than a piecewise-linear function of `x` through the mean target of its quantile
    bins: what the values say beyond how large they are, which a smooth function of the number cannot tell."""
    fold = np.random.default_rng(seed).integers(0, LEVEL_FOLDS, len(x))
    levels_error = smooth_error = 0.0
    for k in range(LEVEL_FOLDS):
        fit, held = fold != k, fold == k
        levels_error += _held_out_error(x, target, fit, held)
        smooth_error += _smooth_error(x, target, fit, held)
    return bool(levels_error < (1 - LEVEL_GAIN) * smooth_error)


def _smooth_error(x: np.ndarray, target: np.ndarray, fit: np.ndarray, held: np.ndarray) -> float:
    """Squared error on `held` rows of the line through each quantile bin's (mean x, mean target) over `fit` rows."""
    edges = np.unique(np.quantile(x[fit], np.linspace(0, 1, LEVEL_BINS + 1)[1:-1]))
    _, index = np.unique(np.searchsorted(edges, x[fit], side="right"), return_inverse=True)
    counts = np.bincount(index)
    centre = np.bincount(index, weights=x[fit]) / counts
    predicted = np.column_stack([np.interp(x[held], centre, np.bincount(index, weights=column) / counts)
                                 for column in target[fit].T])
    return float(((predicted - target[held]) ** 2).sum())


def _held_out_error(keys: np.ndarray, target: np.ndarray, fit: np.ndarray, held: np.ndarray) -> float:
    """Squared error on `held` rows of each key's mean target over `fit` rows, shrunk toward their overall mean."""
    prior = target[fit].mean(axis=0)
    values, index = np.unique(keys[fit], return_inverse=True)
    sums = np.zeros((len(values), target.shape[1]))
    np.add.at(sums, index, target[fit])
    counts = np.bincount(index, minlength=len(values))[:, None]
    means = (sums + LEVEL_PRIOR * prior) / (counts + LEVEL_PRIOR)
    position = np.clip(np.searchsorted(values, keys[held]), 0, len(values) - 1)
    seen = values[position] == keys[held]
    predicted = np.where(seen[:, None], means[position], prior)
    return float(((predicted - target[held]) ** 2).sum())


def _target_matrix(values: pd.Series, task: Task) -> np.ndarray:
    """The target as rows × outputs: one-hot classes, or the standardised value (NaN rows where it is missing)."""
    if task.is_regression:
        y = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        return ((y - np.nanmean(y)) / (np.nanstd(y) or 1.0))[:, None]
    classes = values.astype("string")
    one_hot = pd.get_dummies(classes).to_numpy(dtype=float)
    one_hot[classes.isna().to_numpy()] = np.nan
    return one_hot


def _parse_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce", format="mixed")


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse a column to datetimes; unparseable values become NaT (the caller decides if that is an error)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    return _parse_dates(values.astype("string"))


def profile_table(frame: pd.DataFrame, target: str | None = None) -> list[ColumnProfile]:
    profiles = []
    for name in frame.columns:
        series = frame[name]
        kind, note = infer_column_type(series)
        if name == target:
            note = f"target ({infer_task(series, name)})"
        examples = [str(v)[:40] for v in series.dropna().unique()[:3]]
        profiles.append(ColumnProfile(
            name=name, type=kind, dtype=str(series.dtype), missing=int(series.isna().sum()),
            distinct=int(series.nunique()), examples=examples, note=note,
        ))
    return profiles


def infer_task(target: pd.Series, name: str = "target") -> Task:
    """binary for two classes, multiclass for few discrete values or labels, regression for real numbers."""
    values = target.dropna()
    if len(values) == 0:
        raise DataError(f"Target column {name!r} has no values (every row is empty).")
    distinct = values.nunique()
    if distinct == 2 or pd.api.types.is_bool_dtype(values):
        return Task.BINARY
    if not pd.api.types.is_numeric_dtype(values):
        as_numbers = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
        if as_numbers.notna().mean() >= PARSE_SHARE:
            values = as_numbers.dropna()
        else:
            return Task.MULTICLASS
    numbers = values.to_numpy(dtype=float)
    is_integer = bool(np.all(np.mod(numbers, 1) == 0))
    if is_integer and distinct <= 20 and distinct <= 0.1 * len(values):
        return Task.MULTICLASS
    return Task.REGRESSION
