"""Bias mitigation after training: group-specific decision thresholds (Hardt, Price & Srebro, 2016), fitted with
fairlearn's ThresholdOptimizer on the validation split's scores and kept in the model folder as JSON.

Per group the rule fairlearn finds is an interpolation of two thresholds on the favourable class's probability:
with probability p0 apply `score op0 t0`, else `score op1 t1` (and, for equalised odds, a constant with
probability p_ignore). fairlearn draws that coin at random on each call; here it is drawn from a hash of the row's
score and group, so the same row always gets the same answer while the rates over many rows are fairlearn's.
A row whose group the rule does not know (unseen at validation, or a sensitive column missing) keeps the network's
own decision. The probabilities a model returns stay the network's: only the labels move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepwell.edge.thresholds import GroupRule, favourable_chosen  # the rules' one implementation (numpy only)
from deepwell.errors import ConfigError, ModelFileError

CONSTRAINTS = ("demographic_parity", "equalized_odds", "true_positive_rate_parity", "false_positive_rate_parity")
_BOUND = 2.0  # fairlearn's ±inf thresholds, for scores in [0, 1], kept finite so the JSON stays strict


@dataclass
class GroupThresholds:
    """The fitted rules, the sensitive column(s) they read, and the favourable class whose probability is the score."""

    sensitive: list[str]
    favourable: str
    constraint: str
    rules: dict[str, GroupRule]

    def favourable_chosen(self, scores: np.ndarray, groups: pd.Series) -> np.ndarray:
        """True where the row gets the favourable outcome: its group's rule, or `score > 0.5` for an unknown group."""
        return favourable_chosen(self.rules, scores, groups.astype(str).to_numpy())

    def to_dict(self) -> dict[str, Any]:
        return {"method": "threshold", "library": "fairlearn.postprocessing.ThresholdOptimizer",
                "sensitive": self.sensitive, "favourable": self.favourable, "constraint": self.constraint,
                "rules": {g: asdict(r) for g, r in self.rules.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupThresholds:
        try:
            return cls(list(data["sensitive"]), str(data["favourable"]), str(data["constraint"]),
                       {str(g): GroupRule(**r) for g, r in data["rules"].items()})
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"fairness_thresholds.json is damaged: {type(exc).__name__}: {exc}") from None


def fit_thresholds(scores: np.ndarray, favoured: np.ndarray, groups: pd.Series, sensitive: Sequence[str],
                   favourable: str, constraint: str = "demographic_parity") -> GroupThresholds:
    """fairlearn's ThresholdOptimizer on (favourable-class probability, favourable label, group) — the validation
    split's — maximising accuracy under `constraint`."""
    if constraint not in CONSTRAINTS:
        raise ConfigError(f"fairness.constraint is {constraint!r}; expected one of {', '.join(CONSTRAINTS)}.")
    try:
        from fairlearn.postprocessing import ThresholdOptimizer
    except ImportError:
        raise ConfigError("--mitigate threshold needs fairlearn: pip install 'deepwell[fairness]'.") from None

    optimizer = ThresholdOptimizer(estimator=_scores_estimator(), constraints=constraint, objective="accuracy_score",
                                   prefit=True, predict_method="predict_proba")
    labels = groups.astype(str).to_numpy()
    optimizer.fit(np.asarray(scores, float)[:, None], np.asarray(favoured, int), sensitive_features=labels)
    rules = {str(g): _rule(b) for g, b in optimizer.interpolated_thresholder_.interpolation_dict.items()}
    return GroupThresholds(list(sensitive), favourable, constraint, rules)


def _scores_estimator() -> Any:
    """A fitted 'estimator' whose input is already the score: what ThresholdOptimizer(prefit=True) thresholds."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Scores(ClassifierMixin, BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> Scores:  # noqa: N803 - scikit-learn's names
            return self

        def __sklearn_is_fitted__(self) -> bool:
            return True

        def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
            score = np.asarray(X, float)[:, 0]
            return np.column_stack([1 - score, score])

        def predict(self, X: Any) -> np.ndarray:  # noqa: N803
            return (np.asarray(X, float)[:, 0] > 0.5).astype(int)

    return Scores()


def _rule(bunch: Any) -> GroupRule:
    def bounded(t: float) -> float:
        return float(np.clip(t, -_BOUND, _BOUND))

    return GroupRule(float(bunch.p0), bunch.operation0.operator, bounded(bunch.operation0.threshold),
                     float(bunch.p1), bunch.operation1.operator, bounded(bunch.operation1.threshold),
                     float(bunch.get("p_ignore", 0.0)), float(bunch.get("prediction_constant", 0.0)))
