"""The deepwell model as an MLflow pyfunc: `mlflow.pyfunc.load_model` and `mlflow models serve` predict with
it. Image and audio columns take the file's bytes (base64 text in JSON requests), never a path: a server must
not read files named by its clients."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from deepwell.errors import DataError


class DeepwellPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from deepwell.model import load

        self.model = load(context.artifacts["deepwell_model"])
        self.file_columns = [f.name for f in self.model.preprocessor.features if getattr(f, "reads_files", False)]

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input).copy()
        for column in self.file_columns:
            if column in frame.columns:
                frame[column] = [file_bytes(value, column, row) for row, value in enumerate(frame[column])]
        table = self.model.predict_table(frame)
        return table[[c for c in table.columns if c not in frame.columns]]


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
