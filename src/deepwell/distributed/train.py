"""One network trained by Ray Train (`cluster.backend: ray`): what `fit` calls instead of the local Trainer.

This process never imports Ray: it writes the job (the transformed rows, the settings) to a temporary folder and
starts the Ray driver as a child (distributed/driver.py), which sends the rows as Ray Datasets (the training rows
split into one shard per worker, the validation rows whole to each) and runs `worker.train_worker` on every worker
under DDP. Rank 0's epochs come back over a pipe to the callbacks here (progress bar, MLflow, the user's) as they
end; the last checkpoint lands in the run folder (what `--resume` continues from) and gives the network at its
best epoch. A driver that dies (Ray ends it when the head node is lost) leaves this process to say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepwell.config import Config
from deepwell.distributed.worker import CHECKPOINT_FILE, worker_training
from deepwell.errors import ConfigError, DeepwellError, DeepwellWarning
from deepwell.features.pipeline import Preprocessor
from deepwell.models.network import TabularNetwork
from deepwell.runtime import interrupt_handled
from deepwell.training.callbacks import Callback, EarlyStopping
from deepwell.training.chunks import ChunkData
from deepwell.training.state import EpochResult, FitResult, StopReason
from deepwell.training.trainer import TensorData, Trainer, auto_batch_size


def check_distributable(config: Config) -> None:
    """What does not run on Ray Train, said before anything is trained."""
    if config.fairness.mitigate == "reductions":
        raise ConfigError("fairness.mitigate: reductions trains many networks in this process; it does not run "
                          "with cluster.backend: ray (reweigh and threshold do).")


@dataclass
class RemoteTrainer:
    """What callbacks read from a trainer, for a fit running on Ray workers (they see rank 0's epochs)."""

    config: Any  # TrainingConfig
    steps_per_epoch: int
    result: FitResult = field(default_factory=FitResult)
    finished: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.result.history)

    def stop(self, reason: Any) -> None:
        warnings.warn(f"A callback asked training to stop ({reason}); a fit on Ray workers stops by its own early "
                      "stopping only.", DeepwellWarning, stacklevel=2)


def fit_on_ray(config: Config, preprocessor: Preprocessor, train: TensorData | ChunkData,
               validation: TensorData | ChunkData, outputs: int,
               callbacks: Sequence[Callback], class_weights: torch.Tensor | None,
               checkpoint: Path | None, resume: bool) -> tuple[TabularNetwork, FitResult, str]:
    """Train one network on the cluster; (network at its best epoch on this machine's CPU, result, device).
    Ray runs in a child process (distributed/driver.py): a lost cluster ends that process, not this one. A
    streamed table's chunks (ChunkData) are read by Ray Data tasks on this node and streamed to the workers."""
    _check_sizes(config, train)
    config = config.model_copy(deep=True)
    if config.training.batch_size == "auto":
        config.training.batch_size = auto_batch_size(len(train))
    storage, owned = _storage(config, checkpoint)
    kept = checkpoint if checkpoint is not None else Path(tempfile.mkdtemp(prefix="deepwell-ray-")) / CHECKPOINT_FILE
    relay = _Relay(callbacks, RemoteTrainer(config.training, _steps(config, len(train))))
    with tempfile.TemporaryDirectory(prefix="deepwell-ray-job-") as folder:
        _write_job(Path(folder), config, preprocessor, train, validation, outputs, class_weights, storage, kept,
                   start=checkpoint if resume and checkpoint is not None and checkpoint.is_file() else None)
        outcome = _drive(Path(folder), relay)
    if outcome.error is None and relay.error is not None:
        raise relay.error
    if outcome.error is not None:
        saved = _latest_saved(storage)
        if saved is not None and not outcome.interrupted:
            shutil.copyfile(saved, kept)
        if not (outcome.interrupted and kept.is_file()):
            raise DeepwellError(_failure_message(outcome.error, relay, kept if kept.is_file() else None))
    if owned and outcome.error is None:
        shutil.rmtree(storage, ignore_errors=True)
    network = TabularNetwork(preprocessor.encoder_specs(), config.model, outputs)
    local = Trainer(network, config.task, config.training, lambda *_: {},
                    callbacks=[EarlyStopping(config.training.patience)])
    result = local.load(kept)
    if outcome.interrupted:  # Ctrl-C: the best weights saved so far, as a local run keeps them
        interrupt_handled()
        result.stop_reason = StopReason.INTERRUPTED
    relay.finish(result)
    return network.cpu().eval(), result, "cpu"


def _check_sizes(config: Config, train: TensorData | ChunkData) -> None:
    workers = config.cluster.workers
    if isinstance(train, TensorData) and any(getattr(v, "lazy", False) for v in train.inputs.values()):
        raise ConfigError("files_in_memory: never (files decoded per batch) does not run with cluster.backend: ray; "
                          "set files_in_memory: always.")
    if len(train) < 2 * workers:
        raise ConfigError(f"cluster.workers: {workers} workers need at least {2 * workers} training rows; there "
                          f"are {len(train)}.")


def _write_job(folder: Path, config: Config, preprocessor: Preprocessor, train: TensorData | ChunkData,
               validation: TensorData | ChunkData, outputs: int, class_weights: torch.Tensor | None, storage: str,
               kept: Path, start: Path | None) -> None:
    """The job: the rows (tensors written here; a streamed table's chunk files named) and the settings."""
    from safetensors.torch import save_file

    from deepwell.distributed.driver import JOB_FILE, TRAIN_FILE, VALIDATION_FILE, tensor_file

    rows: dict[str, Any] = {}
    if isinstance(train, ChunkData) and isinstance(validation, ChunkData):
        rows = {"chunks": {"train": [str(f) for f in train.store.files],
                           "validation": [str(f) for f in validation.store.files]},
                "rows": {"train": len(train), "validation": len(validation)}}
    else:
        save_file(tensor_file(train), str(folder / TRAIN_FILE))
        save_file(tensor_file(validation), str(folder / VALIDATION_FILE))
    job = {**rows, "config": config.model_dump(mode="json"), "preprocessor": preprocessor.to_json(), "outputs": outputs,
           "class_weights": None if class_weights is None else class_weights.tolist(), "storage": storage,
           "kept": str(kept), "start": None if start is None else str(start)}
    (folder / JOB_FILE).write_text(json.dumps(job), encoding="utf-8")


@dataclass
class _Outcome:
    error: str | None = None  # why the driver ended without a model (its message, or its exit)
    interrupted: bool = False


def _drive(folder: Path, relay: _Relay) -> _Outcome:
    """Run the driver process, relaying its messages until it exits."""
    read, write = os.pipe()
    process = subprocess.Popen([sys.executable, "-m", "deepwell.distributed.driver", str(folder), str(write)],
                               pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=(folder / "driver.log").open("w"))
    os.close(write)
    outcome = _Outcome()
    relay.start()
    try:
        with os.fdopen(read, encoding="utf-8") as messages:
            for line in messages:
                message = json.loads(line)
                if message["kind"] == "error":
                    outcome.error = message["message"]
                elif message["kind"] == "connected":
                    relay.where = message["where"]
                else:
                    relay.show((message["kind"], *message["payload"]))
        code = process.wait()
    except KeyboardInterrupt:  # the driver got the same Ctrl-C: it stops Ray Train
        outcome.interrupted, outcome.error = True, "interrupted"
        code = _wait(process)
    finally:
        relay.close()
    if code != 0 and outcome.error is None:
        tail = (folder / "driver.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        outcome.error = f"the Ray driver process ended with exit code {code}" + (
            f" ({' / '.join(tail)})" if tail else "")
    return outcome


def _wait(process: subprocess.Popen) -> int:
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _steps(config: Config, rows: int) -> int:
    per_worker = worker_training(config, 0, config.cluster.workers, "cpu").training.batch_size
    return max(1, -(-(rows // config.cluster.workers) // int(per_worker)))


def _storage(config: Config, checkpoint: Path | None) -> tuple[str, bool]:
    """Where Ray persists checkpoints, and whether it is deepwell's own folder (removed after a finished fit)."""
    if config.cluster.storage:
        return config.cluster.storage, False
    if checkpoint is not None:
        return str((checkpoint.parent / "ray").resolve()), True
    return tempfile.mkdtemp(prefix="deepwell-ray-"), True


def _latest_saved(storage: str) -> Path | None:
    """After a failure: the newest checkpoint a worker persisted, when storage is a local folder."""
    root = Path(storage)
    if "://" in storage or not root.is_dir():
        return None
    files = sorted(root.glob(f"*/checkpoint_*/{CHECKPOINT_FILE}"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def _failure_message(error: str, relay: _Relay, kept: Path | None) -> str:
    epochs = relay.trainer.epochs_done
    resume = (f" The run folder keeps the last checkpoint saved ({kept}); continue with `deepwell train --resume "
              "RUN_FOLDER` (add --backend local to finish here)." if kept is not None else " No epoch was saved.")
    return (f"Training on the Ray cluster ({relay.where}) failed after {epochs} epoch(s) shown: "
            f"{error.splitlines()[0] if error else 'no reason given'}.{resume}")


class _Relay:
    """The driver's messages (rank 0's progress) to the callbacks in this process. A worker group restarted from
    its last checkpoint is counted; epochs already shown are not shown again."""

    def __init__(self, callbacks: Sequence[Callback], trainer: RemoteTrainer) -> None:
        self.callbacks, self.trainer = list(callbacks), trainer
        self.restarts, self.started = 0, False
        self.where = "not reached"
        self.error: Exception | None = None

    def start(self) -> None:
        self._call("on_fit_start")

    def close(self) -> None:
        if self.restarts:
            warnings.warn(f"Ray restarted the training workers {self.restarts} time(s) from their last checkpoint.",
                          DeepwellWarning, stacklevel=2)

    def finish(self, result: FitResult) -> None:
        self._call("on_fit_end", result)

    def show(self, message: tuple) -> None:
        try:
            self._show(message)
        except Exception as exc:  # a callback failed: raised once the driver is done
            self.error = self.error or exc

    def _show(self, message: tuple) -> None:
        kind, *payload = message
        if kind == "start":  # rank 0 began (again, after a worker died: from the last checkpoint)
            self.restarts += self.started
            self.started = True
            return
        if kind == "steps":
            for _ in range(payload[0]):
                self._call("on_train_batch_end", 0)
            return
        row, improved = payload
        epoch = EpochResult.from_row(row, improved=improved)
        if epoch.epoch <= self.trainer.epochs_done:  # already shown (a restarted group repeats nothing saved)
            return
        self.trainer.result.history.append(epoch)
        self._call("on_epoch_end", epoch)

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self.trainer, *args)
