"""Drift: each measure of new rows against its training reference.

Both kinds are binned as in the reference (a number's range and deciles, a category's levels; rows without a value are a
bin of their own) and compared by the population stability index (PSI). Significance guards PSI from the noise
of a small sample: a number adds the Kolmogorov–Smirnov test against the reference's quantiles, a category the
chi-square test of its bins. A measure is

- `drifted` when PSI ≥ 0.25 and the test gives p < 0.01,
- `shifted` when PSI ≥ 0.10 and p < 0.05,
- `stable` otherwise; `too few rows` under 30 new rows, `absent` when the new data lacks the column.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from deepwell.monitoring.measures import MeasureKind
from deepwell.monitoring.profile import OTHER, Reference, ReferenceProfile, number_bins, present_values

MIN_ROWS = 30
SHIFTED_PSI, DRIFTED_PSI = 0.10, 0.25
SHIFTED_P, DRIFTED_P = 0.05, 0.01
FLOOR = 1e-4  # shares are clipped here in PSI, so an empty bin costs a finite amount
MISSING = "(missing)"


class DriftStatus(str, Enum):
    STABLE = "stable"
    SHIFTED = "shifted"
    DRIFTED = "drifted"
    TOO_FEW = "too few rows"
    ABSENT = "absent"

    @property
    def flagged(self) -> bool:
        return self in (DriftStatus.SHIFTED, DriftStatus.DRIFTED, DriftStatus.ABSENT)


@dataclass
class MeasureDrift:
    measure: str
    column: str
    kind: str
    what: str
    status: DriftStatus
    rows: int  # new rows compared
    psi: float | None = None
    test: str | None = None  # "ks" or "chi-square"
    statistic: float | None = None
    p_value: float | None = None
    missing: tuple[float, float] | None = None  # share without a value: reference, new
    bins: list[str] = field(default_factory=list)  # for plots: bin labels,
    reference_shares: list[float] = field(default_factory=list)  # the reference's share per bin,
    current_shares: list[float] = field(default_factory=list)  # the new rows' share per bin

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass
class DriftReport:
    measures: list[MeasureDrift]
    rows: int
    source: str  # where the new rows came from

    @property
    def flagged(self) -> list[MeasureDrift]:
        return [m for m in self.measures if m.status.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "source": self.source, "flagged": [m.measure for m in self.flagged],
                "measures": [m.to_dict() for m in self.measures]}


def compare(profile: ReferenceProfile, current: pd.DataFrame, source: str) -> DriftReport:
    """`current` holds one column per measure (what `Measurer.inputs` and `measure_predictions` give)."""
    results = []
    for reference in profile.references:
        measure = reference.measure
        if measure.name not in current.columns:
            results.append(MeasureDrift(measure.name, measure.column, measure.kind.value, measure.what,
                                        DriftStatus.ABSENT, 0))
            continue
        results.append(measure_drift(reference, current[measure.name].to_numpy()))
    return DriftReport(results, len(current), source)


def measure_drift(reference: Reference, values: np.ndarray) -> MeasureDrift:
    measure = reference.measure
    drift = MeasureDrift(measure.name, measure.column, measure.kind.value, measure.what, DriftStatus.TOO_FEW,
                         len(values))
    if len(values) < MIN_ROWS:
        return drift
    present = present_values(measure, values)
    drift.missing = (reference.missing, 1.0 - len(present) / len(values))
    if measure.kind is MeasureKind.CATEGORY:
        bins, expected, observed = _category_bins(reference, present, len(values))
    else:
        bins, expected, observed = _number_bins(reference, present, len(values))
    drift.bins, drift.reference_shares = bins, expected.tolist()
    drift.current_shares = (observed / observed.sum()).tolist()
    drift.psi = psi(expected, observed / observed.sum())
    drift.test, drift.statistic, drift.p_value = _test(reference, present, expected, observed)
    drift.status = status(drift.psi, drift.p_value)
    return drift


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.clip(expected, FLOOR, None), np.clip(actual, FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def status(value: float, p_value: float) -> DriftStatus:
    if value >= DRIFTED_PSI and p_value < DRIFTED_P:
        return DriftStatus.DRIFTED
    if value >= SHIFTED_PSI and p_value < SHIFTED_P:
        return DriftStatus.SHIFTED
    return DriftStatus.STABLE


def _number_bins(reference: Reference, present: np.ndarray, rows: int):
    """The reference's bins plus one for rows without a value: labels, expected shares and observed counts."""
    edges = np.asarray(reference.edges, float)
    if not len(reference.shares):  # the reference had no values at all
        labels, expected = [], np.zeros(0)
        observed = np.zeros(0)
    else:
        labels = _bin_labels(edges)
        expected = np.asarray(reference.shares) * (1 - reference.missing)
        observed = np.bincount(number_bins(edges, present), minlength=len(edges) + 1)
    return ([*labels, MISSING], np.append(expected, reference.missing),
            np.append(observed, rows - len(present)).astype(float))


def _category_bins(reference: Reference, present: np.ndarray, rows: int):
    known = [level for level in reference.levels if level != OTHER]
    counts = pd.Series(present, dtype=object).value_counts()
    observed = [float(counts.get(level, 0)) for level in known]
    other = float(counts.sum() - sum(observed))
    expected = [reference.levels[level] * (1 - reference.missing) for level in known]
    labels = list(known)
    if other or OTHER in reference.levels:
        labels.append(OTHER)
        observed.append(other)
        expected.append(reference.levels.get(OTHER, 0.0) * (1 - reference.missing))
    return ([*labels, MISSING], np.append(expected, reference.missing),
            np.append(observed, rows - len(present)))


def _test(reference: Reference, present: np.ndarray, expected: np.ndarray, observed: np.ndarray):
    """The chi-square test of the bins; for a continuous number (distinct reference quantiles) the KS test of its
    values against the reference quantiles instead, unless the share of missing values is what moved.

    KS is taken two-sample (the reference is a sample too): its statistic against the reference's interpolated
    distribution, its p-value for the effective size n·m/(n+m)."""
    from scipy import stats

    smoothed = np.clip(expected, FLOOR, None)
    chi = stats.chisquare(observed, smoothed / smoothed.sum() * observed.sum())
    chi_result = ("chi-square", float(chi.statistic), float(chi.pvalue))
    quantiles = np.asarray(reference.quantiles, float)
    continuous = len(quantiles) > 1 and bool(np.all(np.diff(quantiles) > 0))
    if reference.measure.kind is MeasureKind.CATEGORY or len(present) < MIN_ROWS or not continuous \
            or _moved_missing(expected, observed):
        return chi_result
    reference_cdf = np.interp(np.sort(present), quantiles, np.linspace(0, 1, len(quantiles)))
    steps = np.arange(1, len(present) + 1) / len(present)
    statistic = float(max(np.max(steps - reference_cdf), np.max(reference_cdf - (steps - 1 / len(present)))))
    present_rows = reference.rows * (1 - reference.missing)
    effective = len(present) * present_rows / (len(present) + present_rows)
    return "ks", statistic, float(stats.kstwobign.sf(statistic * np.sqrt(effective)))


def _moved_missing(expected: np.ndarray, observed: np.ndarray) -> bool:
    return abs(observed[-1] / observed.sum() - expected[-1]) >= 0.05


def _bin_labels(edges: np.ndarray) -> list[str]:
    bounds = [f"{e:.4g}" for e in edges]
    return [f"< {bounds[0]}", *(f"{a} – {b}" for a, b in zip(bounds, bounds[1:], strict=False)),
            f"≥ {bounds[-1]}"]
