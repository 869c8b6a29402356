"""Dates and times: expanded to year, month, day, day of week and hour (cyclic ones as sine/cosine)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwell.data.inference import parse_dates
from deepwell.features.base import Feature, wrong_values_error
from deepwell.features.summaries import Moments

PARTS = ["year", "month_sin", "month_cos", "day", "weekday_sin", "weekday_cos", "hour_sin", "hour_cos"]


class DatetimeFeature(Feature):
    type = "datetime"

    def summarise(self, values: pd.Series) -> Moments:
        dates = parse_dates(values).dropna()
        return Moments.of((dates.dt.year + dates.dt.day_of_year / 366.0).to_numpy(float))

    def fit_summary(self, summary: Moments) -> None:
        self.year_mean = summary.mean if summary.count else 2000.0
        std = summary.std if summary.count > 1 else 1.0
        self.year_std = std if std > 1e-9 else 1.0

    def transform(self, values: pd.Series, strict: bool = False) -> np.ndarray:
        dates = parse_dates(values)
        missing = dates.isna().to_numpy()
        if strict:
            given = values.notna() & (values.astype("string").str.strip() != "")
            bad = pd.Series(missing, index=values.index) & given.fillna(False).astype(bool)
            if bad.any():
                raise wrong_values_error(self.name, values, bad, "dates or times")
        year = ((dates.dt.year + dates.dt.day_of_year / 366.0 - self.year_mean) / self.year_std).to_numpy(float)
        month = 2 * np.pi * (dates.dt.month.to_numpy(float) - 1) / 12
        weekday = 2 * np.pi * dates.dt.day_of_week.to_numpy(float) / 7
        hour = 2 * np.pi * (dates.dt.hour + dates.dt.minute / 60).to_numpy(float) / 24
        day = (dates.dt.day.to_numpy(float) - 16) / 9
        parts = np.stack([year, np.sin(month), np.cos(month), day, np.sin(weekday), np.cos(weekday),
                          np.sin(hour), np.cos(hour), missing.astype(float)], axis=1)
        parts[missing, :-1] = 0.0
        return np.nan_to_num(parts).astype(np.float32)

    def output_names(self) -> list[str]:
        return [f"{self.name}__{part}" for part in PARTS] + [f"{self.name}__missing"]

    def get_state(self) -> dict[str, Any]:
        return {"year_mean": self.year_mean, "year_std": self.year_std}

    def set_state(self, state: dict[str, Any]) -> None:
        self.year_mean, self.year_std = float(state["year_mean"]), float(state["year_std"])
