"""What a served model takes and gives, from its preprocessor: one tensor per input column, the outputs by task,
and how a request's tensors become the table the prediction path reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deepwell.serving.protocol import NUMERIC, ProtocolError, Tensor

if TYPE_CHECKING:
    from deepwell.model import Model

NUMBER_TYPES = ("number",)  # columns whose natural tensor is FP64; every other column's is BYTES (numbers pass too)
FILE_TYPES = ("image", "audio")  # columns whose values are the files' contents (BYTES)


@dataclass(frozen=True)
class InputColumn:
    name: str
    type: str  # the column type deepwell trained it as
    datatype: str  # the V2 datatype it is described with (FP64 or BYTES)
    categories: list[Any] | None = None  # a category's known values, a binary column's two

    def metadata(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {"column_type": self.type}
        if self.type not in (*FILE_TYPES, "text"):
            parameters["missing"] = "NaN" if self.datatype == "FP64" else "an empty string"
        if self.categories is not None:
            parameters["categories"] = [str(c) for c in self.categories]
        if self.type in FILE_TYPES:
            parameters["content"] = f"the {self.type} file's bytes (base64 text in JSON)"
        return {"name": self.name, "datatype": self.datatype, "shape": [-1], "parameters": parameters}


def input_columns(model: Model) -> list[InputColumn]:
    columns = []
    for name in model.input_columns:
        feature = next(f for f in model.preprocessor.features if f.name == name)
        datatype = "FP64" if feature.type in NUMBER_TYPES else "BYTES"
        categories = {"category": getattr(feature, "vocabulary", None), "binary": getattr(feature, "levels", None)
                      }.get(feature.type)
        columns.append(InputColumn(name, feature.type, datatype, categories))
    return columns + [InputColumn(name, "group", "BYTES", None) for name in group_columns(model)]


def group_columns(model: Model) -> list[str]:
    """Sensitive columns a model's group thresholds read that are not among its inputs (`--mitigate threshold
    --exclude-sensitive`): optional inputs of the server, which decide the labels when given."""
    rules = model.thresholds
    return [] if rules is None else [c for c in rules.sensitive if c not in model.input_columns]


def schema_description(model: Model, columns: list[InputColumn], name: str, shown: int = 20) -> str:
    """The OpenAPI page's description (`/docs`): what the model predicts and each input column, its type,
    its V2 datatype and its known levels (the first `shown`)."""
    lines = [f"Predicts **{model.target}** ({model.task.value}). One input per column "
             f"(`/v2/models/{name}` gives the same as JSON):", ""]
    for column in columns:
        what = {"image": "an image file's bytes (base64 in JSON)", "audio": "an audio file's bytes (base64 in "
                "JSON)"}.get(column.type, column.type)
        line = f"- `{column.name}`: {what}, V2 datatype {column.datatype}"
        if column.categories is not None:
            levels = [str(c) for c in column.categories]
            more = f", … ({len(levels) - shown} more)" if len(levels) > shown else ""
            line += f"; levels: {', '.join(levels[:shown])}{more}"
        lines.append(line)
    outputs = "`value`" if model.task.is_regression else \
        f"`label` and `probabilities` over {', '.join(str(c) for c in model.classes_)}"
    return "\n".join([*lines, "", f"Outputs: {outputs}."])


def output_metadata(model: Model) -> list[dict[str, Any]]:
    if model.task.is_regression:
        return [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    return [{"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes_)],
             "parameters": {"classes": [str(c) for c in model.classes_]}}]


def columns_from_tensors(columns: list[InputColumn], tensors: list[Tensor], max_rows: int) -> dict[str, list[Any]]:
    """The request's table, column by column: one per input tensor, each [rows] or [rows, 1], the same row
    count."""
    known = {c.name: c for c in columns}
    unknown = [t.name for t in tensors if t.name not in known]
    if unknown:
        raise ProtocolError(f"unknown input(s) {', '.join(map(repr, unknown))}; the model takes "
                            f"{', '.join(repr(c.name) for c in columns)}")
    values: dict[str, Any] = {}
    for tensor in tensors:
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise ProtocolError(f"input {tensor.name!r}: shape must be [rows] or [rows, 1], got {tensor.shape}")
        values[tensor.name] = _values(known[tensor.name], tensor)
    rows = {len(v) for v in values.values()}
    if len(rows) > 1:
        raise ProtocolError("every input must have the same number of rows, got "
                            + ", ".join(f"{name!r}: {len(v)}" for name, v in values.items()))
    if rows and rows.pop() > max_rows:
        raise ProtocolError(f"at most {max_rows} rows per request (the server's --max-rows)")
    return values


def _values(column: InputColumn, tensor: Tensor) -> list[Any]:
    data = tensor.data
    if tensor.datatype in NUMERIC:
        return data.tolist()
    if column.type in FILE_TYPES:
        return list(data)  # bytes (binary) or base64 text (JSON); never a path
    try:
        texts = [v.decode("utf-8") if isinstance(v, bytes) else v for v in data]
    except UnicodeDecodeError:
        raise ProtocolError(f"input {tensor.name!r}: BYTES for a {column.type} column must be UTF-8 text") from None
    return texts if column.type == "text" else [None if v == "" else v for v in texts]  # "": a missing value


def output_tensors(model: Model, predictions) -> dict[str, tuple[str, np.ndarray]]:
    if model.task.is_regression:
        return {"value": ("FP64", np.asarray(predictions.predictions, dtype=np.float64))}
    labels = np.array([str(v) for v in predictions.predictions], dtype=object)
    return {"label": ("BYTES", labels), "probabilities": ("FP64", np.asarray(predictions.outputs, np.float64))}


def explanation_tensors(explanation) -> dict[str, tuple[str, np.ndarray]]:
    """An explanation (`deepwell.explain.run.Explanation`) as Open Inference Protocol output tensors."""
    a = explanation.attributions

    def text(values) -> np.ndarray:
        return np.array([str(v) for v in values], dtype=object)

    return {"attributions": ("FP64", np.asarray(a.values, np.float64)), "columns": ("BYTES", text(a.columns)),
            "explained": ("BYTES", text(a.explained)), "output": ("FP64", np.asarray(a.output, np.float64)),
            "baseline_output": ("FP64", np.asarray(a.baseline_output, np.float64)),
            "prediction": ("BYTES", text(explanation.predictions)),
            "reasons": ("BYTES", text(" · ".join(r) for r in explanation.reasons))}
