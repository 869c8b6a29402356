"""deepwell: from raw data to a trained, evaluated, explained deep network.

    import deepwell as dw
    model = dw.train("data.csv", target="y")
    model.predict(new_rows)
"""

__version__ = "0.1.0"

from deepwell.config import ColumnConfig, Config, ModelConfig, SplitConfig, TrainingConfig  # noqa: E402
from deepwell.errors import ConfigError, DataError, DeepwellError, DeepwellWarning, ModelFileError  # noqa: E402
from deepwell.model import Model, load  # noqa: E402
from deepwell.reports import build_report  # noqa: E402
from deepwell.tuning.capacity import auto_capacity  # noqa: E402
from deepwell.tuning.capacity import data_curve as diagnose  # noqa: E402
from deepwell.tuning.study import tune  # noqa: E402
from deepwell.workflow import describe, train  # noqa: E402

__all__ = ["train", "tune", "auto_capacity", "diagnose", "load", "Model", "Config", "ColumnConfig",
           "ModelConfig", "SplitConfig", "TrainingConfig", "describe", "build_report", "DeepwellError",
           "DataError", "ConfigError", "ModelFileError", "DeepwellWarning", "__version__"]
