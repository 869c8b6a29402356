"""Network outputs → the scores of one split beside the trivial baseline, in the user's units."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepwell.evaluation.metrics import baseline_metrics, classification_metrics, regression_metrics
from deepwell.evaluation.results import SplitScores
from deepwell.features.target import TargetEncoder


def split_scores(target: TargetEncoder, baseline: dict[str, Any], outputs: np.ndarray,
                 encoded: np.ndarray) -> SplitScores:
    """`outputs`: probabilities or standardised values; `encoded`: class indices or standardised targets."""
    if target.task.is_regression:
        truth = target.unscale(encoded)
        return SplitScores(int(len(encoded)), regression_metrics(truth, target.unscale(outputs)),
                           baseline_metrics(target.task, truth, baseline, []))
    return SplitScores(int(len(encoded)), classification_metrics(encoded, outputs, target.classes),
                       baseline_metrics(target.task, encoded, baseline, target.classes))
