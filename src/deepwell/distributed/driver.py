"""The Ray driver of one distributed fit, in a child process of `deepwell train`: `python -m
deepwell.distributed.driver JOB_FOLDER MESSAGE_FD`.

Ray ends a driver process outright when its cluster's head is lost; kept in a child, that leaves the run's own
process standing to say so and to leave a resumable run folder (distributed/train.py). The child reads the job
(tensors in safetensors, or a streamed table's chunk files; settings in JSON), joins the cluster, runs Ray
Train, writes the last checkpoint where the job says, and sends rank 0's progress to its parent as JSON lines on
MESSAGE_FD.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from safetensors.torch import load_file

from deepwell.config import Config
from deepwell.distributed.worker import CHECKPOINT_FILE, WorkerJob, train_worker
from deepwell.training.trainer import TensorData

JOB_FILE, TRAIN_FILE, VALIDATION_FILE = "job.json", "train.safetensors", "validation.safetensors"


def read_tensors(path: Path) -> TensorData:
    tensors = load_file(str(path))
    inputs = {k[len("input."):]: v for k, v in tensors.items() if k.startswith("input.")}
    return TensorData(inputs, tensors["target"], tensors.get("weight"))


def tensor_file(data: TensorData) -> dict[str, Any]:
    tensors = {f"input.{k}": v.contiguous() for k, v in data.inputs.items()}
    tensors["target"] = data.target.contiguous()
    if data.weight is not None:
        tensors["weight"] = data.weight.contiguous()
    return tensors


def main(folder: Path, messages: IO[str]) -> None:
    from deepwell.distributed.cluster import connect
    from deepwell.features.pipeline import Preprocessor

    job = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    config = Config.model_validate(job["config"])
    preprocessor = Preprocessor.from_state(json.loads(job["preprocessor"]))
    send = _Sender(messages)
    send({"kind": "connected", "where": connect(config.cluster)})
    from ray.util.queue import Queue

    queue = Queue(actor_options={"num_cpus": 0})
    start = Path(job["start"]).read_bytes() if job["start"] else None
    chunks = job.get("chunks")
    work = WorkerJob(job["config"], preprocessor.encoder_specs(), preprocessor.target, job["outputs"],
                     job["class_weights"], start, queue,
                     streamed=None if chunks is None else {"train": job["rows"]["train"] // config.cluster.workers,
                                                           "validation": job["rows"]["validation"]})
    forward = threading.Thread(target=_forward, args=(queue, send), daemon=True)
    forward.start()
    result = _run(config, work, _datasets(folder, chunks), job["storage"])
    if result.checkpoint is None:
        raise RuntimeError("Ray Train ended without a checkpoint: no epoch finished.")
    with result.checkpoint.as_directory() as saved:
        shutil.copyfile(Path(saved) / CHECKPOINT_FILE, job["kept"])
    queue.put(("done",))
    forward.join(timeout=30)


def _datasets(folder: Path, chunks: dict[str, list[str]] | None) -> dict[str, Any]:
    """The training and validation rows as Ray Datasets: from the job's tensors, or a streamed table's chunks."""
    from deepwell.distributed.shards import chunk_dataset, to_dataset

    if chunks is None:
        return {"train": to_dataset(read_tensors(folder / TRAIN_FILE)),
                "validation": to_dataset(read_tensors(folder / VALIDATION_FILE))}
    return {"train": chunk_dataset(chunks["train"], shuffled=True),
            "validation": chunk_dataset(chunks["validation"], shuffled=False)}


def _run(config: Config, job: WorkerJob, datasets: dict[str, Any], storage: str) -> Any:
    """Ray Train's fit: its Result (the last checkpoint persisted in `storage`)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    cluster = config.cluster
    trainer = TorchTrainer(
        train_worker, train_loop_config={"job": job},
        torch_config=TorchConfig(backend="nccl" if cluster.gpus_per_worker > 0 else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=cluster.workers, use_gpu=cluster.gpus_per_worker > 0,
            resources_per_worker={"CPU": cluster.cpus_per_worker,
                                  **({"GPU": cluster.gpus_per_worker} if cluster.gpus_per_worker else {})}),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        run_config=ray.train.RunConfig(
            name=f"deepwell-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}",
            storage_path=storage, failure_config=ray.train.FailureConfig(max_failures=cluster.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)))
    return trainer.fit()


class _Sender:
    def __init__(self, stream: IO[str]) -> None:
        self.stream, self.lock = stream, threading.Lock()

    def __call__(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.stream.write(json.dumps(message) + "\n")
            self.stream.flush()


def _forward(queue: Any, send: _Sender) -> None:
    """Rank 0's queue → the parent, until the fit is done or the cluster is gone."""
    from ray.util.queue import Empty

    while True:
        try:
            kind, *payload = queue.get(timeout=0.25)
        except Empty:
            continue
        except Exception:  # the queue's actor went with the cluster
            return
        if kind == "done":
            return
        send({"kind": kind, "payload": payload})


if __name__ == "__main__":
    import os

    with os.fdopen(int(sys.argv[2]), "w", encoding="utf-8") as out:
        try:
            main(Path(sys.argv[1]), out)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:  # the parent says what failed, with this line
            out.write(json.dumps({"kind": "error", "message": f"{type(exc).__name__}: {str(exc).strip()[:2000]}"})
                      + "\n")
            out.flush()
            sys.exit(1)
