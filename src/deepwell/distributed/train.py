"""One network trained by Ray Train (`cluster.backend: ray`): what `fit` calls instead of the local Trainer.

The driver sends the transformed rows as Ray Datasets (the training rows split into one shard per worker, the
validation rows whole to each), runs `worker.train_worker` on every worker under DDP, relays rank 0's epochs to
the callbacks here (progress bar, MLflow, the user's) as they end, and finally reads the network at its best
epoch from the last checkpoint, which it also copies into the run folder (what `--resume` continues from).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepwell.config import Config
from deepwell.distributed.worker import CHECKPOINT_FILE, WorkerJob, train_worker
from deepwell.errors import ConfigError, DeepwellError, DeepwellWarning
from deepwell.features.pipeline import Preprocessor
from deepwell.models.network import TabularNetwork
from deepwell.runtime import interrupt_handled
from deepwell.training.callbacks import Callback, EarlyStopping
from deepwell.training.state import EpochResult, FitResult, StopReason
from deepwell.training.trainer import TensorData, Trainer, auto_batch_size


def check_distributable(config: Config, streamed: bool) -> None:
    """What does not run on Ray Train, said before anything is trained."""
    if config.fairness.mitigate == "reductions":
        raise ConfigError("fairness.mitigate: reductions trains many networks in this process; it does not run "
                          "with cluster.backend: ray (reweigh and threshold do).")
    if streamed:
        raise ConfigError("data.streaming: a streamed table trains from chunks on this machine's disk; with "
                          "cluster.backend: ray set data.streaming: never (Ray Data then shards the rows).")


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


def fit_on_ray(config: Config, preprocessor: Preprocessor, train: TensorData, validation: TensorData, outputs: int,
               callbacks: Sequence[Callback], class_weights: torch.Tensor | None,
               checkpoint: Path | None, resume: bool) -> tuple[TabularNetwork, FitResult, str]:
    """Train one network on the cluster; (network at its best epoch on this machine's CPU, result, device)."""
    from deepwell.distributed.cluster import connect

    cluster = config.cluster
    if any(getattr(v, "lazy", False) for v in train.inputs.values()):
        raise ConfigError("files_in_memory: never (files decoded per batch) does not run with cluster.backend: ray; "
                          "set files_in_memory: always.")
    if len(train) < 2 * cluster.workers:
        raise ConfigError(f"cluster.workers: {cluster.workers} workers need at least {2 * cluster.workers} "
                          f"training rows; there are {len(train)}.")
    where = connect(cluster)
    config = config.model_copy(deep=True)
    if config.training.batch_size == "auto":
        config.training.batch_size = auto_batch_size(len(train))
    start = checkpoint.read_bytes() if resume and checkpoint is not None and checkpoint.is_file() else None
    relay = _Relay(callbacks, RemoteTrainer(config.training, _steps(config, len(train))))
    job = WorkerJob(config.model_dump(mode="json"), preprocessor.encoder_specs(), preprocessor.target, outputs,
                    None if class_weights is None else class_weights.tolist(), start, relay.queue)
    storage, owned = _storage(config, checkpoint)
    kept = checkpoint if checkpoint is not None else Path(tempfile.mkdtemp(prefix="deepwell-ray-")) / CHECKPOINT_FILE
    relay.start()
    error: BaseException | None = None
    try:
        _copy_checkpoint(_run(config, job, train, validation, storage), kept)
    except BaseException as exc:  # the run folder keeps whatever was saved, for --resume
        error = exc
        if _latest_saved(storage) is not None:
            shutil.copyfile(_latest_saved(storage), kept)
    finally:
        relay.close()
    if error is None and relay.error is not None:
        raise relay.error
    if error is not None and not (isinstance(error, KeyboardInterrupt) and kept.is_file()):
        raise _failure(error, where, relay, kept if kept.is_file() else None) from error
    if owned:
        shutil.rmtree(storage, ignore_errors=True)
    network = TabularNetwork(preprocessor.encoder_specs(), config.model, outputs)
    local = Trainer(network, config.task, config.training, lambda *_: {},
                    callbacks=[EarlyStopping(config.training.patience)])
    result = local.load(kept)
    if error is not None:  # Ctrl-C: the best weights saved so far, as a local run keeps them
        interrupt_handled()
        result.stop_reason = StopReason.INTERRUPTED
    relay.finish(result)
    return network.cpu().eval(), result, "cpu"


def _steps(config: Config, rows: int) -> int:
    workers = config.cluster.workers
    per_worker = max(1, round(int(config.training.batch_size) / workers))
    return max(1, -(-(rows // workers) // per_worker))


def _storage(config: Config, checkpoint: Path | None) -> tuple[str, bool]:
    """Where Ray persists checkpoints, and whether it is deepwell's own folder (removed after a finished fit)."""
    if config.cluster.storage:
        return config.cluster.storage, False
    if checkpoint is not None:
        return str((checkpoint.parent / "ray").resolve()), True
    return tempfile.mkdtemp(prefix="deepwell-ray-"), True


def _run(config: Config, job: WorkerJob, train: TensorData, validation: TensorData, storage: str) -> Any:
    """Ray Train's fit: its Result (the last checkpoint persisted in `storage`)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from deepwell.distributed.shards import to_dataset

    cluster = config.cluster
    trainer = TorchTrainer(
        train_worker, train_loop_config={"job": job},
        torch_config=TorchConfig(backend="nccl" if cluster.gpus_per_worker > 0 else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=cluster.workers, use_gpu=cluster.gpus_per_worker > 0,
            resources_per_worker={"CPU": cluster.cpus_per_worker,
                                  **({"GPU": cluster.gpus_per_worker} if cluster.gpus_per_worker else {})}),
        datasets={"train": to_dataset(train), "validation": to_dataset(validation)},
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        run_config=ray.train.RunConfig(
            name=f"deepwell-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}",
            storage_path=storage, failure_config=ray.train.FailureConfig(max_failures=cluster.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)))
    return trainer.fit()


def _copy_checkpoint(result: Any, to: Path) -> None:
    """The last checkpoint's file, from wherever Ray keeps it (a shared folder, a bucket) to `to`."""
    if result.checkpoint is None:
        raise DeepwellError("Ray Train ended without a checkpoint: no epoch finished.")
    with result.checkpoint.as_directory() as folder:
        shutil.copyfile(Path(folder) / CHECKPOINT_FILE, to)


def _latest_saved(storage: str) -> Path | None:
    """After a failure: the newest checkpoint a worker persisted, when storage is a local folder."""
    root = Path(storage)
    if "://" in storage or not root.is_dir():
        return None
    files = sorted(root.glob(f"*/checkpoint_*/{CHECKPOINT_FILE}"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def _failure(error: BaseException, where: str, relay: _Relay, kept: Path | None) -> BaseException:
    if isinstance(error, (KeyboardInterrupt, DeepwellError)):
        return error
    epochs = relay.trainer.epochs_done
    resume = (f" The run folder keeps the checkpoint of epoch {epochs} ({kept}); continue with "
              "`deepwell train --resume RUN_FOLDER`." if kept is not None else " No epoch was saved.")
    return DeepwellError(f"Training on the Ray cluster ({where}) failed after {epochs} epoch(s): "
                         f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}."
                         f"{resume}")


class _Relay:
    """Rank 0's messages (a Ray queue) to the callbacks in this process, on a thread while Ray Train runs.
    A worker group restarted from its last checkpoint is counted."""

    def __init__(self, callbacks: Sequence[Callback], trainer: RemoteTrainer) -> None:
        from ray.util.queue import Queue

        self.callbacks, self.trainer = list(callbacks), trainer
        self.queue = Queue(actor_options={"num_cpus": 0})
        self.restarts, self.started = 0, False
        self.error: Exception | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="deepwell-ray-relay", daemon=True)

    def start(self) -> None:
        self._call("on_fit_start")
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        if self.restarts:
            warnings.warn(f"Ray restarted the training workers {self.restarts} time(s) from their last checkpoint.",
                          DeepwellWarning, stacklevel=2)

    def finish(self, result: FitResult) -> None:
        self._call("on_fit_end", result)

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while True:
            try:
                message = self.queue.get(timeout=0.25)
            except Empty:
                if self._done.is_set():
                    return
                continue
            except Exception:  # the queue's actor is gone with the cluster: nothing more will come
                return
            try:
                self._show(message)
            except Exception as exc:  # a callback failed: raised in the driver once Ray Train returns
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
