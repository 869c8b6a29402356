"""Fit diagnosis: is the model underfitting (high bias), overfitting (high variance), a good fit, or not
converged — with the evidence in numbers and concrete, machine-applicable prescriptions.

The reading follows the textbook bias–variance split on errors: the *variance* signal is the gap between the
training error (measured in eval mode on the final weights, not the running training loss) and the validation
error, judged against the sampling noise a validation set of that size carries; the *bias* signal compares the
training error with the error achievable on this data — estimated by a classical reference learner
(evaluation/reference.py: gradient boosting on tables, a linear model on TF-IDF, pixels or log-mel statistics
otherwise), else by how much of the trivial baseline's error is removed. Whatever the verdict, the summary says
so when that simple model beats the network on validation, and by how much — and, for classes, when the test
split scores worse than validation by more than sampling noise explains (test rows from elsewhere: other writers,
another period).
Curves add the rest: a validation loss climbing from its minimum while the training loss falls
(overfitting), or both still falling when the epoch budget ran out (not converged).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import pandas as pd

from deepwell.evaluation.results import RunMetrics
from deepwell.task import Task
from deepwell.training.state import StopReason

BIAS_SKILL = 0.5  # a model removing less than half the baseline's error on its own training data is biased
RELATIVE_GAP = 0.25  # a significant gap this large a share of the validation error is variance
LOSS_RISE = 1.0  # validation loss doubled from its minimum by the last epoch (while training loss fell by half)
STILL_LEARNING = -0.02  # training loss still falling 2% or more per epoch at the end: not done learning
TEST_SHIFT = 3.0  # test error this many noise units above validation's: more than chance explains


@dataclass
class Prescription:
    """One change to make: `setting` is a dotted config path (None for advice such as more data)."""

    setting: str | None
    to: Any
    why: str
    current: Any = None


class Verdict(str, Enum):
    UNDERFIT = "underfit"
    OVERFIT = "overfit"
    GOOD_FIT = "good fit"
    NOT_CONVERGED = "not converged"
    STOPPED_EARLY = "stopped too early"  # early stopping ended a run that was still learning fast

    def __str__(self) -> str:
        return self.value


@dataclass
class Diagnosis:
    verdict: Verdict
    summary: str
    evidence: dict[str, Any]
    prescriptions: list[Prescription] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        return cls(Verdict(data["verdict"]), data["summary"], data["evidence"],
                   [Prescription(**p) for p in data.get("prescriptions", [])])


def sampling_noise(task: Task, error: float, rows: int) -> float:
    """Standard error of an error estimate from `rows` examples (binomial, or RMSE of normal residuals)."""
    rows = max(rows, 1)
    if task.is_regression:
        return error / math.sqrt(2 * rows)
    return math.sqrt(max(error * (1 - error), 1.0 / rows) / rows)


def diagnose(history: pd.DataFrame, metrics: RunMetrics, config: dict[str, Any]) -> Diagnosis:
    """`history` one row per epoch (history.csv); `config` the resolved configuration as a dict (to prescribe
    from the current values)."""
    diagnosis = _judge(history, metrics, config)
    evidence = diagnosis.evidence
    if "reference_beats_network_by" in evidence:
        unit = (f"{100 * evidence['reference_beats_network_by']:.1f} points of accuracy"
                if not metrics.task.is_regression else f"{evidence['reference_beats_network_by']:.4g} RMSE")
        diagnosis.summary += (f" A simple model beats the network here: {evidence['reference']} reaches a "
                              f"validation error of {evidence['reference_validation_error']:.4f} "
                              f"({evidence['error']}), {unit} better than the network's "
                              f"{evidence['validation_error']:.4f}.")
    diagnosis.summary += _test_shift(metrics, diagnosis.evidence)
    return diagnosis


def _test_shift(metrics: RunMetrics, evidence: dict[str, Any]) -> str:
    """A sentence when the test split scores worse than validation by more than chance explains (the test rows
    likely come from elsewhere: other writers, speakers, a later period), else nothing; the numbers go into
    `evidence` whenever there is a test split. Classes only: a regression's RMSE noise here assumes normal
    residuals, and one outlier among a few dozen test rows moves the RMSE far more than that."""
    task, validation, test = metrics.task, metrics.validation, metrics.test
    if test is None or not test.rows or task.is_regression:
        return ""
    val_err, test_err = validation.error(task), test.error(task)
    noise = math.hypot(sampling_noise(task, val_err, validation.rows), sampling_noise(task, test_err, test.rows))
    evidence["test_error"] = round(test_err, 4)
    evidence["test_gap_in_noise_units"] = round((test_err - val_err) / noise, 2) if noise > 0 else None
    if noise <= 0 or test_err - val_err <= TEST_SHIFT * noise:
        return ""
    return (f" The test split's error ({test_err:.4f}) is {test_err - val_err:.4f} above validation's "
            f"({val_err:.4f}): {(test_err - val_err) / noise:.1f}× the noise expected from {test.rows} test and "
            f"{validation.rows} validation rows, more than chance explains. The test rows likely differ from "
            "those trained and validated on (another source, period or person): on data like them, expect the "
            "test score, not the validation score.")


def _judge(history: pd.DataFrame, metrics: RunMetrics, config: dict[str, Any]) -> Diagnosis:
    task = metrics.task
    train, validation = metrics.train, metrics.validation
    train_err, val_err = train.error(task), validation.error(task)
    base_err = validation.baseline_error(task)
    noise = math.hypot(sampling_noise(task, val_err, validation.rows), sampling_noise(task, train_err, train.rows))
    gap = val_err - train_err
    skill = 1.0 - train_err / base_err if base_err > 0 else 1.0
    facts = metrics.training
    epochs, best = facts.epochs_run, facts.best_epoch
    val_loss, train_loss = history["val_loss"].to_numpy(float), history["train_loss"].to_numpy(float)
    lowest = int(val_loss.argmin()) if len(val_loss) else 0
    rise = float(val_loss[-1] / max(val_loss[lowest], 1e-12) - 1) if len(val_loss) else 0.0
    train_fall = float(1 - train_loss[-1] / max(train_loss[lowest], 1e-12)) if len(train_loss) else 0.0
    tail = min(max(2, epochs // 5), len(val_loss) - 1)
    slope = float((val_loss[-1] / val_loss[-1 - tail]) ** (1 / tail) - 1) if tail >= 1 else 0.0
    still_falling = (tail >= 1 and facts.stop_reason == StopReason.MAX_EPOCHS and best >= epochs - 1
                     and slope < -0.005)
    train_slope = float((train_loss[-1] / max(train_loss[-1 - tail], 1e-12)) ** (1 / tail) - 1) if tail >= 1 else 0.0
    cut_short = facts.stop_reason == StopReason.EARLY_STOPPING and train_slope < STILL_LEARNING
    evidence = {
        "error": task.error_name,
        "train_error": round(train_err, 4), "validation_error": round(val_err, 4),
        "baseline_error": round(base_err, 4), "gap": round(gap, 4), "expected_noise": round(noise, 4),
        "gap_in_noise_units": round(gap / noise, 2) if noise > 0 else None,
        "train_skill_over_baseline": round(skill, 3), "best_epoch": best, "epochs_run": epochs,
        "stop_reason": facts.stop_reason.value, "validation_loss_rise_from_minimum": round(rise, 3),
        "train_loss_fall_after_validation_minimum": round(train_fall, 3),
        "validation_loss_change_per_epoch_at_end": round(slope, 4),
        "train_loss_change_per_epoch_at_end": round(train_slope, 4),
        "train_loss_first_last": [round(float(train_loss[0]), 4), round(float(train_loss[-1]), 4)]
        if len(train_loss) else None, "validation_rows": validation.rows, "train_rows": train.rows,
        "parameters": facts.parameters,
    }
    reference = metrics.reference
    if reference is not None:
        ref_err = reference.error(task)
        evidence["reference_validation_error"] = round(ref_err, 4)
        evidence["reference"] = reference.model.get("learner")
        if ref_err < val_err - sampling_noise(task, val_err, validation.rows):
            evidence["reference_beats_network_by"] = round(val_err - ref_err, 4)
    significant = gap > 2 * noise
    if still_falling:
        return Diagnosis(Verdict.NOT_CONVERGED, (
            f"Validation loss was still falling when the {epochs}-epoch budget ran out (best epoch {best}); "
            "the model has not finished learning."), evidence, _longer(config))
    memorising = rise > LOSS_RISE and train_fall > 0.5
    if (significant and gap > RELATIVE_GAP * max(val_err, 1e-12)) or memorising:
        reasons = []
        if significant:
            reasons.append(f"validation error {val_err:.4f} is {gap:.4f} above training error {train_err:.4f} "
                           f"({gap / noise:.1f}× the noise expected from {validation.rows} validation rows)")
        if memorising:
            reasons.append(f"after epoch {lowest + 1} the training loss fell {train_fall:.0%} while the validation "
                           f"loss rose {rise:.0%} (early stopping kept epoch {best}'s weights, but the network "
                           "memorises faster than it generalises)")
        return Diagnosis(Verdict.OVERFIT, "High variance: " + "; ".join(reasons) + ".", evidence,
                         _smaller(config, train.rows))
    if reference is not None:  # a yardstick of the achievable error exists: judge bias against it
        if train_err > ref_err + 2 * noise:
            if cut_short:
                return _stopped_early(evidence, config, train_err, f"the reference's {ref_err:.4f}", noise)
            return Diagnosis(Verdict.UNDERFIT, (
                f"High bias: even on its own training data the model's error ({train_err:.4f}) is above the "
                f"error a simple reference model reaches on unseen validation rows ({ref_err:.4f}; noise "
                f"{noise:.4f}), and validation error is close to training error (gap {gap:.4f})."),
                evidence, _larger(config))
    elif skill < BIAS_SKILL:
        if cut_short:
            return _stopped_early(evidence, config, train_err, f"the baseline's {base_err:.4f}", noise)
        return Diagnosis(Verdict.UNDERFIT, (
            f"High bias: on its own training data the model removes only {skill:.0%} of the trivial baseline's "
            f"error (training error {train_err:.4f}, baseline {base_err:.4f}), and validation error is close "
            f"to training error (gap {gap:.4f}, noise {noise:.4f})."), evidence, _larger(config))
    behind = (f" The reference ({evidence['reference']}) reaches {evidence['reference_validation_error']:.4f} "
              "on validation." if reference is not None and "reference_beats_network_by" not in evidence else "")
    return Diagnosis(Verdict.GOOD_FIT, (
        f"Training error {train_err:.4f} and validation error {val_err:.4f} are close (gap {gap:.4f}: "
        + (f"within twice the noise of {noise:.4f}" if not significant else
           f"{gap / noise:.1f}× the noise of {noise:.4f}, but under {RELATIVE_GAP:.0%} of the validation error")
        + ") and the model "
        f"removes {skill:.0%} of the baseline's error.{behind}"), evidence, [])


def _stopped_early(evidence: dict[str, Any], config: dict[str, Any], train_err: float, yardstick: str,
                   noise: float) -> Diagnosis:
    """High training error, but early stopping cut the run while the training loss was still falling fast: the
    validation curve was too noisy to stop on, so the network never got the chance to fit — not too small."""
    rows, epochs = evidence["validation_rows"], evidence["epochs_run"]
    summary = (f"Stopped too early: early stopping ended training at epoch {epochs} (best epoch "
               f"{evidence['best_epoch']}) while the training loss was still falling "
               f"{-evidence['train_loss_change_per_epoch_at_end']:.0%} per epoch, with training error "
               f"{train_err:.4f} still above {yardstick}. With {rows} validation rows the validation error "
               f"moves by about ±{noise:.4f} from noise alone, too much to stop on: let it train longer before "
               "judging, or hold out more rows for validation — not a larger network.")
    return Diagnosis(Verdict.STOPPED_EARLY, summary, evidence, _patient(config))


def _patient(config: dict[str, Any]) -> list[Prescription]:
    patience, epochs = _get(config, "training.patience"), _get(config, "training.epochs")
    share = _get(config, "split.validation")
    out = [Prescription("training.patience", min(epochs * 2, patience * 3) if isinstance(patience, int) else 30,
                        "wait longer for an improvement before stopping", patience),
           Prescription("training.epochs", epochs * 2, "room for the longer run", epochs)]
    train_share = _get(config, "split.train")
    more = round(min(0.3, share * 2), 2)
    if _get(config, "split.column") is None and _get(config, "split.validation_file") is None and more > share \
            and train_share - (more - share) >= 0.5:
        out += [Prescription("split.validation", more, "more validation rows: a steadier curve to stop on", share),
                Prescription("split.train", round(train_share - (more - share), 2),
                             "the validation rows come from the training share", train_share)]
    return out


def _get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for key in path.split("."):
        node = node[key]
    return node


def _larger(config: dict[str, Any]) -> list[Prescription]:
    width, layers = _get(config, "model.hidden_width"), _get(config, "model.hidden_layers")
    dropout, decay = _get(config, "model.dropout"), _get(config, "training.weight_decay")
    out = [Prescription("model.hidden_width", min(2048, width * 2), "more units per layer: more capacity", width),
           Prescription("model.hidden_layers", min(8, layers + 1), "one more layer: more non-linear capacity",
                        layers)]
    if dropout > 0:
        out.append(Prescription("model.dropout", round(max(0.0, dropout - 0.1), 2),
                                "less regularisation lets the model fit more", dropout))
    if decay > 1e-4:
        out.append(Prescription("training.weight_decay", round(decay / 10, 6), "weaker weight decay", decay))
    return out


def _smaller(config: dict[str, Any], train_rows: int) -> list[Prescription]:
    width, dropout = _get(config, "model.hidden_width"), _get(config, "model.dropout")
    decay = _get(config, "training.weight_decay")
    return [Prescription("model.dropout", round(min(0.6, dropout + 0.2), 2), "more dropout: stronger regularisation",
                         dropout),
            Prescription("training.weight_decay", round(min(0.3, max(decay, 1e-3) * 10), 6),
                         "stronger weight decay", decay),
            Prescription("model.hidden_width", max(16, width // 2), "fewer parameters to memorise with", width),
            Prescription(None, train_rows * 2, "more training data (about twice as many rows) would shrink the "
                         "gap; `deepwell diagnose` measures whether it still helps", train_rows)]


def _longer(config: dict[str, Any]) -> list[Prescription]:
    epochs, rate = _get(config, "training.epochs"), _get(config, "training.learning_rate")
    return [Prescription("training.epochs", epochs * 2, "twice the epoch budget (or a higher learning rate than "
                         f"{rate:g} to get there sooner)", epochs)]
