"""MLflow "models from code" entry point: MLflow runs this file to build the pyfunc model, so nothing is
pickled. The deepwell model folder travels as the artifact `deepwell_model`."""

import mlflow

from deepwell.tracking.pyfunc import DeepwellPyfunc

mlflow.models.set_model(DeepwellPyfunc())
