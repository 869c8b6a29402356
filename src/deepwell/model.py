"""Model: a trained network with its preprocessing, following scikit-learn's predict/predict_proba contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwell.data.folders import files_table
from deepwell.data.io import TableLike, as_frame
from deepwell.errors import DataError, warn
from deepwell.evaluation.diagnosis import Diagnosis
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
        self.diagnosis: Diagnosis | None = None  # the fit diagnosis, for a model from a run folder
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
    def _read(self, data: TableLike) -> tuple[pd.DataFrame, str, Path | None]:
        """(table, name for messages, folder that relative file paths are relative to)."""
        if isinstance(data, (str, Path)) and Path(data).is_dir():
            files = [f for f in self.preprocessor.features if getattr(f, "reads_files", False)]
            if len(files) != 1 or len(self.preprocessor.features) != 1:
                raise DataError(f"{data}: a folder can be predicted only by a model whose single input is an "
                                f"image or audio column; this model needs {', '.join(self.input_columns)}.")
            return files_table(data, files[0].name), str(data), None
        frame, source = as_frame(data)
        return frame, source, _base_dir(data)

    def network_outputs(self, data: TableLike, errors: dict[Any, str] | None = None) -> np.ndarray:
        """Raw outputs: class probabilities, or standardised values for regression.

        With `errors` given, rows whose files cannot be read get NaN outputs and a reason in `errors`
        (keyed by row position); without it, such a row raises DataError.
        """
        frame, source, base_dir = self._read(data)
        return self._outputs(frame, source, base_dir, errors)

    def _outputs(self, frame: pd.DataFrame, source: str, base_dir: Path | None,
                 errors: dict[Any, str] | None) -> np.ndarray:
        self.preprocessor.check_columns(frame, source)
        by_index: dict[Any, str] = {}
        inputs = self.preprocessor.transform(frame, strict=True, errors=by_index if errors is not None else None,
                                             base_dir=base_dir)
        outputs = predict_outputs(self.network, inputs, self.task, self.device).astype(np.float64)
        if by_index:
            positions = frame.index.get_indexer(list(by_index))
            outputs[positions] = np.nan
            errors.update(dict(zip(positions.tolist(), by_index.values(), strict=True)))
        return outputs

    def predict(self, data: TableLike) -> np.ndarray:
        """Class labels (classification) or values in the target's units (regression).

        A row whose file cannot be read gets None (NaN for regression), with a warning naming it."""
        return self._predictions(self._checked_outputs(data))

    def predict_proba(self, data: TableLike) -> np.ndarray:
        """[rows, classes] probabilities, columns in the order of `classes_` (NaN for unreadable files)."""
        if self.task == "regression":
            raise DataError("predict_proba is for classification; this model does regression: use predict.")
        return self._checked_outputs(data)

    def _checked_outputs(self, data: TableLike) -> np.ndarray:
        errors: dict[Any, str] = {}
        outputs = self.network_outputs(data, errors)
        if errors:
            shown = "; ".join(f"row {row}: {reason}" for row, reason in list(errors.items())[:5])
            warn(f"{len(errors)} row(s) could not be predicted: {shown}.")
        return outputs

    def _predictions(self, outputs: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return self.preprocessor.target.unscale(outputs)
        failed = np.isnan(outputs).any(axis=1)
        labels = self.preprocessor.target.decode(np.nan_to_num(outputs).argmax(axis=1))
        labels[failed] = None
        return labels

    def predict_table(self, data: TableLike) -> pd.DataFrame:
        """The input table with a `prediction` column, `probability_<class>` columns for classification,
        and an `error` column when some rows' files could not be read."""
        frame, source, base_dir = self._read(data)
        errors: dict[Any, str] = {}
        table = self.table_with_predictions(frame, self._outputs(frame, source, base_dir, errors))
        if errors:
            table["error"] = [errors.get(i) for i in range(len(table))]
        return table

    def table_with_predictions(self, frame: pd.DataFrame, outputs: np.ndarray) -> pd.DataFrame:
        out = frame.copy()
        out["prediction"] = self._predictions(outputs)
        if self.task != "regression":
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
        return evaluate_outputs(self, self._outputs(frame, source, _base_dir(data), None),
                                self.preprocessor.transform_target(frame).numpy())

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
        model = cls(preprocessor, network, meta, run_dir=run_dir, metrics=metrics)
        if run_dir is not None and (run_dir / "diagnosis.json").is_file():
            model.diagnosis = Diagnosis.from_dict(json.loads((run_dir / "diagnosis.json").read_text(encoding="utf-8")))
        return model


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


def _base_dir(data: TableLike) -> Path | None:
    return Path(data).parent if isinstance(data, (str, Path)) else None


def load(path: str | Path) -> Model:
    """Load a model folder, a run folder, or a registered model (`models:/NAME@production`,
    `models:/NAME/3`, `runs:/RUN_ID/model`); never executes code from it."""
    from deepwell.tracking.registry import URI_SCHEMES, load_registered

    if str(path).startswith(URI_SCHEMES):
        return load_registered(str(path))
    return Model.load(path)
