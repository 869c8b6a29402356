"""Model: a trained network with its preprocessing, following scikit-learn's predict/predict_proba contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwell.data.io import TableLike, as_frame
from deepwell.errors import DataError
from deepwell.evaluation.metrics import baseline_metrics, classification_metrics, regression_metrics
from deepwell.features.pipeline import Preprocessor
from deepwell.models.network import TabularNetwork
from deepwell.runs.model_files import load_model_folder, save_model_folder
from deepwell.training.trainer import predict_outputs, resolve_device


class Model:
    """Returned by `deepwell.train` and `deepwell.load`.

    `metrics` and `run_dir` are set when the model comes from (or was loaded from) a run folder.
    """

    def __init__(self, preprocessor: Preprocessor, network: TabularNetwork, meta: dict[str, Any],
                 run_dir: Path | None = None, metrics: dict[str, Any] | None = None) -> None:
        self.preprocessor = preprocessor
        self.network = network.eval()
        self.meta = meta
        self.run_dir = run_dir
        self.metrics = metrics or {}
        self.device = resolve_device("auto")
        self.network.to(self.device)

    # --- what the model is -------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.preprocessor.target.task

    @property
    def target(self) -> str:
        return self.preprocessor.target.name

    @property
    def classes_(self) -> list[Any]:
        return list(self.preprocessor.target.classes)

    @property
    def input_columns(self) -> list[str]:
        return self.preprocessor.input_columns

    @property
    def parameter_count(self) -> int:
        return self.network.parameter_count()

    def __repr__(self) -> str:
        return (f"Model(task={self.task!r}, target={self.target!r}, inputs={len(self.input_columns)}, "
                f"parameters={self.parameter_count:,})")

    # --- prediction -------------------------------------------------------------------------
    def network_outputs(self, data: TableLike) -> np.ndarray:
        """Raw outputs: class probabilities, or standardised values for regression."""
        frame, source = as_frame(data)
        self.preprocessor.check_columns(frame, source)
        inputs = self.preprocessor.transform(frame, strict=True)
        return predict_outputs(self.network, inputs, self.task, self.device)

    def predict(self, data: TableLike) -> np.ndarray:
        """Class labels (classification) or values in the target's units (regression)."""
        outputs = self.network_outputs(data)
        if self.task == "regression":
            return self.preprocessor.target.unscale(outputs)
        return self.preprocessor.target.decode(outputs.argmax(axis=1))

    def predict_proba(self, data: TableLike) -> np.ndarray:
        """[rows, classes] probabilities, columns in the order of `classes_`."""
        if self.task == "regression":
            raise DataError("predict_proba is for classification; this model does regression: use predict.")
        return self.network_outputs(data)

    def predict_table(self, data: TableLike) -> pd.DataFrame:
        """The input table with a `prediction` column and, for classification, `probability_<class>` columns."""
        frame, _ = as_frame(data)
        return self.table_with_predictions(frame, self.network_outputs(frame))

    def table_with_predictions(self, frame: pd.DataFrame, outputs: np.ndarray) -> pd.DataFrame:
        out = frame.copy()
        if self.task == "regression":
            out["prediction"] = self.preprocessor.target.unscale(outputs)
            return out
        out["prediction"] = self.preprocessor.target.decode(outputs.argmax(axis=1))
        for i, label in enumerate(self.classes_):
            out[f"probability_{label}"] = outputs[:, i]
        return out

    # --- evaluation -------------------------------------------------------------------------
    def evaluate(self, data: TableLike) -> dict[str, Any]:
        """Metrics on labelled data beside the trivial baseline fitted on the training split."""
        frame, source = as_frame(data)
        if self.target not in frame.columns:
            raise DataError(f"{source}: evaluation needs the target column {self.target!r}, which is missing.")
        frame = frame[frame[self.target].notna()].reset_index(drop=True)
        if frame.empty:
            raise DataError(f"{source}: no rows with a value in the target column {self.target!r}.")
        return evaluate_outputs(self, self.network_outputs(frame), self.preprocessor.transform_target(frame).numpy())

    # --- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        save_model_folder(path, self.preprocessor, self.network, self.meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Model:
        preprocessor, network, meta = load_model_folder(path)
        path = Path(path)
        run_dir = path if (path / "model").is_dir() else None
        metrics = None
        if run_dir is not None and (run_dir / "metrics.json").is_file():

            metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        return cls(preprocessor, network, meta, run_dir=run_dir, metrics=metrics)


def evaluate_outputs(model: Model, outputs: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """Model and baseline metrics from network outputs and encoded targets."""
    encoder = model.preprocessor.target
    if model.task == "regression":
        truth = encoder.unscale(target)
        scores = regression_metrics(truth, encoder.unscale(outputs))
        baseline = baseline_metrics("regression", truth, model.meta["baseline"], [])
    else:
        scores = classification_metrics(target, outputs, encoder.classes)
        baseline = baseline_metrics(model.task, target, model.meta["baseline"], encoder.classes)
    return {"rows": int(len(target)), "model": scores, "baseline": baseline}


def load(path: str | Path) -> Model:
    """Load a model folder or a run folder; never executes code from it."""
    return Model.load(path)
