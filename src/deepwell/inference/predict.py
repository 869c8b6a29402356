"""The one prediction path: raw records, a DataFrame, a table file or a folder of files → preprocessing →
network → probabilities, labels or values, with a per-row error field.

`Model.predict*`, `deepwell predict`, the MLflow pyfunc model and the inference server all call `predict`.
A row whose image or audio cannot be read gets NaN outputs and its reason in `Predictions.errors`; nothing is
reported through process-wide warnings.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwell.data.folders import files_table
from deepwell.data.io import TableLike, as_frame
from deepwell.errors import DataError, WrongValues, listing
from deepwell.task import Task

if TYPE_CHECKING:
    import torch

    from deepwell.model import Model

Inputs = TableLike
"""A DataFrame, a table file or folder path, one record ({column: value}) or a list of records."""


@dataclass
class Predictions:
    """One entry per input row, in input order."""

    task: Task
    classes: list[Any]
    outputs: np.ndarray  # network outputs: probabilities [rows, classes], or standardised values [rows]
    predictions: np.ndarray  # class labels (None where failed) or values in the target's units (NaN where failed)
    errors: list[str | None]  # why a row could not be predicted; None where it was

    @property
    def probabilities(self) -> np.ndarray | None:
        return None if self.task.is_regression else self.outputs

    @property
    def failed_rows(self) -> list[int]:
        return [i for i, error in enumerate(self.errors) if error is not None]

    def raise_for_errors(self) -> None:
        """DataError naming the rows that could not be predicted (a few, and how many more)."""
        failed = self.failed_rows
        if failed:
            shown = "; ".join(f"row {i}: {self.errors[i]}" for i in failed[:5])
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            raise DataError(f"{len(failed)} row(s) could not be predicted: {shown}{more}. predict_table keeps "
                            "going and reports each row's error in an `error` column.")

    def table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with `prediction`, `probability_<class>` (classification) and, when some row failed, `error`."""
        out = frame.copy()
        out["prediction"] = self.predictions
        for i, label in enumerate(self.classes):
            out[f"probability_{label}"] = self.outputs[:, i]
        if self.failed_rows:
            out["error"] = self.errors
        return out


def from_outputs(model: Model, outputs: np.ndarray, errors: list[str | None] | None = None) -> Predictions:
    """Post-processing: labels from probabilities, values in the target's units."""
    target = model.preprocessor.target
    errors = errors or [None] * len(outputs)
    if target.task.is_regression:
        return Predictions(target.task, [], outputs, target.unscale(outputs), errors)
    failed = np.isnan(outputs).any(axis=1) if len(outputs) else np.zeros(0, dtype=bool)
    labels = target.decode(np.nan_to_num(outputs).argmax(axis=1)) if len(outputs) else np.array([], dtype=object)
    labels[failed] = None
    return Predictions(target.task, list(target.classes), outputs, labels, errors)


def predict(model: Model, data: Inputs, *, file_contents: bool = False) -> tuple[pd.DataFrame, Predictions]:
    """(the input table, its predictions). `file_contents`: image/audio columns must hold the files' bytes (or
    base64 text), never paths — what a server accepts from its clients."""
    frame, source, base_dir = read_inputs(model, data)
    if file_contents:
        frame, base_dir = with_file_contents(model, frame), None
    return frame, predict_frame(model, frame, source, base_dir)


def predict_frame(model: Model, frame: pd.DataFrame, source: str = "data", base_dir: Path | None = None,
                  keep_going: bool = True) -> Predictions:
    """Predictions for a table already read; `keep_going=False` raises on the first unreadable file instead."""
    from deepwell.inference.network import network_outputs  # torch: imported by the prediction itself

    by_index: dict[Any, str] = {}
    inputs = encode_frame(model, frame, source, base_dir, by_index if keep_going else None)
    outputs = network_outputs(model.network, inputs, model.task, model.device).astype(np.float64)
    errors: list[str | None] = [None] * len(frame)
    if by_index:
        positions = frame.index.get_indexer(list(by_index))
        outputs[positions] = np.nan
        for position, reason in zip(positions.tolist(), by_index.values(), strict=True):
            errors[position] = reason
    return with_thresholds(model, frame, from_outputs(model, outputs, errors))


def encode_frame(model: Model, frame: pd.DataFrame, source: str = "data", base_dir: Path | None = None,
                 errors: dict[Any, str] | None = None) -> dict[str, torch.Tensor]:
    """The network's inputs for a table: its columns checked, wrong values named by file and line, files decoded
    (a row whose file cannot be read gets zeros and its reason in `errors`, or raises when `errors` is None)."""
    model.preprocessor.check_columns(frame, source)
    try:
        return model.preprocessor.transform(frame, strict=True, errors=errors, base_dir=base_dir)
    except WrongValues as exc:  # name the file and the line a person would look at
        raise exc.located(source, row_namer(source)) from None


def with_thresholds(model: Model, frame: pd.DataFrame, predictions: Predictions) -> Predictions:
    """The labels of a model trained with `--mitigate threshold` follow its group thresholds where the table has the
    sensitive column(s) (fairness/thresholds.py); the probabilities stay the network's. Otherwise unchanged."""
    rules = model.thresholds
    if rules is None or predictions.task.is_regression or any(c not in frame.columns for c in rules.sensitive):
        return predictions
    from deepwell.fairness.groups import group_labels

    classes = [str(c) for c in predictions.classes]
    favourable = classes.index(rules.favourable)
    chosen = rules.favourable_chosen(np.nan_to_num(predictions.outputs[:, favourable]),
                                     group_labels(frame, rules.sensitive))
    labels = np.where(chosen, predictions.classes[favourable], predictions.classes[1 - favourable]).astype(object)
    labels[[e is not None for e in predictions.errors]] = None
    return Predictions(predictions.task, predictions.classes, predictions.outputs, labels, predictions.errors)


def row_namer(source: str) -> Callable[[Any], str]:
    """How to name row `i` of a table read from `source`: its line in a CSV/TSV (after the header) or JSONL
    file, else its index."""
    suffix = Path(source).suffix.lower()
    if suffix in (".csv", ".tsv", ".tab", ".txt"):
        return lambda row: f"line {row + 2}" if isinstance(row, (int, np.integer)) else f"row {row}"
    if suffix in (".jsonl", ".ndjson"):
        return lambda row: f"line {row + 1}" if isinstance(row, (int, np.integer)) else f"row {row}"
    return lambda row: f"row {row}"


def read_inputs(model: Model, data: Inputs) -> tuple[pd.DataFrame, str, Path | None]:
    """(table, name for messages, folder that relative file paths are relative to)."""
    if isinstance(data, (str, Path)) and Path(data).is_dir():
        files = [f for f in model.preprocessor.features if getattr(f, "reads_files", False)]
        if len(files) != 1 or len(model.preprocessor.features) != 1:
            raise DataError(f"{data}: a folder can be predicted only by a model whose single input is an image or "
                            f"audio column; this model needs {listing(model.input_columns)}.")
        return files_table(data, files[0].name), str(data), None
    frame, source = as_frame(data)
    return frame, source, Path(data).parent if isinstance(data, (str, Path)) else None


def with_file_contents(model: Model, frame: pd.DataFrame) -> pd.DataFrame:
    """Image/audio columns as bytes: raw bytes or base64 text; a path (or anything else) is refused. A new
    table when there are such columns; `frame` itself otherwise."""
    files = [f.name for f in model.preprocessor.features if getattr(f, "reads_files", False) and f.name in frame]
    if not files:
        return frame
    return frame.assign(**{name: [file_bytes(value, name, row) for row, value in enumerate(frame[name])]
                           for name in files})


def file_bytes(value: Any, column: str, row: int) -> bytes:
    """A file column's value as bytes: raw bytes, or base64 text (a `data:…;base64,` prefix is allowed)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise DataError(f"Column {column!r}, row {row}: expected the file's content as base64 text or bytes, got "
                    f"{str(value)[:60]!r}; the served model does not read file paths.")
