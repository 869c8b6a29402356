"""What each Ray Train worker runs: the local Trainer on its shard, its network under distributed data parallel.

Every worker validates the same weights on the whole validation split, so early stopping decides the same on
each and they stop together. Rank 0 alone saves checkpoints (Ray persists them; a restarted worker group resumes
from the latest) and sends each epoch to the driver, which shows it and logs it to MLflow.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepwell.config import Config
from deepwell.features.target import TargetEncoder
from deepwell.training.callbacks import Callback, EarlyStopping
from deepwell.training.checkpoint import save_checkpoint
from deepwell.training.state import EpochResult

CHECKPOINT_FILE = "checkpoint.safetensors"
STEP_REPORTS = 20  # step messages per epoch sent to the driver's progress bar


@dataclass
class WorkerJob:
    """Everything a worker needs besides its shard (sent once through Ray's object store)."""

    config: dict[str, Any]  # the member's Config as JSON; training.batch_size is the global batch
    specs: dict[str, dict[str, Any]]  # Preprocessor.encoder_specs()
    target: TargetEncoder
    outputs: int
    class_weights: list[float] | None
    start: bytes | None  # the run folder's checkpoint a resumed run continues from
    relay: Any  # ray.util.queue.Queue to the driver
    streamed: dict[str, int] | None = None  # a streamed table's shards, read batch by batch: rows per split each


def worker_training(config: Config, rank: int, world: int, device: str) -> Config:
    """The worker's copy: its share of the global batch (so steps per epoch and the schedule are a local run's),
    its own seed for shuffling and dropout, its device."""
    config = config.model_copy(deep=True)
    training = config.training
    training.batch_size = max(1, round(int(training.batch_size) / world))
    training.seed = training.seed + 7919 * rank
    training.device = "cuda" if device.startswith("cuda") else "cpu"
    training.threads = max(1, int(config.cluster.cpus_per_worker))
    return config


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train's train_loop_per_worker."""
    import ray.train
    import ray.train.torch

    from deepwell.models.network import TabularNetwork
    from deepwell.pipeline.fit import metric_fn
    from deepwell.runtime import use_threads
    from deepwell.training.trainer import Trainer

    job: WorkerJob = loop_config["job"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    config = worker_training(Config.model_validate(job.config), rank, world, str(ray.train.torch.get_device()))
    use_threads(config.training.threads)
    train, validation = (_shard(name, job.streamed) for name in ("train", "validation"))
    torch.manual_seed(job.config["training"]["seed"])  # DDP starts every worker from rank 0's weights anyway
    network = TabularNetwork(job.specs, config.model, job.outputs)
    weights = None if job.class_weights is None else torch.tensor(job.class_weights)
    report = ReportEpochs(rank, job.relay, config.cluster.checkpoint_seconds)
    trainer = Trainer(network, config.task, config.training, metric_fn(job.target), class_weights=weights,
                      callbacks=[EarlyStopping(config.training.patience), report],
                      parallel=ray.train.torch.prepare_model)
    with tempfile.TemporaryDirectory() as folder:
        trainer.fit(train, validation, resume_from=_start(Path(folder), job.start))


def _shard(name: str, streamed: dict[str, int] | None) -> Any:
    """This worker's rows of a split: in memory, or (a streamed table) read batch by batch each pass."""
    import ray.train

    from deepwell.distributed.shards import ShardData, to_tensors

    shard = ray.train.get_dataset_shard(name)
    return to_tensors(shard) if streamed is None else ShardData(shard, streamed[name])


def _start(folder: Path, start: bytes | None) -> Path | None:
    """The checkpoint to continue from: Ray's latest (a restarted worker group), else the resumed run's."""
    import ray.train

    path = folder / CHECKPOINT_FILE
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            path.write_bytes((Path(saved) / CHECKPOINT_FILE).read_bytes())
        return path
    if start is not None:
        path.write_bytes(start)
        return path
    return None


class ReportEpochs(Callback):
    """Each epoch to the driver (rank 0), and to Ray with a checkpoint after the first epoch, the last, and then
    at most every `seconds` (persisting costs a synchronisation of all workers and a copy to storage)."""

    def __init__(self, rank: int, relay: Any, seconds: float) -> None:
        self.rank, self.relay, self.seconds = rank, relay, seconds
        self.persisted: float | None = None  # when rank 0 last persisted a checkpoint (None: not yet)

    def on_fit_start(self, trainer: Any) -> None:
        if self.rank == 0:
            self.relay.put(("start", trainer.epochs_done))

    def on_train_batch_end(self, trainer: Any, step: int) -> None:
        every = max(1, trainer.steps_per_epoch // STEP_REPORTS)
        if self.rank == 0 and (step + 1) % every == 0:
            self.relay.put(("steps", every))

    def on_epoch_end(self, trainer: Any, epoch: EpochResult) -> None:
        import ray.train

        metrics = epoch.row()
        if self.rank == 0:
            self.relay.put(("epoch", metrics, epoch.improved))
        if not self._persist_now(trainer):
            return
        if self.rank != 0:
            ray.train.report(metrics, checkpoint=None)
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(Path(folder) / CHECKPOINT_FILE, trainer)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        self.persisted = time.monotonic()

    def _persist_now(self, trainer: Any) -> bool:
        """Rank 0 decides (the last epoch, the first, then every `seconds`) and tells the others: every worker
        reports to Ray together or none does."""
        import torch.distributed as dist

        due = trainer.finished or self.persisted is None or time.monotonic() - self.persisted >= self.seconds
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([int(due)])
            dist.broadcast(flag, src=0)
            due = bool(flag.item())
        return due
