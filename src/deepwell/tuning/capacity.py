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
from deepwell.evaluation.diagnosis import BIAS_SKILL, error_of, sampling_noise
from deepwell.evaluation.metrics import higher_is_better
from deepwell.runs.files import write_json
from deepwell.tuning.space import apply

FRACTIONS = (0.1, 0.25, 0.5, 1.0)


# --- auto-capacity -------------------------------------------------------------------------------
def auto_capacity(data: TableLike, target: str | None = None, *, config: Config | dict | str | Path | None = None,
                  rounds: int = 3, name: str | None = None, **train_args: Any):
    """Train, diagnose, apply the diagnosis' prescriptions, retrain — at most `rounds` runs, stopping at a good
    fit — and return the run with the best validation metric (its `rounds` attribute lists every round)."""
    from deepwell.workflow import train

    history: list[dict[str, Any]] = []
    best = model = train(data, target, config=config, name=f"{name}-round1" if name else None, **train_args)
    for number in range(1, rounds + 1):
        if number > 1:
            changes = {p.setting: p.to for p in model.diagnosis.prescriptions if p.setting}
            current = Config.from_yaml(model.run_dir / "config.yaml").model_dump(mode="json")
            model = train(data, config=apply(current, changes), name=f"{name}-round{number}" if name else None,
                          **{k: v for k, v in train_args.items() if k != "epochs"})
            history[-1]["applied"] = changes
            if _better(model, best):
                best = model
        metric = model.metrics["primary_metric"]
        history.append({"round": number, "run": str(model.run_dir), "verdict": model.diagnosis.verdict,
                        f"validation_{metric}": model.metrics["validation"]["model"][metric],
                        "parameters": model.parameter_count, "seconds": model.metrics["training"]["seconds"]})
        if model.diagnosis.verdict == "good fit":
            break
    for row in history:
        row["kept"] = row["run"] == str(best.run_dir)
    write_json(best.run_dir / "auto_capacity.json", history)
    best.rounds = history
    return best


def _better(candidate, best) -> bool:
    metric = best.metrics["primary_metric"]
    new, old = candidate.metrics["validation"]["model"][metric], best.metrics["validation"]["model"][metric]
    return new > old if higher_is_better(metric) else new < old


# --- data-size learning curve ----------------------------------------------------------------------
@dataclass
class DataCurve:
    conclusion: str  # "more data would help" | "a larger model is needed" | "enough data" | "flat"
    summary: str
    points: list[dict[str, Any]]
    error: str
    folder: str = ""  # where the runs of the curve are

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def data_curve(data: TableLike, target: str | None = None, *, config: Config | dict | str | Path | None = None,
               fractions: tuple[float, ...] = FRACTIONS, output: str | Path = "runs", epochs: int | None = None,
               seed: int | None = None, quiet: bool = True) -> DataCurve:
    """Train on growing shares of the training split (validation fixed) and read the curve. `data` may be a
    run folder: its data and configuration are reused and the result joins its report."""
    from deepwell.reports import build_report
    from deepwell.reports.plots import data_curve as plot
    from deepwell.reports.plots import save
    from deepwell.workflow import prepare_config, train

    run_dir = _run_folder(data)
    if run_dir is not None:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        path = (info.get("data") or {}).get("path")
        if not path or not Path(path).exists():
            raise DataError(f"{run_dir} was trained on {path or 'a DataFrame'}, which is not available; pass the "
                            "data file instead: deepwell diagnose DATA --target COLUMN.")
        data, config, folder = path, run_dir / "config.yaml", run_dir / "data_curve"
    else:
        stem = Path(data).stem if isinstance(data, (str, Path)) else "dataframe"
        folder = Path(output) / f"diagnose-{stem}"
    base, _, _ = prepare_config(data, target, config, epochs=epochs, seed=seed)
    points = []
    for fraction in sorted(fractions):
        sized = base.model_copy(deep=True)
        sized.split.train_subsample = fraction
        model = train(data, config=sized, output=folder, name=f"rows-{round(fraction * 100)}pct", quiet=quiet,
                      track=False)
        task, metrics = model.task, model.metrics
        points.append({"fraction": fraction, "rows": metrics["split"]["train"],
                       "train_error": round(error_of(task, metrics["train"]["model"]), 4),
                       "validation_error": round(error_of(task, metrics["validation"]["model"]), 4),
                       "baseline_error": round(error_of(task, metrics["validation"]["baseline"]), 4),
                       "validation_rows": metrics["validation"]["rows"], "run": str(model.run_dir)})
    curve = read_curve(points, task)
    curve.folder = str(folder)
    target_dir = run_dir or folder
    write_json(target_dir / "data_curve.json", curve.as_dict())
    save(plot(pd.DataFrame(points), curve.error), target_dir / "data_curve.png")
    if run_dir is not None:
        build_report(run_dir)
    return curve


def read_curve(points: list[dict[str, Any]], task: str) -> DataCurve:
    """The conclusion from the last two points of the curve, against validation sampling noise (a drop must
    exceed two standard errors to count)."""
    error = "rmse" if task == "regression" else "1 - accuracy"
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


def _run_folder(data: Any) -> Path | None:
    if isinstance(data, (str, Path)) and Path(data).is_dir() and (Path(data) / "run.json").is_file():
        return Path(data)
    return None
