"""Every training run logged to MLflow: params, per-epoch metrics, test metrics, tags, the run folder, and
the model as an MLflow pyfunc model ("models from code", no pickled object).

Tracking is a guest: if MLflow is missing, the server unreachable or a call fails, training warns once and
goes on untracked. Nothing here may stop a run.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepwell.errors import warn
from deepwell.evaluation.results import RunMetrics
from deepwell.runs.layout import RunFolder

DEFAULT_HOME = Path("runs")  # the default folder of run folders; the default store sits inside it
STORE, ARTIFACTS = "mlflow.db", "mlartifacts"
DEFAULT_EXPERIMENT = "deepwell"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
NOT_LOGGED = {RunFolder.CHECKPOINT}  # resume state only; the model is logged as the MLflow model


@dataclass
class TrackingOptions:
    """Where and whether to track. `uri` None: $MLFLOW_TRACKING_URI, else a SQLite store beside the run folders
    (`<home>/mlflow.db`, artifacts in `<home>/mlartifacts`), so nothing lands in the working directory."""

    enabled: bool | None = None  # None: on, unless $DEEPWELL_TRACK is 0 / false / off
    uri: str | None = None
    experiment: str | None = None
    register: str | None = None  # a registered-model name: the run's model becomes a new version of it
    home: Path = DEFAULT_HOME  # the folder of run folders (train's --output)

    @property
    def explicit(self) -> bool:
        """The user asked for tracking by name, so a missing MLflow deserves a warning."""
        return bool(self.uri or self.register or self.experiment)

    def on(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        return os.environ.get("DEEPWELL_TRACK", "1").strip().lower() not in {"0", "false", "off", "no"}

    def resolved_uri(self) -> str:
        return self.uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(self.home / STORE).resolve()}"

    def artifact_location(self) -> str | None:
        """Where a new experiment keeps artifacts: beside a SQLite store's file (MLflow's own default would be
        ./mlruns in whatever folder the command runs from); a server decides for itself."""
        uri = self.resolved_uri()
        if not uri.startswith("sqlite:///"):
            return None
        return (Path(uri[len("sqlite:///"):]).parent / ARTIFACTS).resolve().as_uri()


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts → {"model.hidden_width": 256, …} (MLflow params and `compare` rows)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's info logs and download bars would interleave with deepwell's own progress output; and
    `mlflow.set_tracking_uri` writes $MLFLOW_TRACKING_URI, which must not outlive our call (a later run would
    take it for the user's choice)."""
    previous = logging.root.manager.disable
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")}
    logging.disable(logging.WARNING)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        logging.disable(previous)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _guarded(method: Callable) -> Callable:
    """Run a tracking step; on any failure warn once, stop tracking, and let training go on."""
    @functools.wraps(method)
    def wrapper(self: MlflowTracker, *args: Any, **kwargs: Any) -> Any:
        if not self.active:
            return None
        try:
            with warnings.catch_warnings(), quiet_mlflow():
                warnings.filterwarnings("ignore", module="mlflow")
                return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking must never break training
            self.active = False
            warn(f"MLflow tracking stopped ({self.uri}): {type(exc).__name__}: {exc}. Training goes on; the run "
                 "folder has everything.")
            return None
    return wrapper


class MlflowTracker:
    """One MLflow run mirroring one deepwell run folder."""

    def __init__(self, options: TrackingOptions) -> None:
        self.options, self.uri, self.artifacts = options, options.resolved_uri(), options.artifact_location()
        self.active, self.run_id, self.model_version = options.on(), None, None
        if not self.active:
            return
        try:
            import mlflow  # noqa: F401
        except ImportError:
            self.active = False
            if options.explicit:
                warn("MLflow is not installed (pip install 'deepwell[track]'); this run is not tracked.")
            return
        self.active = self._reachable()

    def _reachable(self) -> bool:
        if not self.uri.startswith(("http://", "https://")):
            return True
        try:  # one quick probe instead of MLflow's minutes of retries against a dead server
            urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=3).close()
            return True
        except (urllib.error.URLError, OSError, ValueError) as exc:
            warn(f"MLflow tracking server {self.uri} is unreachable ({exc}); training goes on untracked.")
            return False

    @_guarded
    def start(self, run: RunFolder, config: dict[str, Any], tags: dict[str, Any]) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        client = mlflow.MlflowClient(self.uri)
        name = self.options.experiment or DEFAULT_EXPERIMENT
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            name, artifact_location=self.artifacts)
        created = client.create_run(experiment_id, run_name=run.path.name,
                                    tags={k: str(v) for k, v in tags.items() if v is not None})
        self.run_id = created.info.run_id
        params = [mlflow.entities.Param(k, str(v)[:6000]) for k, v in flatten(config).items()]
        for start in range(0, len(params), 100):
            client.log_batch(self.run_id, params=params[start:start + 100])

    @_guarded
    def resume(self, run_id: str | None) -> None:
        """Go on logging into the MLflow run of the interrupted training (a new one if it had none)."""
        import mlflow

        if run_id is None:
            self.active = False
            return
        mlflow.set_tracking_uri(self.uri)
        mlflow.MlflowClient(self.uri).update_run(run_id, status="RUNNING")
        self.run_id = run_id

    @_guarded
    def log_epoch(self, row: dict[str, Any]) -> None:
        import mlflow

        epoch = int(row["epoch"])
        metrics = [mlflow.entities.Metric(k, float(v), 0, epoch) for k, v in row.items()
                   if k != "epoch" and isinstance(v, (int, float))]
        mlflow.MlflowClient(self.uri).log_batch(self.run_id, metrics=metrics)

    @_guarded
    def finish(self, run: RunFolder, metrics: RunMetrics | dict[str, float], verdict: str | None, status: str,
               pyfunc: bool = True) -> None:
        """Final metrics, the run folder's files, and the model: as an MLflow pyfunc model (a deepwell model
        folder), or (`pyfunc=False`: a generator folder) as plain artifacts under model/."""
        import mlflow

        client = mlflow.MlflowClient(self.uri)
        final = metrics.flat() if isinstance(metrics, RunMetrics) else metrics
        client.log_batch(self.run_id, metrics=[mlflow.entities.Metric(k, v, 0, 0) for k, v in final.items()])
        for item in sorted(run.path.iterdir()):
            if item.name in NOT_LOGGED or item == run.model:
                continue
            if item.is_dir():
                client.log_artifacts(self.run_id, str(item), f"run/{item.name}")
            else:
                client.log_artifact(self.run_id, str(item), "run")
        if not pyfunc:
            client.log_artifacts(self.run_id, str(run.model), "model")
            if verdict is not None:
                client.set_tag(self.run_id, "diagnosis", verdict)
            client.set_terminated(self.run_id, "FINISHED" if status == "finished" else "KILLED")
            return
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_CODE),
                                           artifacts={"deepwell_model": str(run.model)},
                                           pip_requirements=_requirements())
        if self.options.register:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                # MLflow prints "Successfully registered …" and "Created version …" itself
                version = mlflow.register_model(info.model_uri, self.options.register)
            self.model_version = int(version.version)
        if verdict is not None:
            client.set_tag(self.run_id, "diagnosis", verdict)
        client.set_terminated(self.run_id, "FINISHED" if status == "finished" else "KILLED")

    @_guarded
    def fail(self, error: str) -> None:
        import mlflow

        client = mlflow.MlflowClient(self.uri)
        client.set_tag(self.run_id, "error", error[:5000])
        client.set_terminated(self.run_id, "FAILED")

    def summary(self) -> dict[str, Any] | None:
        """What run.json records about tracking (None when the run was not tracked)."""
        if self.run_id is None:
            return None
        return {"uri": self.uri, "run_id": self.run_id, "registered_model": self.options.register,
                "model_version": self.model_version, "complete": self.active}


def _requirements() -> list[str]:
    import mlflow
    import torch

    from deepwell import __version__
    return [f"deepwell=={__version__}", f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]
