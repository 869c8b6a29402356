"""Task metrics from scikit-learn, and the trivial baseline (majority class or training mean)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

from deepwell.task import Task


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[Any],
                           detailed: bool = True) -> dict[str, Any]:
    """y_true: class indices; proba: [rows, classes]. detailed adds the confusion matrix and per-class table."""
    labels = np.arange(len(classes))
    y_pred = proba.argmax(axis=1)
    out: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "f1_macro": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, _clipped(proba), labels=labels)),
        "roc_auc": _roc_auc(y_true, proba, labels),
    }
    if detailed:
        out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0)
        out["per_class"] = {str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                            for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)}
    return out


def _clipped(proba: np.ndarray) -> np.ndarray:
    """Probabilities kept away from 0 (log loss stays finite) and summing to one again."""
    clipped = np.clip(proba, 1e-7, 1)
    return clipped / clipped.sum(axis=1, keepdims=True)


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> float | None:
    """Binary AUC, or one-vs-rest macro AUC; None when the data holds a single class (undefined)."""
    present = np.unique(y_true)
    if len(present) < 2:
        return None
    if len(labels) == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    if len(present) < len(labels):  # OvR over the classes present only
        cols = proba[:, present] / np.clip(proba[:, present].sum(axis=1, keepdims=True), 1e-12, None)
        if len(present) == 2:
            return float(skm.roc_auc_score(y_true == present[1], cols[:, 1]))
        return float(skm.roc_auc_score(y_true, cols, multi_class="ovr", labels=present))
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(math.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }


def baseline_metrics(task: Task, y_true: np.ndarray, baseline: dict[str, Any], classes: list[Any]) -> dict[str, Any]:
    """Scores of the trivial model fitted on the training split: class priors, or the training mean."""
    if task.is_regression:
        return regression_metrics(y_true, np.full(len(y_true), baseline["mean"]))
    prior = np.asarray(baseline["class_prior"], dtype=float)
    return classification_metrics(y_true, np.tile(prior, (len(y_true), 1)), classes, detailed=False)


def fit_baseline(task: Task, y_train: np.ndarray, n_classes: int) -> dict[str, Any]:
    """y_train: class indices or raw regression targets."""
    if task.is_regression:
        return {"kind": "mean", "mean": float(np.mean(y_train))}
    prior = np.bincount(y_train, minlength=n_classes) / len(y_train)
    return {"kind": "majority class", "class_prior": prior.tolist()}
