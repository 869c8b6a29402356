"""An exported folder (`deepwell export`) as the server's model: the same app, routes, limits, request log and
drift gauges as a trained model's (`app.py`), with the edge runtime predicting, so serving an export never
imports torch. What needs the network itself — explanations — is refused with a 501 that says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwell.errors import DataError, ModelFileError, listing, warn
from deepwell.task import Task


class _Columns:
    """What the server and the drift monitor read of a preprocessor: the features (name, type, levels, whether
    they read files) and the column check."""

    def __init__(self, runtime) -> None:
        self.features = runtime.columns
        self.input_columns = runtime.input_columns
        self.target = runtime.target["name"]

    def check_columns(self, frame: pd.DataFrame, source: str = "data") -> None:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise DataError(f"{source} lacks input column(s) the model needs: {listing(missing)}. "
                            f"The model was trained on: {listing(self.input_columns)}.")
        extra = [c for c in frame.columns if c not in self.input_columns and c != self.target]
        if extra:
            shown = ", ".join(map(repr, extra[:10])) + (" …" if len(extra) > 10 else "")
            warn(f"{source}: ignoring {len(extra)} column(s) the model does not use: {shown}.")


class ExportedModel:
    """The part of `Model` the server uses, answered by `deepwell.edge`."""

    explains = False

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        from deepwell.edge.model import load
        from deepwell.edge.values import EdgeError

        self.folder = Path(folder)
        try:
            self.runtime = load(self.folder, threads)
        except EdgeError as exc:
            raise ModelFileError(str(exc)) from None
        self.task = Task(self.runtime.task)
        self.target = self.runtime.target["name"]
        self.classes_ = self.runtime.classes
        self.input_columns = self.runtime.input_columns
        self.preprocessor = _Columns(self.runtime)
        self.thresholds = self.runtime.thresholds  # its `sensitive` columns: optional inputs of the server
        self.reference = self._reference()

    def _reference(self):
        path = self.folder / "reference.json"
        if not path.is_file():
            return None
        from deepwell.monitoring.profile import ReferenceProfile

        return ReferenceProfile.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def predict_frame(self, frame: pd.DataFrame, source: str = "data"):
        """`inference.predict.predict_frame` for the export: its Predictions, its errors as DataErrors."""
        from deepwell.edge.values import EdgeError, Table
        from deepwell.inference.predict import Predictions

        table = Table({str(c): [None if _missing(v) else v for v in frame[c].tolist()] for c in frame.columns},
                      len(frame), source)
        try:
            got = self.runtime.predict(table)
        except EdgeError as exc:
            raise DataError(str(exc)) from None
        predictions = np.array(got.predictions, dtype=float if self.task.is_regression else object)
        return Predictions(self.task, list(got.classes), got.outputs, predictions, list(got.errors))


def _missing(value: Any) -> bool:
    from deepwell.edge.values import is_missing

    return is_missing(value)


def served_model(path: str | Path, threads: int | None = None):
    """The model `deepwell serve PATH` serves: an export's, or a trained model (`deepwell.load`)."""
    from deepwell.edge.model import is_export

    if is_export(path):
        return ExportedModel(path, threads)
    import deepwell
    from deepwell.runtime import use_threads

    use_threads(threads)
    return deepwell.load(path)
