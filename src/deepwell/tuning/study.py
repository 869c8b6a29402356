"""`deepwell tune`: an Optuna search over capacity and regularisation.

The data is prepared (read, decoded, split) once; each trial is a `pipeline.fit` on that same split with the
same seed, scored on the *validation* split; hopeless trials are pruned from their per-epoch validation metric
(the pruning callback stops their training, and Optuna records them as pruned). The study lives in a database (SQLite in
the study folder by default, any URL Optuna accepts for searches spread over machines), so an interrupted
search resumes where it stopped. The given configuration is always trial 0, so the winner is never worse on
validation than what the user started from. The winner is retrained as a normal, tracked run.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deepwell.config import Config
from deepwell.data.io import TableLike
from deepwell.errors import ConfigError
from deepwell.evaluation.results import higher_is_better
from deepwell.runs.files import write_text
from deepwell.training.state import StopReason
from deepwell.tuning.pruning import PruneTrial
from deepwell.tuning.space import apply, defaults, suggest

FINISHED = ("COMPLETE", "PRUNED")


@dataclass
class TuneResult:
    folder: Path
    trials: pd.DataFrame  # one row per trial: number, state, parameters, network size, metric, seconds
    best_params: dict[str, Any]
    best_value: float
    metric: str
    model: Any  # the winner retrained as a normal run (a deepwell Model)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("Tuning needs Optuna: pip install 'deepwell[tune]'.") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def tune(data: TableLike, target: str | None = None, *, config: Config | dict | str | Path | None = None,
         trials: int = 20, timeout: float | None = None, jobs: int = 1, storage: str | None = None,
         study_name: str | None = None, output: str | Path = "runs", epochs: int | None = None,
         seed: int | None = None, quiet: bool = False, backend: str = "local", address: str | None = None,
         **tracking: Any) -> TuneResult:
    """Search until the study holds `trials` finished trials (or `timeout` seconds pass), then retrain the
    best configuration as a normal run. `backend="ray"` spreads the trials over a Ray cluster (`address`, else
    $RAY_ADDRESS, else one started here) with Ray Tune, `jobs` at once. `tracking` goes to the final `train`
    (tracking_uri, experiment …)."""
    from deepwell.pipeline.prepare import prepare
    from deepwell.pipeline.run import train

    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be local or ray, got {backend!r}.")
    optuna = _optuna()
    prepared = prepare(data, target, config, epochs=epochs, seed=seed)
    source = prepared.source
    base = prepared.config.model_dump(mode="json")
    metric = prepared.config.task.primary_metric
    name = study_name or f"tune-{Path(source).stem if source != 'dataframe' else 'dataframe'}"
    folder = Path(output) / name
    folder.mkdir(parents=True, exist_ok=True)
    search = Search(prepared, base, metric, trials, timeout, jobs, folder, name, quiet)
    if backend == "ray":
        from deepwell.distributed.tune import tune_on_ray

        table, best_params, best_value = tune_on_ray(search, address)
    else:
        table, best_params, best_value = _tune_here(search, storage)
    table.to_csv(folder / "trials.csv", index=False)
    plot_trials(table, metric, folder / "metric_vs_parameters.png")
    train_rows = len(prepared.splits.train)
    winner = Config.validate_dict(apply(base, suggest(optuna.trial.FixedTrial(best_params), base, train_rows)),
                                  source="best trial")
    write_text(folder / "best.yaml", winner.to_yaml())
    model = train(data, config=winner, output=output, name=f"{name}-best", quiet=quiet, **tracking)
    return TuneResult(folder, table, dict(best_params), float(best_value), metric, model)


@dataclass
class Search:
    """What a search needs, wherever its trials run."""

    prepared: Any  # pipeline.prepare.Prepared: read, decoded and split once
    base: dict[str, Any]  # the resolved configuration as JSON: trial 0
    metric: str
    trials: int
    timeout: float | None
    jobs: int
    folder: Path
    name: str
    quiet: bool

    @property
    def train_rows(self) -> int:
        return len(self.prepared.splits.train)

    def trial_config(self, changes: dict[str, Any], label: str) -> Config:
        trial_config = Config.validate_dict(apply(self.base, changes), source=label)
        trial_config.model.ensemble_size = 1  # trials compare architectures; the winner is trained as the preset says
        return trial_config


def _tune_here(search: Search, storage: str | None) -> tuple[pd.DataFrame, dict[str, Any], float]:
    """Optuna in this process (`jobs` threads); the study in SQLite (or `storage`), so a search resumes."""
    from deepwell.pipeline.fit import fit

    optuna = _optuna()
    metric, name = search.metric, search.name
    url = storage or f"sqlite:///{(search.folder / 'study.db').resolve()}"
    with warnings.catch_warnings():  # the heartbeat (stale trials of killed workers fail) is "experimental"
        warnings.simplefilter("ignore")
        database = optuna.storages.RDBStorage(url, heartbeat_interval=10, grace_period=30)
    study = optuna.create_study(
        study_name=name, storage=database,
        load_if_exists=True, direction="maximize" if higher_is_better(metric) else "minimize",
        sampler=optuna.samplers.TPESampler(seed=search.prepared.config.training.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=3))
    if not study.trials:
        study.enqueue_trial(defaults(search.base, search.train_rows), user_attrs={"origin": "given configuration"})

    def objective(trial) -> float:
        trial_config = search.trial_config(suggest(trial, search.base, search.train_rows), f"trial {trial.number}")
        started = time.perf_counter()
        fitted = fit(trial_config, search.prepared.splits, callbacks=[PruneTrial(trial, metric)])
        trial.set_user_attr("parameters", fitted.network.parameter_count())
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        if fitted.result.stop_reason == StopReason.PRUNED:
            raise optuna.TrialPruned()
        return fitted.best_validation(metric)

    finished = sum(t.state.name in FINISHED for t in study.trials)
    remaining = max(0, search.trials - finished)
    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=search.timeout, n_jobs=search.jobs,
                       catch=(RuntimeError, MemoryError),  # e.g. a trial too large for the GPU: recorded, skipped
                       show_progress_bar=not search.quiet)
    table = trials_table(study, metric)
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        table.to_csv(search.folder / "trials.csv", index=False)
        raise ConfigError(f"No trial of study {name!r} finished; see {search.folder / 'trials.csv'}.")
    return table, dict(study.best_trial.params), float(study.best_trial.value)


def trials_table(study, metric: str) -> pd.DataFrame:
    rows = []
    for trial in study.trials:
        rows.append({"trial": trial.number, "state": trial.state.name.lower(),
                     f"validation_{metric}": trial.value if trial.value is not None else
                     (max(trial.intermediate_values.items())[1] if trial.intermediate_values else None),
                     "parameters": trial.user_attrs.get("parameters"), "seconds": trial.user_attrs.get("seconds"),
                     "epochs": len(trial.intermediate_values), **trial.params})
    return pd.DataFrame(rows)


def plot_trials(table: pd.DataFrame, metric: str, path: Path) -> None:
    from deepwell.reports.plots import save, trials_scatter

    save(trials_scatter(table, metric), path)
