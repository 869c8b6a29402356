"""Global importance: scikit-learn's permutation importance of each input column on held-out labelled rows — how
much the model's accuracy (classification) or RMSE (regression) worsens when that column's values are shuffled
among the rows — with a 95 % t-interval over the repeats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from deepwell.model import Model

REPEATS = 10
MAX_ROWS = 5000  # a seeded sample beyond this: the intervals are already narrow


@dataclass
class Importance:
    metric: str  # "accuracy" or "rmse"
    score: float  # the metric on the rows as they are
    table: pd.DataFrame  # column, importance (mean worsening), low, high, repeats

    def to_frame(self) -> pd.DataFrame:
        return self.table.assign(metric=self.metric, baseline_score=self.score)


def permutation_importance(model: Model, frame: pd.DataFrame, base_dir: Path | None = None, repeats: int = REPEATS,
                           seed: int = 0) -> Importance:
    """`frame` holds the model's input columns and its target."""
    from scipy.stats import t
    from sklearn.inspection import permutation_importance as permute

    from deepwell.inference.predict import predict_frame

    if len(frame) > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, random_state=seed)
    frame = frame.reset_index(drop=True)
    columns = model.input_columns
    truth = frame[model.target]
    regression = model.task.is_regression
    encoded = model.preprocessor.transform_target(frame).numpy()

    def score(_: object, inputs: pd.DataFrame, __: object) -> float:
        outputs = predict_frame(model, inputs, "the explained rows", base_dir, keep_going=False).outputs
        if regression:
            errors = model.preprocessor.target.unscale(outputs) - truth.to_numpy(float)
            return -float(np.sqrt(np.mean(errors ** 2)))
        return float(np.mean(outputs.argmax(axis=1) == encoded))

    found = permute(_Trained(), frame[columns], truth, scoring=score, n_repeats=repeats, random_state=seed)
    spread = found.importances_std * t.ppf(0.975, repeats - 1) / np.sqrt(repeats)
    table = pd.DataFrame({"column": columns, "importance": found.importances_mean,
                          "low": found.importances_mean - spread, "high": found.importances_mean + spread,
                          "repeats": repeats}).sort_values("importance", ascending=False, ignore_index=True)
    baseline = score(None, frame[columns], None)
    return Importance("rmse" if regression else "accuracy", -baseline if regression else baseline, table)


class _Trained:
    """What scikit-learn's permutation_importance checks for (an object with `fit`); the scorer holds the model."""

    def fit(self, *_: object) -> _Trained:
        return self
