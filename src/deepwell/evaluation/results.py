"""Typed evaluation results with one serialisation each: `metrics.json` is `RunMetrics.to_dict()`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from deepwell.task import Task
from deepwell.training.state import StopReason

LOWER_IS_BETTER = {"loss", "log_loss", "rmse", "mae"}


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def better(metric: str, value: float, than: float) -> bool:
    """`value` of `metric` is strictly better than `than`."""
    return value > than if higher_is_better(metric) else value < than


@dataclass
class SplitScores:
    """One split scored: the model's metrics beside the trivial baseline's (same rows)."""

    rows: int
    model: dict[str, Any]
    baseline: dict[str, Any]

    def primary(self, task: Task) -> float:
        return float(self.model[task.primary_metric])

    def error(self, task: Task) -> float:
        """One error number per task: RMSE, or 1 − accuracy."""
        return float(self.model["rmse"]) if task.is_regression else 1.0 - float(self.model["accuracy"])

    def baseline_error(self, task: Task) -> float:
        return float(self.baseline["rmse"]) if task.is_regression else 1.0 - float(self.baseline["accuracy"])

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SplitScores | None:
        if not data:
            return None
        if isinstance(data.get("model"), str):  # a reference as older run folders stored it: flat metrics
            scores = {k: v for k, v in data.items() if k not in ("model", "rows")}
            return cls(int(data.get("rows", 0)), {"learner": data["model"], **scores}, {})
        return cls(int(data.get("rows", 0)), dict(data.get("model") or {}), dict(data.get("baseline") or {}))


@dataclass
class TrainingFacts:
    best_epoch: int
    epochs_run: int
    stop_reason: StopReason
    seconds: float
    parameters: int
    batch_size: int
    device: str
    members: list[dict[str, Any]] = field(default_factory=list)
    """An ensemble's members in training order: best_epoch, epochs_run, stop_reason, seconds (empty: one network,
    whose facts are the fields above; for an ensemble those fields are the first member's, seconds the total)."""

    @property
    def ensemble_size(self) -> int:
        return max(1, len(self.members))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingFacts:
        return cls(int(data["best_epoch"]), int(data["epochs_run"]), StopReason(data["stop_reason"]),
                   float(data["seconds"]), int(data["parameters"]), int(data["batch_size"]), str(data["device"]),
                   list(data.get("members") or []))


@dataclass
class RunMetrics:
    """Everything measured at the end of a fit: train (a sample, eval mode), validation and test scores beside
    the baseline, the gradient-boosting reference on validation, and facts about the training."""

    task: Task
    target: str
    train: SplitScores
    validation: SplitScores
    training: TrainingFacts
    split: dict[str, int] = field(default_factory=dict)
    test: SplitScores | None = None
    reference: SplitScores | None = None

    @property
    def primary_metric(self) -> str:
        return self.task.primary_metric

    @property
    def held_out(self) -> SplitScores:
        """Test scores, or validation scores when there is no test split."""
        return self.test or self.validation

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["task"] = self.task.value
        out["primary_metric"] = self.primary_metric
        out["training"]["stop_reason"] = self.training.stop_reason.value
        order = ("train", "task", "target", "primary_metric", "validation", "test", "training", "split", "reference")
        return {key: out[key] for key in order}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMetrics:
        return cls(task=Task(data["task"]), target=data["target"], train=SplitScores.from_dict(data["train"]),
                   validation=SplitScores.from_dict(data["validation"]),
                   training=TrainingFacts.from_dict(data["training"]), split=dict(data.get("split") or {}),
                   test=SplitScores.from_dict(data.get("test")), reference=SplitScores.from_dict(data.get("reference")))

    def flat(self) -> dict[str, float]:
        """Final numbers under flat names (test_accuracy, baseline_validation_rmse, training_seconds …): what
        MLflow records and `deepwell compare` shows."""
        out: dict[str, float] = {}
        for name in ("test", "validation"):
            scores = getattr(self, name)
            if scores is None:
                continue
            out.update({f"{name}_{k}": float(v) for k, v in scores.model.items() if _number(v)})
            out.update({f"baseline_{name}_{k}": float(v) for k, v in scores.baseline.items() if _number(v)})
        facts = self.training
        out.update({f"training_{k}": float(getattr(facts, k)) for k in ("parameters", "epochs_run", "best_epoch",
                                                                        "seconds", "ensemble_size")})
        return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
