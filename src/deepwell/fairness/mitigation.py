"""Bias mitigation before training: reweighing (Kamiran & Calders, 2012)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def reweigh(groups: pd.Series, labels: pd.Series) -> np.ndarray:
    """Per-row weights P(group) · P(label) / P(group, label): the weighted training set has every label at the same
    rate in every group (group and label independent), while each group keeps its total weight."""
    frame = pd.DataFrame({"group": groups.to_numpy(), "label": labels.astype(str).to_numpy()})
    rows = len(frame)
    group_share = frame["group"].map(frame["group"].value_counts() / rows)
    label_share = frame["label"].map(frame["label"].value_counts() / rows)
    joint = frame.groupby(["group", "label"])["group"].transform("size") / rows
    return (group_share * label_share / joint).to_numpy(float)
