"""Model: a trained network with its preprocessing, following scikit-learn's predict/predict_proba contract."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwell.data.io import TableLike, as_frame
from deepwell.errors import DataError
from deepwell.evaluation.diagnosis import Diagnosis
from deepwell.evaluation.results import RunMetrics, SplitScores
from deepwell.evaluation.scoring import split_scores
from deepwell.fairness.run import Audit
from deepwell.fairness.thresholds import GroupThresholds
from deepwell.features.pipeline import Preprocessor
from deepwell.inference.network import resolve_device
from deepwell.inference.predict import Inputs, predict, predict_frame
from deepwell.models.network import EnsembleNetwork, TabularNetwork
from deepwell.monitoring.drift import DriftReport
from deepwell.monitoring.profile import ReferenceProfile
from deepwell.runs.layout import RunFolder
from deepwell.runs.model_files import load_model_folder, save_model_folder
from deepwell.runtime import use_threads
from deepwell.task import Task

if TYPE_CHECKING:
    from deepwell.explain.run import Explanation
    from deepwell.export.folder import ExportReport


class Model:
    """Returned by `deepwell.train` and `deepwell.load`.

    `metrics`, `diagnosis`, `reference` (the training data's profile) and `run_dir` are set when the model comes
    from (or was loaded from) a run folder; `thresholds` when it was trained with `--mitigate threshold` (its
    labels then follow group-specific thresholds wherever the sensitive column(s) are in the data).
    """

    def __init__(self, preprocessor: Preprocessor, network: TabularNetwork | EnsembleNetwork, meta: dict[str, Any],
                 run_dir: Path | None = None, metrics: RunMetrics | None = None,
                 diagnosis: Diagnosis | None = None, reference: ReferenceProfile | None = None,
                 thresholds: GroupThresholds | None = None) -> None:
        self.preprocessor = preprocessor
        self.network = network.eval()
        self.meta = meta
        self.run_dir = run_dir
        self.metrics = metrics
        self.diagnosis = diagnosis
        self.reference = reference  # the training data's profile, for drift monitoring (None for older models)
        self.thresholds = thresholds  # group-specific decision thresholds (bias mitigation after training)
        self.device = resolve_device("auto")
        self.network.to(self.device)
        use_threads()

    # --- what the model is -------------------------------------------------------------------
    @property
    def task(self) -> Task:
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
        return (f"Model(task={self.task.value!r}, target={self.target!r}, inputs={len(self.input_columns)}, "
                f"parameters={self.parameter_count:,})")

    # --- prediction -------------------------------------------------------------------------
    def predict(self, data: Inputs) -> np.ndarray:
        """Class labels (classification) or values in the target's units (regression). A row whose file cannot
        be read raises DataError naming it; `predict_table` reports such rows instead."""
        predictions = predict(self, data)[1]
        predictions.raise_for_errors()
        return predictions.predictions

    def predict_proba(self, data: Inputs) -> np.ndarray:
        """[rows, classes] probabilities, columns in the order of `classes_`."""
        if self.task.is_regression:
            raise DataError("predict_proba is for classification; this model does regression: use predict.")
        predictions = predict(self, data)[1]
        predictions.raise_for_errors()
        return predictions.outputs

    def predict_table(self, data: Inputs) -> pd.DataFrame:
        """The input table with a `prediction` column, `probability_<class>` columns for classification,
        and an `error` column when some rows' files could not be read."""
        frame, predictions = predict(self, data)
        return predictions.table(frame)

    # --- evaluation -------------------------------------------------------------------------
    def evaluate(self, data: TableLike) -> SplitScores:
        """Metrics on labelled data beside the trivial baseline fitted on the training split."""
        frame, source = as_frame(data)
        if self.target not in frame.columns:
            raise DataError(f"{source}: evaluation needs the target column {self.target!r}, which is missing.")
        frame = frame[frame[self.target].notna()]  # the index still names each row's place in the file
        if frame.empty:
            raise DataError(f"{source}: no rows with a value in the target column {self.target!r}.")
        base_dir = Path(data).parent if isinstance(data, (str, Path)) else None
        predictions = predict_frame(self, frame, source, base_dir, keep_going=False)
        return split_scores(self.preprocessor.target, self.meta["baseline"], predictions.outputs,
                            self.preprocessor.transform_target(frame).numpy())

    def drift(self, data: TableLike) -> DriftReport:
        """How far `data` (new rows, with or without the target) has moved from the training data, per input
        measure and for the predictions (see `deepwell.monitoring.drift`)."""
        from deepwell.monitoring.monitor import drift_of_table

        return drift_of_table(self, data)

    def audit(self, data: TableLike, sensitive: str | list[str], *, favourable: str | None = None,
              privileged: str | None = None, population: dict[str, float] | None = None) -> Audit:
        """A bias audit on labelled `data` for the sensitive column(s): the data per group, the model's rates per
        group and its fairness metrics with intervals and flags (see `deepwell.fairness.audit`)."""
        from deepwell.fairness.run import audit_model

        columns = [sensitive] if isinstance(sensitive, str) else list(sensitive)
        return audit_model(self, data, columns, favourable=favourable, privileged=privileged,
                           population=population)

    def explain(self, data: TableLike, rows: Sequence[int] | None = None, *, importance: bool | None = None,
                steps: int | None = None) -> Explanation:
        """Why the model predicts what it does for `rows` of `data` (default: every row, at most 1,000): each input
        column's Integrated Gradients attribution to the output, the top reasons in words, saliency maps for image
        and audio columns and, when `data` has the target, permutation importance per column (see
        `deepwell.explain`). `.frame()` is the table, `.save(folder)` writes the files."""
        from deepwell.explain.attributions import STEPS
        from deepwell.explain.run import explain_model

        return explain_model(self, data, rows, steps=steps or STEPS, importance=importance)

    # --- persistence ------------------------------------------------------------------------
    def export(self, path: str | Path, *, quantize: str = "none", data: pd.DataFrame | str | Path | None = None,
               calibration: str | Path | None = None, min_agreement: float = 0.99) -> ExportReport:
        """A folder the edge runtime (`deepwell.edge`) runs with numpy and onnxruntime alone: the network as ONNX
        (`quantize="int8"`: dynamic, or static for convolutions, calibrated on `calibration` or the run's data),
        its preprocessing as JSON, checked against this model on held-out rows (`data`, else the run's test
        predictions) before it is written."""
        from deepwell.export.folder import export

        return export(self, path, data=data, calibration=calibration, quantize=quantize, min_agreement=min_agreement)

    def save(self, path: str | Path) -> Path:
        """A model folder (safetensors + JSON). Saving a run's model keeps its metrics and diagnosis with it."""
        path = Path(path)
        save_model_folder(path, self.preprocessor, self.network, self.meta, metrics=self.metrics,
                          diagnosis=self.diagnosis, reference=self.reference, thresholds=self.thresholds)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Model:
        """A model folder or a run folder; never executes code from it."""
        saved = load_model_folder(path)
        path = Path(path)
        run_dir = path if RunFolder(path).model.is_dir() else None
        return cls(saved.preprocessor, saved.network, saved.meta, run_dir=run_dir, metrics=saved.metrics,
                   diagnosis=saved.diagnosis, reference=saved.reference, thresholds=saved.thresholds)
