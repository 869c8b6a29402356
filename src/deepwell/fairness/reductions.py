"""Bias mitigation during training: fairlearn's ExponentiatedGradient (Agarwal et al., 2018) over deepwell networks.

ExponentiatedGradient sees networks through the scikit-learn face: it calls `fit(X, y, sample_weight)` with labels
and weights of its own (a cost-sensitive problem per Lagrange multiplier) and keeps a weighted mixture of the
networks it trained. Here `X` is a column of row numbers into the training tensors, so every network shares the run's
preprocessing and the mixture is one `EnsembleNetwork` with member weights — saved, served and exported like any
model. fairlearn draws one member at random per prediction; the ensemble averages the members' probabilities by
their weights instead, so a row always gets the same answer (the audit measures what that mixture does).

`deepwell.sklearn.DeepwellClassifier` takes `sample_weight` too, so `ExponentiatedGradient(DeepwellClassifier(),
DemographicParity())` also works directly on a table in Python.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from deepwell.errors import ConfigError

ITERATIONS = 10  # ExponentiatedGradient's max_iter (config fairness.reductions_iterations): each trains a network
EPS = 0.02  # the allowed constraint violation (selection-rate or error-rate gap)


class RowTrainer(Protocol):
    """Trains networks on rows of the run's training tensors (pipeline/fit.py has the one deepwell uses)."""

    def fit(self, rows: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> torch.nn.Module:
        """A two-class network trained on `rows` with these 0/1 labels and row weights."""

    def decide(self, network: torch.nn.Module, rows: np.ndarray) -> np.ndarray:
        """The network's 0/1 decisions on `rows`."""


def exponentiated_gradient(groups: pd.Series, labels: np.ndarray, constraint: str, trainer: RowTrainer,
                           iterations: int = ITERATIONS, eps: float = EPS) -> tuple[list[torch.nn.Module], list[float]]:
    """The networks fairlearn's ExponentiatedGradient keeps (weight > 0) and their weights, summing to 1.

    `labels` are the encoded binary targets (0/1) of the training rows, `groups` their sensitive groups."""
    try:
        from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
    except ImportError:
        raise ConfigError("--mitigate reductions needs fairlearn: pip install 'deepwell[fairness]'.") from None

    moment = {"demographic_parity": DemographicParity, "equalized_odds": EqualizedOdds}[constraint]
    search = ExponentiatedGradient(_row_estimator(trainer), constraints=moment(difference_bound=eps),
                                   eps=eps, max_iter=iterations)
    rows = np.arange(len(labels))[:, None]
    search.fit(rows, np.asarray(labels, int), sensitive_features=groups.astype(str).to_numpy())
    kept = [(p, float(w)) for p, w in zip(search.predictors_, search.weights_, strict=True) if w > 1e-6]
    total = sum(w for _, w in kept)
    return [p.network_ for p, _ in kept], [w / total for _, w in kept]


def _row_estimator(trainer: RowTrainer) -> Any:
    """A scikit-learn classifier on training row numbers: `fit` trains a network on those rows with the labels and
    weights given; `predict` is its decision on them (what ExponentiatedGradient evaluates constraints with)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class RowNetwork(ClassifierMixin, BaseEstimator):
        def __init__(self, trainer: RowTrainer = trainer) -> None:
            self.trainer = trainer

        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RowNetwork:  # noqa: N803 - scikit-learn's names
            rows = np.asarray(X)[:, 0].astype(int)
            weights = np.ones(len(rows)) if sample_weight is None else np.asarray(sample_weight, float)
            self.rows_ = rows
            self.network_ = self.trainer.fit(rows, np.asarray(y, int), weights)
            self.classes_ = np.array([0, 1])
            return self

        def predict(self, X: Any) -> np.ndarray:  # noqa: N803
            return self.trainer.decide(self.network_, np.asarray(X)[:, 0].astype(int))

    return RowNetwork()
