"""Transformed rows as a Ray Dataset (each worker reads its own shard through Ray Data) and back to tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepwell.training.trainer import TensorData

TARGET, WEIGHT = "__target__", "__weight__"
BLOCK_ROWS = 65_536


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
