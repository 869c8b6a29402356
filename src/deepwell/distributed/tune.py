"""`deepwell tune … --backend ray`: the same search spread over a Ray cluster by Ray Tune.

The search space is the local one (tuning/space.suggest, define-by-run) through Ray Tune's Optuna searcher, the
given configuration first; each trial is the same `fit` on the same prepared split (sent once through the object
store), reporting every epoch; ASHA stops trials that fall behind (recorded as pruned). The trials table has the
local search's columns, so trials.csv, the plot, best.yaml and the retrained winner are the same.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from deepwell.config import ClusterConfig
from deepwell.errors import ConfigError
from deepwell.evaluation.results import higher_is_better
from deepwell.training.callbacks import Callback
from deepwell.tuning.space import defaults, suggest

BEST = "best_validation"  # the primary metric at the best epoch so far (what a local trial's value is)
GRACE_EPOCHS = 3  # ASHA compares a trial with others only after this many epochs


class ReportToTune(Callback):
    """Each epoch to Ray Tune: the metric at the best epoch so far (the best epoch is chosen by the monitored
    value, as a local trial's), and the epoch."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def on_epoch_end(self, trainer: Any, epoch: Any) -> None:
        from ray import tune

        result = trainer.result
        best = result.history[result.best_epoch - 1].validation[self.metric] if result.best_epoch else None
        tune.report({BEST: float(best if best is not None else epoch.validation[self.metric]),
                     "epoch": epoch.epoch, "finished": 0})


def run_trial(params: dict[str, Any], search: Any) -> None:
    """One trial, on whichever node Ray Tune placed it."""
    import optuna
    from ray import tune

    from deepwell.pipeline.fit import fit

    started = time.perf_counter()
    changes = suggest(optuna.trial.FixedTrial(params), search.base, search.train_rows)
    config = search.trial_config(changes, "a Ray Tune trial")
    config.training.threads = 1
    fitted = fit(config, search.prepared.splits, callbacks=[ReportToTune(search.metric)])
    tune.report({BEST: fitted.best_validation(search.metric), "epoch": len(fitted.result.history), "finished": 1,
                 "parameters": fitted.network.parameter_count(), "seconds": round(time.perf_counter() - started, 2)})


def tune_on_ray(search: Any, address: str | None) -> tuple[pd.DataFrame, dict[str, Any], float]:
    from deepwell.distributed.cluster import connect

    connect(ClusterConfig(backend="ray", address=address, workers=search.jobs))
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    mode = "max" if higher_is_better(search.metric) else "min"

    searcher = OptunaSearch(_Space(search.base, search.train_rows), metric=BEST, mode=mode,
                            seed=search.prepared.config.training.seed,
                            points_to_evaluate=[defaults(search.base, search.train_rows)])
    epochs = search.prepared.config.training.epochs
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(run_trial, search=search), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=search.trials, max_concurrent_trials=search.jobs,
                                    time_budget_s=search.timeout, scheduler=ASHAScheduler(
                                        time_attr="epoch", metric=BEST, mode=mode, max_t=epochs + 1,
                                        grace_period=min(GRACE_EPOCHS, epochs))),
        run_config=tune.RunConfig(name=search.name, storage_path=str((search.folder / "ray").resolve()), verbose=0))
    results = tuner.fit()
    table = _table(results, search.metric)
    complete = table[table["state"] == "complete"]
    if complete.empty:
        table.to_csv(search.folder / "trials.csv", index=False)
        raise ConfigError(f"No trial of study {search.name!r} finished on Ray; see {search.folder / 'trials.csv'}.")
    best = complete[f"validation_{search.metric}"].idxmax() if mode == "max" else \
        complete[f"validation_{search.metric}"].idxmin()
    params = {k: v for k, v in table.loc[best].items() if k in results[int(best)].config}
    return table, params, float(table.loc[best, f"validation_{search.metric}"])


class _Space:
    """The local search's parameters, define-by-run (a module-level class: Ray Tune pickles its searcher)."""

    def __init__(self, base: dict[str, Any], train_rows: int) -> None:
        self.base, self.train_rows = base, train_rows

    def __call__(self, trial: Any) -> None:
        suggest(trial, self.base, self.train_rows)


def _table(results: Any, metric: str) -> pd.DataFrame:
    """One row per trial, the local search's columns: trial, state, validation metric, parameters, seconds,
    epochs, then the trial's parameters."""
    rows = []
    for number, result in enumerate(results):
        last = result.metrics or {}
        state = "fail" if result.error else "complete" if last.get("finished") else "pruned"
        rows.append({"trial": number, "state": state, f"validation_{metric}": last.get(BEST),
                     "parameters": last.get("parameters"), "seconds": last.get("seconds"),
                     "epochs": last.get("epoch"), **result.config})
    return pd.DataFrame(rows)
