"""deepwell as scikit-learn estimators: `DeepwellClassifier` and `DeepwellRegressor`.

Every option is a keyword argument of the constructor (so `get_params`, `set_params`, `clone`, `GridSearchCV`
and `Pipeline` work); `__init__` only stores them. `fit(X, y)` trains in memory — no run folder, no tracking —
through the same `pipeline.fit` as `deepwell train`. X is an array (every column a number) or a DataFrame
(column types inferred, or set with `columns={"name": "category", …}`).

    from deepwell.sklearn import DeepwellClassifier
    clf = DeepwellClassifier(hidden_width=128).fit(X_train, y_train)
    clf.predict_proba(X_test)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from deepwell.task import Task

SMALL = 40  # fewer rows than this: validate on the training rows (no held-out split is worth having)


class _DeepwellEstimator(BaseEstimator):
    _task_family = "classification"

    def __init__(self, *, hidden_layers: int = 3, hidden_width: int = 256, dropout: float = 0.2,
                 activation: Literal["relu", "gelu", "silu", "tanh"] = "gelu",
                 normalization: Literal["batch", "layer", "none"] = "layer", residual: bool = True,
                 numeric_embedding: Literal["periodic", "piecewise", "none"] = "periodic", epochs: int = 60,
                 batch_size: int | Literal["auto"] = "auto", learning_rate: float = 1e-3, weight_decay: float = 1e-2,
                 patience: int | Literal["auto"] = "auto", average_epochs: float = 1.0,
                 validation_fraction: float = 0.15,
                 columns: dict[str, str] | None = None, device: Literal["auto", "cpu", "cuda"] = "auto",
                 random_state: int = 42, verbose: bool = False,
                 preset: Literal["fast", "balanced", "best"] | None = None,
                 ensemble_size: int | Literal["auto"] = "auto") -> None:
        self.hidden_layers = hidden_layers
        self.hidden_width = hidden_width
        self.dropout = dropout
        self.activation = activation
        self.normalization = normalization
        self.residual = residual
        self.numeric_embedding = numeric_embedding
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.average_epochs = average_epochs
        self.validation_fraction = validation_fraction
        self.columns = columns
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.preset = preset
        self.ensemble_size = ensemble_size

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # numbers get a missing-value indicator
        tags.input_tags.string = True  # DataFrames may hold categories and text
        tags.non_deterministic = self.device != "cpu"
        return tags

    # --- fitting ----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _DeepwellEstimator:
        """Train on (X, y); `sample_weight` weighs each row's loss (fairlearn's reductions use it)."""
        from deepwell.data.split import Splits
        from deepwell.pipeline.fit import fit
        from deepwell.pipeline.prepare import split

        frame, typed = self._frame(X, y, reset=True)
        target = _free_name(frame.columns, "target")
        frame[target] = self._encode_target(column_or_1d(y, warn=True))
        weights = None
        if sample_weight is not None:
            weights = _free_name(frame.columns, "weight")
            frame[weights] = _check_sample_weight(sample_weight, frame, ensure_non_negative=True)
        config = self._config(target, frame, typed, weights)
        if len(frame) < SMALL:
            splits = Splits(frame, frame, frame.iloc[0:0])
        else:
            splits = split(frame, config, "X")
        fitted = fit(config, splits, progress=self.verbose)
        self.model_ = fitted.model()
        self.history_ = fitted.result.history_frame()
        self.best_epoch_ = fitted.result.best_epoch
        return self

    def _config(self, target: str, frame: pd.DataFrame, typed: bool, weights: str | None):
        from deepwell.config import ColumnConfig, Config
        from deepwell.pipeline.prepare import resolve_config

        fraction = float(self.validation_fraction)
        config = Config.validate_dict({
            "target": target, "task": self._task(frame[target]).value, "weight_column": weights,
            **({"preset": self.preset} if self.preset is not None else {}),
            "columns": {name: {"type": kind} for name, kind in (self.columns or {}).items()},
            "split": {"train": 1 - fraction, "validation": fraction, "test": 0.0},
            "model": {"hidden_layers": self.hidden_layers, "hidden_width": self.hidden_width, "dropout": self.dropout,
                      "activation": self.activation, "normalization": self.normalization, "residual": self.residual,
                      "numeric_embedding": self.numeric_embedding, "ensemble_size": self.ensemble_size},
            "training": {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                         "weight_decay": self.weight_decay, "patience": self.patience,
                         "average_epochs": self.average_epochs, "seed": self.random_state, "device": self.device},
        }, source=f"{type(self).__name__} parameters")
        if not typed:  # an array: every column is a number, whatever its values look like
            config.columns = {name: ColumnConfig(type="number") for name in frame.columns
                              if name not in (target, weights)}
        config = resolve_config(frame, config, "X")
        from deepwell.data.inference import resolve_levels
        from deepwell.pipeline.presets import resolve_sizes

        resolve_levels(config, frame)

        return resolve_sizes(config, int(len(frame) * (1 - fraction)))

    def _frame(self, X: Any, y: Any = None, reset: bool = False) -> tuple[pd.DataFrame, bool]:
        """(X as a DataFrame with string column names, whether its columns carry their own types)."""
        if isinstance(X, pd.DataFrame):
            kwargs = {"reset": reset, "skip_check_array": True}
            if y is not None:
                validate_data(self, X, y, **kwargs)
            else:
                validate_data(self, X, **kwargs)
            frame = X.copy()
            frame.columns = [str(c) for c in frame.columns]
            return frame.reset_index(drop=True), True
        kwargs = {"reset": reset, "ensure_all_finite": "allow-nan", "dtype": "numeric",
                  "ensure_min_samples": 2 if reset else 1}
        array = validate_data(self, X, y, **kwargs)[0] if y is not None else validate_data(self, X, **kwargs)
        names = [f"x{i}" for i in range(array.shape[1])]
        return pd.DataFrame(np.asarray(array, dtype=np.float64), columns=names), False

    # --- prediction -------------------------------------------------------------------------------
    def _outputs(self, X: Any) -> np.ndarray:
        from deepwell.inference.predict import predict_frame

        check_is_fitted(self, "model_")
        frame, _ = self._frame(X)
        predictions = predict_frame(self.model_, frame, "X")
        predictions.raise_for_errors()
        return predictions.outputs


def _free_name(columns: Any, name: str) -> str:
    """`name`, prefixed with underscores until no column of X has it."""
    while name in columns:
        name = f"_{name}"
    return name


class DeepwellClassifier(ClassifierMixin, _DeepwellEstimator):
    """A deepwell network for classification; `classes_` holds the labels in `predict_proba`'s column order."""

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        check_classification_targets(y)
        self._labels = LabelEncoder().fit(y)
        self.classes_ = self._labels.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"DeepwellClassifier needs at least 2 classes in y; got 1 class ({self.classes_[0]!r}).")
        return self._labels.transform(y)

    def _task(self, y: pd.Series) -> Task:
        return Task.BINARY if len(self.classes_) == 2 else Task.MULTICLASS

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._outputs(X)

    def predict(self, X: Any) -> np.ndarray:
        probabilities = self.predict_proba(X)  # checks that the estimator is fitted first
        return self.classes_[probabilities.argmax(axis=1)]


class DeepwellRegressor(RegressorMixin, _DeepwellEstimator):
    """A deepwell network for regression (the target is standardised while training)."""

    def _encode_target(self, y: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"DeepwellRegressor needs numeric y; got values such as {y[:3]!r}.") from None

    def _task(self, y: pd.Series) -> Task:
        return Task.REGRESSION

    def predict(self, X: Any) -> np.ndarray:
        outputs = self._outputs(X)  # checks that the estimator is fitted first
        return self.model_.preprocessor.target.unscale(outputs)
