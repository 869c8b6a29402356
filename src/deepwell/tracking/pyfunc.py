"""The deepwell model as an MLflow pyfunc: `mlflow.pyfunc.load_model` and `mlflow models serve` predict with
it through deepwell's one prediction path. Image and audio columns take the file's bytes (base64 text in JSON
requests), never a path: a server must not read files named by its clients."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel


class DeepwellPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from deepwell.loading import load

        self.model = load(context.artifacts["deepwell_model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from deepwell.inference.predict import predict

        frame, predictions = predict(self.model, pd.DataFrame(model_input), file_contents=True)
        table = predictions.table(frame)
        return table[[c for c in table.columns if c not in frame.columns]]
