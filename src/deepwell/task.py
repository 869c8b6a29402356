"""The kind of prediction a model makes, as one enum every package uses instead of strings."""

from __future__ import annotations

from enum import Enum


class Task(str, Enum):
    """`str` subclass, so configs, JSON and YAML hold the plain value ("binary", …)."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    def __str__(self) -> str:
        return self.value

    @property
    def is_regression(self) -> bool:
        return self is Task.REGRESSION

    @property
    def family(self) -> str:
        """"regression" or "classification": which metrics apply."""
        return "regression" if self.is_regression else "classification"

    @property
    def primary_metric(self) -> str:
        """The headline metric: RMSE for regression, accuracy otherwise."""
        return "rmse" if self.is_regression else "accuracy"

    @property
    def error_name(self) -> str:
        """One error number per task, as the fit doctor reads it."""
        return "rmse" if self.is_regression else "1 - accuracy"
