"""The reference profile a model folder keeps (reference.json): what each measure looked like in training.

Numbers keep their range and deciles as bin edges, the share of rows in each bin and 101 quantiles (for the
Kolmogorov–Smirnov test and plots); categories keep the shares of their most frequent levels. Inputs are
profiled on the training split, predictions on the test split (held-out rows, as a served model sees them).
Only summaries are kept, never rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwell.monitoring.measures import (
    FILE_MEASURES,
    Measure,
    MeasureKind,
    Measurer,
    measure_predictions,
    prediction_measures,
    word_vocabulary,
)

if TYPE_CHECKING:
    from deepwell.features.pipeline import Preprocessor
    from deepwell.inference.predict import Predictions
    from deepwell.task import Task

FILE_NAME = "reference.json"
FORMAT = "deepwell-reference"
FORMAT_VERSION = 1
OTHER = "(other)"  # levels beyond the most frequent ones, and levels training never saw
MAX_LEVELS = 30
MAX_ROWS, MAX_FILE_ROWS = 50_000, 2_000  # rows profiled (a seeded sample); fewer when files must be decoded


@dataclass
class Reference:
    """One measure's distribution in training."""

    measure: Measure
    rows: int
    missing: float  # share of rows without a value
    edges: list[float] = field(default_factory=list)  # number: its minimum, distinct deciles, maximum
    shares: list[float] = field(default_factory=list)  # number: share of present values per bin (`number_bins`)
    quantiles: list[float] = field(default_factory=list)  # number: 0 %, 1 %, …, 100 %
    levels: dict[str, float] = field(default_factory=dict)  # category: share of present values per level

    @classmethod
    def of(cls, measure: Measure, values: np.ndarray) -> Reference:
        present = present_values(measure, values)
        missing = 1.0 - len(present) / len(values) if len(values) else 0.0
        if measure.kind is MeasureKind.CATEGORY:
            counts = pd.Series(present, dtype=object).value_counts(normalize=True)
            levels = {str(k): float(v) for k, v in counts.iloc[:MAX_LEVELS].items()}
            if len(counts) > MAX_LEVELS:
                levels[OTHER] = float(counts.iloc[MAX_LEVELS:].sum())
            return cls(measure, len(values), missing, levels=levels)
        if not len(present):
            return cls(measure, len(values), missing)
        edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))  # the range and the deciles
        bins = np.bincount(number_bins(edges, present), minlength=len(edges) + 1)
        return cls(measure, len(values), missing, edges=edges.tolist(), shares=(bins / len(present)).tolist(),
                   quantiles=np.quantile(present, np.linspace(0, 1, 101)).tolist())

    def to_dict(self) -> dict[str, Any]:
        data = {"measure": self.measure.to_dict(), "rows": self.rows, "missing": self.missing}
        if self.measure.kind is MeasureKind.CATEGORY:
            return {**data, "levels": self.levels}
        return {**data, "edges": self.edges, "shares": self.shares, "quantiles": self.quantiles}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        return cls(Measure.from_dict(data["measure"]), int(data["rows"]), float(data["missing"]),
                   edges=list(data.get("edges", [])), shares=list(data.get("shares", [])),
                   quantiles=list(data.get("quantiles", [])), levels=dict(data.get("levels", {})))


@dataclass
class ReferenceProfile:
    inputs: list[Reference]
    predictions: list[Reference]  # empty when the run had no test split
    vocabularies: dict[str, list[str]]  # per text column, its most frequent training words

    @property
    def references(self) -> list[Reference]:
        return [*self.inputs, *self.predictions]

    def measurer(self, preprocessor: Preprocessor) -> Measurer:
        return Measurer(preprocessor, self.vocabularies)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "inputs": [r.to_dict() for r in self.inputs],
                "predictions": [r.to_dict() for r in self.predictions], "vocabularies": self.vocabularies}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        if data.get("format") != FORMAT or int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} file of version ≤ {FORMAT_VERSION}")
        return cls([Reference.from_dict(r) for r in data["inputs"]],
                   [Reference.from_dict(r) for r in data["predictions"]], dict(data.get("vocabularies", {})))


def build_profile(preprocessor: Preprocessor, task: Task, train: pd.DataFrame,
                  held_out: Predictions | None, seed: int = 0) -> ReferenceProfile:
    """The reference of each input measure on (a sample of) the training rows, and of the predictions on the
    held-out rows."""
    reads_files = any(f.type in FILE_MEASURES for f in preprocessor.features)
    rows = MAX_FILE_ROWS if reads_files else MAX_ROWS
    sample = train.sample(n=rows, random_state=seed) if len(train) > rows else train
    vocabularies = {f.name: word_vocabulary(train[f.name]) for f in preprocessor.features
                    if f.type == "text" and f.name in train.columns}
    measurer = Measurer(preprocessor, vocabularies)
    measured = measurer.inputs(sample.reset_index(drop=True))
    inputs = [Reference.of(m, measured[m.name].to_numpy()) for m in measurer.measures]
    predictions: list[Reference] = []
    if held_out is not None and len(held_out.predictions):
        frame = measure_predictions(task, held_out.predictions, held_out.probabilities)
        predictions = [Reference.of(m, frame[m.name].to_numpy()) for m in prediction_measures(task)]
    return ReferenceProfile(inputs, predictions, vocabularies)


def number_bins(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's bin: 0 below the training minimum, then [edge, next edge), the last from the maximum up.

    Left-closed bins give a value training took often (a count's 0, a share's 1.0) a bin of its own, so a move
    away from it, up or down, shows."""
    return np.searchsorted(edges, values, side="right")


def present_values(measure: Measure, values: np.ndarray) -> np.ndarray:
    if measure.kind is MeasureKind.CATEGORY:
        return np.array([str(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))],
                        dtype=object)
    numbers = np.asarray(values, dtype=float)
    return numbers[np.isfinite(numbers)]

