"""Numbers: standardised (log-scaled first when heavily skewed), with a missing-value indicator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepwell.features.base import Feature, wrong_values_error
from deepwell.features.summaries import Moments

CLIP = 8.0  # standardised values beyond ±CLIP are clipped, so one outlier cannot blow up a batch


def to_numbers(values: pd.Series, column: str, strict: bool) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce").astype(float)
    if strict:
        bad = numbers.isna() & text.notna() & (text != "")
        if bad.any():
            raise wrong_values_error(column, values, bad.fillna(False).astype(bool), "numbers")
    return numbers


@dataclass
class NumberSummary:
    raw: Moments
    log: Moments

    def merge(self, other: NumberSummary) -> NumberSummary:
        return NumberSummary(self.raw.merge(other.raw), self.log.merge(other.log))


class NumberFeature(Feature):
    type = "number"

    def summarise(self, values: pd.Series) -> NumberSummary:
        """Moments of the values and of log1p of their non-negative part (used when all are ≥ 0)."""
        x = to_numbers(values, self.name, strict=False).to_numpy(dtype=np.float64)
        return NumberSummary(Moments.of(x), Moments.of(np.log1p(np.clip(x, 0, None))))

    def fit_summary(self, summary: NumberSummary) -> None:
        raw = summary.raw
        self.log = bool(raw.count and raw.minimum >= 0 and raw.skew > 2.0)
        scaled = summary.log if self.log else raw
        self.mean = scaled.mean if scaled.count else 0.0
        self.std = scaled.std if scaled.std > 1e-12 else 1.0
        self.indicator = bool(raw.missing)

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        x = to_numbers(values, self.name, strict).to_numpy(dtype=np.float64)
        missing = np.isnan(x)
        if self.log:
            x = np.log1p(np.clip(x, 0, None))
        z = np.clip((x - self.mean) / self.std, -CLIP, CLIP)
        z[missing] = 0.0
        columns = [z, missing.astype(np.float64)] if self.indicator else [z]
        return np.stack(columns, axis=1).astype(np.float32)

    def output_names(self) -> list[str]:
        return [self.name, f"{self.name}__missing"] if self.indicator else [self.name]

    def get_state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "log": self.log, "indicator": self.indicator}

    def set_state(self, state: dict[str, Any]) -> None:
        self.mean, self.std = float(state["mean"]), float(state["std"])
        self.log, self.indicator = bool(state["log"]), bool(state["indicator"])
