"""An exported model folder, loaded and run: preprocessing (`columns.py`), the ONNX graph in onnxruntime, and the
post-processing of `inference/predict.py` (labels from probabilities, values in the target's units, NaN and a
reason for a row whose file could not be read).

The folder (`deepwell export` writes it): `edge.json` (what to run: task, classes, the graph's inputs), the full
package's `preprocessor.json`, `model.onnx`, `encoders/*.onnx` and `assets/` for pretrained text columns, and the
model's `metrics.json` and `reference.json` when it has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepwell.edge.columns import NUMERIC, columns_of, read_json
from deepwell.edge.values import EdgeError, Table, listing, read, warn_extra

FORMAT = "deepwell-edge"
FORMAT_VERSION = 1
INFO, GRAPH, THRESHOLDS = "edge.json", "model.onnx", "fairness_thresholds.json"


def session(path: Path, threads: int | None = None):
    """An onnxruntime session on the CPU; `threads` for its operators (default: onnxruntime's, the cores)."""
    import onnxruntime

    if not path.is_file():
        raise EdgeError(f"{path.parent}: {path.name} is missing; export the model again.")
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class EdgePredictions:
    """One entry per input row, in input order: what the full package's `Predictions` holds."""

    task: str
    classes: list[Any]
    outputs: np.ndarray  # probabilities [rows, classes], or standardised values [rows]
    predictions: list[Any]  # class labels (None where failed) or values in the target's units (NaN where failed)
    errors: list[str | None]

    @property
    def probabilities(self) -> np.ndarray | None:
        return None if self.task == "regression" else self.outputs

    def records(self) -> list[dict[str, Any]]:
        """{"prediction", "probability_<class>"…, "error" where a row failed} per row."""
        out = []
        for i, prediction in enumerate(self.predictions):
            record: dict[str, Any] = {"prediction": _plain(prediction)}
            if self.task != "regression":
                record.update({f"probability_{c}": _plain(p) for c, p in zip(self.classes, self.outputs[i],
                                                                             strict=True)})
            if self.errors[i] is not None:
                record["error"] = self.errors[i]
            out.append(record)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if value != value else float(value)
    return value.item() if isinstance(value, np.generic) else value


class EdgeModel:
    """`load(folder)` gives one; `predict(data)` takes a CSV/TSV/JSONL path, one record or a list of records."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        self.folder = folder
        self.info = read_json(folder / INFO)
        if self.info.get("format") != FORMAT or int(self.info.get("format_version", 0)) > FORMAT_VERSION:
            raise EdgeError(f"{folder}: {INFO} is not a deepwell edge model of a version this runtime reads "
                            f"(format {self.info.get('format')!r}, version {self.info.get('format_version')!r}).")
        preprocessor = read_json(folder / "preprocessor.json")
        self.target = preprocessor["target"]
        self.columns = columns_of(preprocessor, folder, self.info.get("pretrained_text", {}),
                                  self.info.get("file_encoders", {}))
        self.session = session(folder / GRAPH, threads)
        self.thresholds = _thresholds(folder)
        self.inputs = [i["name"] for i in self.info["inputs"]]
        self.batch = int(self.info.get("batch", 4096))

    @property
    def task(self) -> str:
        return self.target["task"]

    @property
    def classes(self) -> list[Any]:
        return list(self.target["classes"])

    @property
    def input_columns(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.columns))

    def __repr__(self) -> str:
        return f"EdgeModel({self.folder}, {self.task}, inputs={self.input_columns})"

    def predict(self, data: Any) -> EdgePredictions:
        table = data if isinstance(data, Table) else read(data)
        inputs, errors = self.encode(table)
        outputs = self.run(inputs).astype(np.float64)
        failed = sorted(errors)
        if failed:
            outputs[failed] = np.nan
        reasons = [errors.get(i) for i in range(table.rows)]
        predictions = self._post(outputs, reasons)
        if self.thresholds is not None and self.task != "regression":
            labels = self.thresholds.labels(table.columns, self.classes, outputs, reasons)
            if labels is not None:  # the sensitive column(s) are in the table: the group rules decide
                predictions.predictions = labels
        return predictions

    def encode(self, table: Table) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        """The graph's inputs for every row, and the reasons of rows whose files could not be read."""
        missing = [c for c in self.input_columns if c not in table.columns]
        if missing:
            raise EdgeError(f"{table.source} lacks input column(s) the model needs: {listing(missing)}. "
                            f"The model was trained on: {listing(self.input_columns)}.")
        grouping = self.thresholds.sensitive if self.thresholds is not None else []
        warn_extra(table, self.input_columns + grouping, self.target["name"])
        errors: dict[int, str] = {}
        numeric = [c.transform(table, errors) for c in self.columns if c.numeric]
        inputs = {NUMERIC: np.concatenate(numeric, axis=1)} if numeric else {}
        for column in self.columns:
            if not column.numeric:
                inputs[column.key] = column.transform(table, errors)
        return inputs, errors

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The graph on every row, `batch` rows at a time: probabilities or standardised values."""
        rows = len(next(iter(inputs.values())))
        parts = [self.session.run(None, {k: inputs[k][s:s + self.batch] for k in self.inputs})[0]
                 for s in range(0, rows, self.batch)]
        width = 1 if self.task == "regression" else len(self.classes)
        out = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float32)
        return out[:, 0] if self.task == "regression" else out

    def _post(self, outputs: np.ndarray, errors: list[str | None]) -> EdgePredictions:
        if self.task == "regression":
            values = outputs * self.target["std"] + self.target["mean"]
            return EdgePredictions(self.task, [], outputs, values.tolist(), errors)
        classes = self.classes
        labels = [None if error is not None else classes[int(i)]
                  for i, error in zip(np.nan_to_num(outputs).argmax(axis=1), errors, strict=True)]
        return EdgePredictions(self.task, classes, outputs, labels, errors)

    def predict_proba(self, data: Any) -> np.ndarray:
        if self.task == "regression":
            raise EdgeError("predict_proba is for classifiers; this model is a regressor (use predict).")
        return self.predict(data).outputs


def _thresholds(folder: Path):
    """The group thresholds of a model trained with `--mitigate threshold` (fairness_thresholds.json), or None."""
    path = folder / THRESHOLDS
    if not path.is_file():
        return None
    from deepwell.edge.thresholds import Thresholds

    try:
        return Thresholds.from_dict(read_json(path))
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgeError(f"{path}: damaged ({type(exc).__name__}: {exc}); export the model again.") from None


def load(folder: str | Path, threads: int | None = None) -> EdgeModel:
    """An exported model folder; `threads`: onnxruntime's operator threads (default: the machine's cores)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgeError(f"{folder}: no such exported model folder.")
    return EdgeModel(folder, threads)


def is_export(folder: str | Path) -> bool:
    """Whether `folder` is one `deepwell export` wrote."""
    return (Path(folder) / INFO).is_file()
