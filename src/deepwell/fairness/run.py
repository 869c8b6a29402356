"""A model's bias audit on labelled data: the data audit and the model audit for the sensitive column(s), as
`deepwell audit` and `Model.audit` give them (fairness.json is `Audit.to_dict()`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepwell.data.io import TableLike, as_frame
from deepwell.errors import DataError
from deepwell.fairness.audit import DataAudit, ModelAudit, audit_classifier, audit_data, audit_regressor
from deepwell.fairness.groups import group_labels

if TYPE_CHECKING:
    from deepwell.model import Model


@dataclass
class Audit:
    rows: int
    source: str
    data: DataAudit
    model: ModelAudit

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "source": self.source, "data": self.data.to_dict(), "model": self.model.to_dict()}


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
    predictions = predict_frame(model, frame, source, base_dir, keep_going=False)
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
    return Audit(len(frame), source, data_audit, model_audit)


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
