"""Acting on the fit diagnosis: `train --auto-capacity` (train, diagnose, apply the prescription, retrain,
keep the best) and `deepwell diagnose` (a data-size learning curve: would more data help, or a larger model?)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deepwell.config import Config
from deepwell.data.io import TableLike
from deepwell.errors import DataError
from deepwell.evaluation.diagnosis import BIAS_SKILL, Verdict, sampling_noise
from deepwell.evaluation.results import better
from deepwell.pipeline.fit import fit
from deepwell.pipeline.prepare import prepare, split
from deepwell.pipeline.run import record
from deepwell.pipeline.score import score
from deepwell.reports import build_report
from deepwell.reports.plots import data_curve as plot
from deepwell.reports.plots import save
from deepwell.runs.files import write_json
from deepwell.runs.layout import RunFolder
from deepwell.task import Task
from deepwell.tuning.space import apply

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
TRACKING = ("track", "tracking_uri", "experiment", "register")


# --- auto-capacity -------------------------------------------------------------------------------
def auto_capacity(data: TableLike, target: str | None = None, *, config: Config | dict | str | Path | None = None,
                  rounds: int = 3, name: str | None = None, output: str | Path = "runs", epochs: int | None = None,
                  seed: int | None = None, preset: str | None = None, quiet: bool = False, **tracking: Any):
    """Fit, diagnose, apply the diagnosis' prescriptions, fit again — at most `rounds` fits on one prepared split,
    stopping at a good fit — and record the fit with the best validation metric as a run (its `rounds` attribute
    lists every round; so does auto_capacity.json in its run folder)."""

    prepared = prepare(data, target, config, epochs=epochs, seed=seed, preset=preset)
    current, best, history = prepared.config, None, []
    for number in range(1, rounds + 1):
        fitted = fit(current, prepared.splits, progress=not quiet)
        scored = score(fitted, prepared.splits)
        metric = scored.metrics.primary_metric
        history.append({"round": number, "verdict": scored.diagnosis.verdict.value,
                        f"validation_{metric}": scored.metrics.validation.primary(current.task),
                        "parameters": fitted.network.parameter_count(),
                        "seconds": scored.metrics.training.seconds})
        if best is None or _better(scored, best[2]):
            best = (current, fitted, scored, number)
        if scored.diagnosis.verdict == Verdict.GOOD_FIT or number == rounds:
            break
        changes = {p.setting: p.to for p in scored.diagnosis.prescriptions if p.setting}
        history[-1]["applied"] = changes
        current = Config.validate_dict(apply(current.model_dump(mode="json"), changes), source="auto-capacity")
    config_kept, fitted, scored, kept = best
    for row in history:
        row["kept"] = row["round"] == kept
    prepared.config = config_kept
    model = record(prepared, fitted, scored, output=output, name=name,
                   **{k: v for k, v in tracking.items() if k in TRACKING})
    write_json(RunFolder(model.run_dir).auto_capacity, history)
    model.rounds = history
    return model


def _better(candidate, best) -> bool:
    metric, task = candidate.metrics.primary_metric, candidate.metrics.task
    return better(metric, candidate.metrics.validation.primary(task), best.metrics.validation.primary(task))


# --- data-size learning curve ----------------------------------------------------------------------
@dataclass
class DataCurve:
    conclusion: str  # "more data would help" | "a larger model is needed" | "enough data" | "flat"
    summary: str
    points: list[dict[str, Any]]
    error: str
    folder: str = ""  # where data_curve.json and data_curve.png are

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def data_curve(data: TableLike, target: str | None = None, *, config: Config | dict | str | Path | None = None,
               fractions: tuple[float, ...] = FRACTIONS, output: str | Path = "runs", epochs: int | None = None,
               seed: int | None = None, quiet: bool = True) -> DataCurve:
    """Fit on growing shares of the training split (validation fixed, data prepared once) and read the curve.
    `data` may be a run folder: its data and configuration are reused and the result joins its report;
    otherwise the curve is written to OUTPUT/diagnose-<data name>/."""

    run = _run_folder(data)
    if run is not None:
        path = (json.loads(run.info.read_text(encoding="utf-8")).get("data") or {}).get("path")
        if not path or not Path(path).exists():
            raise DataError(f"{run.path} was trained on {path or 'a DataFrame'}, which is not available; pass the "
                            "data file instead: deepwell diagnose DATA --target COLUMN.")
        data, config, folder = path, run.config, run.path
    else:
        stem = Path(data).stem if isinstance(data, (str, Path)) else "dataframe"
        folder = Path(output) / f"diagnose-{stem}"
        folder.mkdir(parents=True, exist_ok=True)
    prepared = prepare(data, target, config, epochs=epochs, seed=seed)
    task, points = prepared.config.task, []
    for fraction in sorted(fractions):
        sized = prepared.config.model_copy(deep=True)
        sized.split.train_subsample = fraction
        splits = split(prepared.frame, sized, prepared.source)
        metrics = score(fit(sized, splits, progress=not quiet), splits).metrics
        points.append({"fraction": fraction, "rows": metrics.split["train"],
                       "train_error": round(metrics.train.error(task), 4),
                       "validation_error": round(metrics.validation.error(task), 4),
                       "baseline_error": round(metrics.validation.baseline_error(task), 4),
                       "validation_rows": metrics.validation.rows})
    curve = read_curve(points, task)
    curve.folder = str(folder)
    place = RunFolder(folder)
    write_json(place.data_curve, curve.as_dict())
    save(plot(pd.DataFrame(points), curve.error), place.data_curve_plot)
    if run is not None:
        build_report(run.path)
    return curve


def read_curve(points: list[dict[str, Any]], task: Task) -> DataCurve:
    """The conclusion from the last two points of the curve, against validation sampling noise (a drop must
    exceed two standard errors to count)."""
    error = task.error_name
    last, before = points[-1], points[-2] if len(points) > 1 else points[-1]
    noise = sampling_noise(task, last["validation_error"], last["validation_rows"])
    drop = before["validation_error"] - last["validation_error"]
    gap = last["validation_error"] - last["train_error"]
    skill = 1 - last["train_error"] / last["baseline_error"] if last["baseline_error"] > 0 else 1.0
    change = (f"{before['validation_error']:.4f} at {before['rows']} rows → {last['validation_error']:.4f} at "
              f"{last['rows']}, noise {noise:.4f}")
    if drop > 2 * noise:
        return DataCurve("more data would help", (
            f"Validation error still falls with more rows ({change}); a gap of {gap:.4f} to the training error "
            "remains: the model is limited by the amount of data (variance), so more rows should keep helping."),
            points, error)
    if skill < BIAS_SKILL:
        return DataCurve("a larger model is needed", (
            f"Validation error has flattened ({change}) and on its own training data the model removes only "
            f"{skill:.0%} of the baseline's error: more rows will not help; more capacity (or better features) "
            "will."), points, error)
    if gap <= 2 * noise:
        return DataCurve("enough data", (
            f"Validation error has flattened ({change}) at the training error ({last['train_error']:.4f}): "
            "more rows will not change much; the model already fits what this data supports."), points, error)
    return DataCurve("flat", (
        f"Validation error changes little with more rows ({change}) while a gap of {gap:.4f} to the training "
        "error remains: regularisation is a cheaper lever than more data."), points, error)


def _run_folder(data: Any) -> RunFolder | None:
    if isinstance(data, (str, Path)) and RunFolder(Path(data)).info.is_file():
        return RunFolder(Path(data))
    return None
