"""A model's bias audit on labelled data: the data audit and the model audit for the sensitive column(s), as
`deepwell audit` and `Model.audit` give them (fairness.json is `Audit.to_dict()`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwell.config import FairnessConfig
from deepwell.data.io import TableLike, as_frame
from deepwell.errors import DataError
from deepwell.fairness.audit import DataAudit, ModelAudit, audit_classifier, audit_data, audit_regressor
from deepwell.fairness.groups import group_labels

if TYPE_CHECKING:
    from deepwell.fairness.thresholds import GroupThresholds
    from deepwell.model import Model


@dataclass
class Audit:
    rows: int
    source: str
    data: DataAudit
    model: ModelAudit
    accuracy: float | None = None  # classification: the share of rows predicted right (what a mitigation costs)
    mitigation: dict[str, Any] | None = None  # a mitigated model's metrics beside the unmitigated one's (`compare`)

    def to_dict(self) -> dict[str, Any]:
        data = {"rows": self.rows, "source": self.source, "accuracy": self.accuracy, "data": self.data.to_dict(),
                "model": self.model.to_dict()}
        return data if self.mitigation is None else {**data, "mitigation": self.mitigation}


def compare(method: str, before: Audit, after: Audit) -> dict[str, Any]:
    """Every fairness metric and the accuracy of the unmitigated model (`before`) and the mitigated one (`after`),
    on the same rows: what the mitigation bought and what it cost."""
    old = {(m.name, m.group): m for m in before.model.metrics}
    rows = []
    for metric in after.model.metrics:
        was = old.get((metric.name, metric.group))
        rows.append({"metric": metric.name, "group": metric.group,
                     "before": None if was is None else was.value, "after": metric.value,
                     "before_interval": None if was is None else was.interval, "after_interval": metric.interval,
                     "before_flagged": None if was is None else was.flagged, "after_flagged": metric.flagged})
    cost = None if before.accuracy is None or after.accuracy is None else before.accuracy - after.accuracy
    return {"method": method, "accuracy_before": before.accuracy, "accuracy_after": after.accuracy,
            "accuracy_cost": cost, "metrics": rows}


def audit_model(model: Model, data: TableLike, sensitive: Sequence[str], *, favourable: str | None = None,
                privileged: str | None = None, population: dict[str, float] | None = None,
                seed: int = 0) -> Audit:
    """Audit `model` on labelled `data` for the `sensitive` column(s) (inputs of the model or not)."""
    from deepwell.inference.predict import predict_frame

    frame, source = as_frame(data)
    if model.target not in frame.columns:
        raise DataError(f"{source}: a bias audit needs the target column {model.target!r} (the true outcomes), "
                        "which is missing.")
    frame = frame[frame[model.target].notna()].reset_index(drop=True)
    groups = group_labels(frame, list(sensitive), source)
    inputs = frame[[c for c in model.input_columns if c in frame.columns]]
    base_dir = Path(data).parent if isinstance(data, (str, Path)) else None
    predictions = predict_frame(model, _read_by(model, frame), source, base_dir, keep_going=False)
    if model.task.is_regression:
        data_audit = audit_data(groups, frame[model.target], inputs, None, population)
        return Audit(len(frame), source, data_audit,
                     audit_regressor(groups, frame[model.target], predictions.predictions))
    classes = [str(c) for c in model.classes_]
    favourable = classes[-1] if favourable is None else str(favourable)
    if favourable not in classes:
        raise DataError(f"favourable outcome {favourable!r} is not one of the model's classes: {', '.join(classes)}.")
    data_audit = audit_data(groups, frame[model.target], inputs, favourable, population)
    model_audit = audit_classifier(groups, frame[model.target], predictions.predictions, favourable, privileged,
                                   seed=seed)
    truth = frame[model.target].astype(str).to_numpy()
    accuracy = float(np.mean(truth == np.asarray([str(p) for p in predictions.predictions])))
    return Audit(len(frame), source, data_audit, model_audit, accuracy)


def fit_model_thresholds(model: Model, validation: pd.DataFrame, fairness: FairnessConfig) -> GroupThresholds:
    """`--mitigate threshold`: group thresholds on the favourable class's probability, fitted on the validation
    rows (never the test rows the audit reports on)."""
    from deepwell.fairness.thresholds import fit_thresholds
    from deepwell.inference.predict import predict_frame

    classes = [str(c) for c in model.classes_]
    favourable = classes[-1] if fairness.favourable is None else str(fairness.favourable)
    if favourable not in classes:
        raise DataError(f"favourable outcome {favourable!r} is not one of the model's classes: {', '.join(classes)}.")
    frame = validation[validation[model.target].notna()]
    outputs = predict_frame(model, _read_by(model, frame), "the validation split", keep_going=False).outputs
    favoured = frame[model.target].astype(str).to_numpy() == favourable
    return fit_thresholds(outputs[:, classes.index(favourable)], favoured,
                          group_labels(frame, fairness.sensitive), fairness.sensitive, favourable,
                          fairness.constraint)


def parse_population(values: Sequence[str]) -> dict[str, float]:
    """`--population sex=Female:0.5` (the column is named for clarity; the group is what counts)."""
    shares: dict[str, float] = {}
    for value in values:
        column, _, rest = value.partition("=")
        group, _, share = rest.rpartition(":")
        try:
            number = float(share)
        except ValueError:
            number = -1.0
        if not column or not group or not 0 < number <= 1:
            raise DataError(f"--population {value!r}: expected COLUMN=GROUP:SHARE with a share in (0, 1], "
                            "e.g. sex=Female:0.5.")
        shares[group] = number
    return shares


def _read_by(model: Model, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a model's predictions read: its inputs and its group thresholds' sensitive columns (an audited
    column that is neither is no "ignored column" to warn about)."""
    wanted = set(model.input_columns) | set(model.thresholds.sensitive if model.thresholds else [])
    return frame[[c for c in frame.columns if c in wanted]]
