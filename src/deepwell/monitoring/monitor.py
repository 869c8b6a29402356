"""Drift of a model's inputs and predictions: on a new table (`drift_of_table`) or on the rows a server logged
(`drift_of_log`), against the reference profile in the model folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from deepwell.data.io import TableLike, as_frame
from deepwell.errors import DataError, ModelFileError
from deepwell.monitoring.drift import DriftReport, compare
from deepwell.monitoring.measures import measure_predictions
from deepwell.monitoring.profile import FILE_NAME, ReferenceProfile

if TYPE_CHECKING:
    from deepwell.model import Model


def reference_of(model: Model) -> ReferenceProfile:
    """The model's reference profile, or an error saying why drift cannot be measured."""
    if model.reference is None:
        raise ModelFileError(f"This model folder has no {FILE_NAME} (it was saved by a deepwell older than drift "
                             "monitoring, or built outside a training run), so there is nothing to compare new "
                             "data with. Train it again with `deepwell train` to keep a reference profile.")
    return model.reference


def drift_of_table(model: Model, data: TableLike) -> DriftReport:
    """Each input column's measures in `data` (a file or DataFrame, the target column is ignored) and the
    model's predictions on it, against training."""
    from deepwell.inference.predict import predict_frame

    reference = reference_of(model)
    frame, source = as_frame(data)
    if frame.empty:
        raise DataError(f"{source}: no rows to compare with training.")
    frame = frame.reset_index(drop=True)
    base_dir = Path(data).parent if isinstance(data, (str, Path)) else None
    measured = reference.measurer(model.preprocessor).inputs(frame, base_dir)
    present = [c for c in model.input_columns if c in frame.columns]
    if present == model.input_columns:
        predictions = predict_frame(model, frame, source, base_dir, keep_going=True)
        predicted = measure_predictions(model.task, predictions.predictions, predictions.probabilities)
        measured = pd.concat([measured, predicted], axis=1)
    return compare(reference, measured, source)


def drift_of_log(model: Model, log: Path, last: int | None = None) -> DriftReport:
    """The latest `last` rows (all by default) of a server's request log against training: the logged inputs
    are measured as a table would be (a file was logged as its measures), the logged outputs give the
    prediction measures."""
    from deepwell.serving.request_log import read_log

    reference = reference_of(model)
    inputs, outputs = read_log(log, last)
    if inputs.empty:
        raise DataError(f"{log}: the request log holds no predictions yet.")
    return compare(reference, measure_logged(model, reference, inputs, outputs), f"the request log {log}")


def measure_logged(model: Model, reference: ReferenceProfile, inputs: pd.DataFrame,
                   outputs: list[dict]) -> pd.DataFrame:
    """The measures of logged rows: inputs as the server received them, outputs as it answered."""
    measured = reference.measurer(model.preprocessor).inputs(inputs)
    probabilities = None
    if not model.task.is_regression:
        classes = [str(c) for c in model.classes_]
        probabilities = np.array([[o["probabilities"].get(c, np.nan) for c in classes] for o in outputs])
    predicted = measure_predictions(model.task, [o["prediction"] for o in outputs], probabilities)
    return pd.concat([measured, predicted], axis=1)
