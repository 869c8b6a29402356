"""The report's figures, drawn with matplotlib's object API (`Figure`, no pyplot): no display, no global
backend switch, nothing left registered after saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn import metrics as skm

TRAIN, VALID = "#3b6fb6", "#d9822b"
MAX_CURVES = 10  # one-vs-rest curves drawn for at most this many classes


def learning_curves(history: pd.DataFrame, metric: str | None) -> Figure:
    """Loss, and the display metric, per epoch: training against validation."""
    panels = [("loss", "train_loss", "val_loss")]
    if metric and f"val_{metric}" in history:
        panels.append((metric, f"train_{metric}" if f"train_{metric}" in history else None, f"val_{metric}"))
    fig = Figure(figsize=(5.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, train, valid) in zip(axes[0], panels, strict=True):
        if train:
            ax.plot(history["epoch"], history[train], color=TRAIN, label="training")
        ax.plot(history["epoch"], history[valid], color=VALID, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion(y_true: pd.Series, y_pred: pd.Series, classes: list[str]) -> Figure:
    matrix = skm.confusion_matrix(y_true, y_pred, labels=classes)
    size = min(9.0, 2.2 + 0.5 * len(classes))
    fig = Figure(figsize=(size, size * 0.85))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 4 else 0, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 20:
        high = matrix.max() / 2 if matrix.size else 0
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                    color="white" if count > high else "#1d2430")
    fig.tight_layout()
    return fig


def roc_and_precision_recall(y_true: pd.Series, probabilities: pd.DataFrame, classes: list[str]) -> Figure:
    """Binary: the positive class (the second); multiclass: one-vs-rest for the first classes."""
    shown = classes[1:] if len(classes) == 2 else classes[:MAX_CURVES]
    fig = Figure(figsize=(10.4, 4))
    roc, pr = fig.subplots(1, 2)
    for label in shown:
        truth = (y_true.astype(str) == str(label)).to_numpy()
        if truth.all() or not truth.any():
            continue
        score = probabilities[f"probability_{label}"].to_numpy()
        fpr, tpr, _ = skm.roc_curve(truth, score)
        precision, recall, _ = skm.precision_recall_curve(truth, score)
        roc.plot(fpr, tpr, label=f"{label} (AUC {skm.auc(fpr, tpr):.3f})")
        pr.plot(recall, precision, label=f"{label} (AP {skm.average_precision_score(truth, score):.3f})")
    roc.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="precision–recall")
    for ax in (roc, pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def residuals(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    fig = Figure(figsize=(10.4, 4))
    fit, res = fig.subplots(1, 2)
    fit.scatter(y_true, y_pred, s=8, alpha=0.5, color=TRAIN)
    low, high = float(np.nanmin([y_true.min(), y_pred.min()])), float(np.nanmax([y_true.max(), y_pred.max()]))
    fit.plot([low, high], [low, high], color="#999", linestyle="--", linewidth=1)
    fit.set(xlabel="true", ylabel="predicted", title="predicted against true")
    res.scatter(y_pred, y_true - y_pred, s=8, alpha=0.5, color=VALID)
    res.axhline(0, color="#999", linestyle="--", linewidth=1)
    res.set(xlabel="predicted", ylabel="true − predicted", title="residuals")
    for ax in (fit, res):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def class_balance(counts: pd.DataFrame) -> Figure:
    """Rows per class (index) and split (columns)."""
    fig = Figure(figsize=(min(10.0, 3 + 0.45 * len(counts)), 3.4))
    ax = fig.subplots()
    counts.plot.bar(ax=ax, rot=45 if len(counts) > 4 else 0)
    ax.set_ylabel("rows")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def trials_scatter(table: pd.DataFrame, metric: str) -> Figure:
    """Tuning: validation metric against network size, one point per finished trial."""
    done = table[table["state"] == "complete"].dropna(subset=["parameters"])
    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    ax.scatter(done["parameters"], done[f"validation_{metric}"], color=TRAIN)
    for _, row in done.iterrows():
        ax.annotate(str(int(row["trial"])), (row["parameters"], row[f"validation_{metric}"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="trainable parameters", ylabel=f"validation {metric}", title="trials")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def data_curve(points: pd.DataFrame, error: str) -> Figure:
    """Training and validation error against the number of training rows."""
    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    ax.plot(points["rows"], points["train_error"], "o-", color=TRAIN, label="training")
    ax.plot(points["rows"], points["validation_error"], "o-", color=VALID, label="validation")
    ax.set_xscale("log")
    ax.set(xlabel="training rows", ylabel=error, title="data-size learning curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
