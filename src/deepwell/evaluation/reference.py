"""A reference learner for the fit diagnosis: what error is achievable on this data?

Without one, "the model removes little of the baseline's error" cannot tell a network that is too small from
data that is simply noisy (Adult's or diabetes' irreducible error). For table-like inputs — numbers, categories,
frozen embeddings — scikit-learn's gradient boosting, fitted on the same training split and scored on the same
validation split, gives that yardstick in about a second. Inputs it cannot read (tokens, images, audio) get
no reference, and the diagnosis falls back to the baseline-skill rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepwell.task import Task

TABULAR_KINDS = {"numeric", "vector", "embedding"}
MAX_ROWS = 50_000  # training rows the reference sees at most (seeded sample): it is a yardstick, not a model


def reference_scores(specs: dict[str, dict[str, Any]], train_inputs: dict[str, Any], y_train: np.ndarray,
                     validation_inputs: dict[str, Any], y_validation: np.ndarray, task: Task, n_classes: int,
                     score: Any) -> dict[str, Any] | None:
    """Validation scores (`score(outputs, y)`, the task's metrics) of gradient boosting on the same inputs, or
    None when some input is not table-like."""
    if not specs or any(spec["kind"] not in TABULAR_KINDS for spec in specs.values()):
        return None
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x_train, categorical = _matrix(specs, train_inputs)
    x_validation, _ = _matrix(specs, validation_inputs)
    if len(x_train) > MAX_ROWS:
        keep = np.random.default_rng(0).choice(len(x_train), MAX_ROWS, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    kind = HistGradientBoostingRegressor if task.is_regression else HistGradientBoostingClassifier
    model = kind(categorical_features=categorical or None, random_state=0)
    model.fit(x_train, y_train)
    if task.is_regression:
        outputs = model.predict(x_validation)
    else:  # probabilities for every class index, even those absent from the training sample
        outputs = np.zeros((len(x_validation), n_classes))
        outputs[:, model.classes_.astype(int)] = model.predict_proba(x_validation)
    return {"model": "gradient boosting (scikit-learn HistGradientBoosting, defaults)", **score(outputs, y_validation)}


def _matrix(specs: dict[str, dict[str, Any]], inputs: dict[str, Any]) -> tuple[np.ndarray, list[int]]:
    """One float matrix; category codes become single columns marked categorical (when they fit in 255 bins)."""
    columns, categorical = [], []
    for name, spec in specs.items():
        values = np.asarray(inputs[name])
        if spec["kind"] == "embedding":
            if spec["num_embeddings"] <= 255:
                categorical.append(sum(c.shape[1] for c in columns))
            columns.append(values.reshape(-1, 1).astype(np.float64))
        else:
            columns.append(values.reshape(len(values), -1).astype(np.float64))
    return np.concatenate(columns, axis=1), categorical
