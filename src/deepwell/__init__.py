"""deepwell: from raw data to a trained, evaluated, explained deep network.

    import deepwell as dw
    model = dw.train("data.csv", target="y")
    model.predict(new_rows)

`import deepwell` is light: nothing heavy (torch, scikit-learn, matplotlib, MLflow, transformers) is imported
and no global state changes until a name below is first used (PEP 562 module `__getattr__`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "deepwell.pipeline.run", "load": "deepwell.loading", "describe": "deepwell.pipeline.prepare",
    "tune": "deepwell.tuning.study", "auto_capacity": "deepwell.tuning.capacity",
    "finetune": "deepwell.generation.train", "Generator": "deepwell.generation.model",
    "diagnose": ("deepwell.tuning.capacity", "data_curve"), "build_report": "deepwell.reports",
    "Model": "deepwell.model", "Task": "deepwell.task",
    "Config": "deepwell.config", "ColumnConfig": "deepwell.config", "ModelConfig": "deepwell.config",
    "SplitConfig": "deepwell.config", "TrainingConfig": "deepwell.config",
    "DeepwellError": "deepwell.errors", "DataError": "deepwell.errors", "ConfigError": "deepwell.errors",
    "ModelFileError": "deepwell.errors", "DeepwellWarning": "deepwell.errors",
}
__all__ = ["train", "load", "describe", "tune", "finetune", "Generator", "auto_capacity", "diagnose", "build_report",
           "Model", "Task",
           "Config", "ColumnConfig", "ModelConfig", "SplitConfig", "TrainingConfig", "DeepwellError", "DataError",
           "ConfigError", "ModelFileError", "DeepwellWarning", "__version__"]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'deepwell' has no attribute {name!r}")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from deepwell.config import ColumnConfig, Config, ModelConfig, SplitConfig, TrainingConfig
    from deepwell.errors import ConfigError, DataError, DeepwellError, DeepwellWarning, ModelFileError
    from deepwell.generation.model import Generator
    from deepwell.generation.train import finetune
    from deepwell.loading import load
    from deepwell.model import Model
    from deepwell.pipeline.prepare import describe
    from deepwell.pipeline.run import train
    from deepwell.reports import build_report
    from deepwell.task import Task
    from deepwell.tuning.capacity import auto_capacity
    from deepwell.tuning.capacity import data_curve as diagnose
    from deepwell.tuning.study import tune
