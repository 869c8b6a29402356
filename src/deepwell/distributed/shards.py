"""Transformed rows as Ray Datasets (each worker reads its own shard through Ray Data), and a shard as the
trainer's data: read whole into tensors, or (a streamed table's chunks) batch by batch as `ShardData`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deepwell.task import Task
from deepwell.training.chunks import TARGET, WEIGHT, Batch, StreamedData, read_chunk, widened
from deepwell.training.trainer import TensorData

BLOCK_ROWS = 65_536
SHUFFLE_BATCHES = 16  # a streamed shard's rows are shuffled within this many batches (and blocks come in random order)


def to_dataset(data: TensorData) -> Any:
    """One Ray Dataset of the network inputs, the encoded target and the row weights (blocks of BLOCK_ROWS rows);
    inputs of more than one dimension are Ray's tensor columns."""
    import pyarrow as pa
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    columns = {**data.inputs, TARGET: data.target, **({} if data.weight is None else {WEIGHT: data.weight})}

    def arrow(values: torch.Tensor) -> Any:
        array = values.cpu().numpy()
        return pa.array(array) if array.ndim == 1 else ArrowTensorArray.from_numpy(array)

    tables = [pa.table({key: arrow(values[start:start + BLOCK_ROWS]) for key, values in columns.items()})
              for start in range(0, len(data), BLOCK_ROWS)]
    return ray.data.from_arrow(tables)


def chunk_dataset(files: Sequence[str], shuffled: bool) -> Any:
    """A streamed table's chunk files (training/chunks.py) as a Ray Dataset, one block per chunk, read when a
    worker needs it by tasks on this node (where the files are; the blocks reach other nodes through Ray's object
    store). `shuffled`: the blocks in a new random order each epoch."""
    import ray
    import ray.data
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    dataset = ray.data.from_items([{"path": str(f)} for f in files], override_num_blocks=max(1, len(files)))
    dataset = dataset.map_batches(_read_chunks, batch_size=1, batch_format="numpy", scheduling_strategy=here)
    if shuffled:
        from ray.data._internal.random_config import RandomSeedConfig

        dataset = dataset.randomize_block_order(seed=RandomSeedConfig(seed=0, reseed_after_execution=True))
    return dataset


def _read_chunks(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    parts = [read_chunk(path) for path in batch["path"]]
    inputs = {k: torch.cat([p[0][k] for p in parts]).numpy() for k in parts[0][0]}
    columns = {**inputs, TARGET: torch.cat([p[1] for p in parts]).numpy()}
    if parts[0][2] is not None:
        columns[WEIGHT] = torch.cat([p[2] for p in parts]).numpy()
    return columns


def to_tensors(shard: Any) -> TensorData:
    """A worker's shard (a Ray DataIterator) read whole into tensors."""
    parts = list(shard.iter_batches(batch_size=None, batch_format="numpy"))
    if not parts:
        return TensorData({}, torch.zeros(0, dtype=torch.long))
    arrays = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    target = torch.from_numpy(arrays.pop(TARGET))
    weight = arrays.pop(WEIGHT, None)
    return TensorData({key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in arrays.items()}, target,
                      None if weight is None else torch.from_numpy(weight))


class ShardData(StreamedData):
    """A worker's shard of chunks (a Ray DataIterator) read batch by batch each epoch: memory stays at a few
    blocks and the shuffle buffer. `rows`: the shard's rows (Ray splits the training rows equally)."""

    def __init__(self, shard: Any, rows: int, device: torch.device | None = None) -> None:
        self.shard, self.rows, self.device = shard, rows, device or torch.device("cpu")

    def __len__(self) -> int:
        return self.rows

    def to(self, device: torch.device) -> ShardData:
        return ShardData(self.shard, self.rows, device)

    def epoch_batches(self, seed: int, batch_size: int) -> Iterator[Batch]:
        for batch in self._batches(batch_size, shuffle=(seed, batch_size * SHUFFLE_BATCHES)):
            yield self._split(batch)

    def outputs(self, network: nn.Module, task: Task) -> tuple[np.ndarray, torch.Tensor]:
        from deepwell.inference.network import network_outputs

        outs, targets = [], []
        for batch in self._batches(BLOCK_ROWS, shuffle=None):
            inputs, target, _ = self._split(batch, device=torch.device("cpu"))
            outs.append(network_outputs(network, inputs, task, self.device))
            targets.append(target)
        if not outs:
            return np.zeros((0,)), torch.zeros(0)
        return np.concatenate(outs), torch.cat(targets)

    def _batches(self, batch_size: int, shuffle: tuple[int, int] | None) -> Iterator[dict[str, torch.Tensor]]:
        seed, buffer = shuffle if shuffle is not None else (None, None)
        return self.shard.iter_torch_batches(batch_size=batch_size, device="cpu", local_shuffle_buffer_size=buffer,
                                             local_shuffle_seed=seed)

    def _split(self, batch: dict[str, torch.Tensor], device: torch.device | None = None) -> Batch:
        device = device or self.device
        target, weight = batch.pop(TARGET), batch.pop(WEIGHT, None)
        return ({k: widened(v).to(device) for k, v in batch.items()}, target.to(device),
                None if weight is None else weight.to(device))
