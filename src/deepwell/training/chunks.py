"""Network inputs on disk, chunk by chunk: what training reads when the table does not fit in memory.

A `ChunkStore` is a folder of safetensors files, one per transformed batch of rows (the network's inputs, the
encoded target and any row weights), written once by the streaming pass (pipeline/streaming.py). `ChunkData`
gives the trainer the same things `TensorData` does — its length, an epoch's batches, every row's outputs —
while holding only a window of chunks in memory: each epoch reads the chunks in a seeded order, `window` at a
time, and shuffles the rows within the window (the local shuffle buffer of Ray Data and WebDataset). The next
window is read by a thread while the current one trains.

`StreamedData` is what the trainer asks of any data it does not hold whole: `ChunkData` here, and a Ray Train
worker's shard (distributed/worker.py `ShardData`).
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepwell.task import Task

TARGET, WEIGHT = "__target__", "__weight__"


class ChunkStore:
    """Appends chunks to `folder` (chunk_000000.safetensors, …); integers are stored as int32 where they fit."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []
        self.rows: list[int] = []

    def append(self, inputs: dict[str, torch.Tensor], target: torch.Tensor, weight: torch.Tensor | None) -> None:
        from safetensors.torch import save_file

        tensors = {**{k: _compact(v) for k, v in inputs.items()}, TARGET: target.contiguous()}
        if weight is not None:
            tensors[WEIGHT] = weight.contiguous()
        path = self.folder / f"chunk_{len(self.files):06d}.safetensors"
        save_file(tensors, str(path))
        self.files.append(path)
        self.rows.append(len(target))

    def __len__(self) -> int:
        return sum(self.rows)


def _compact(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dtype == torch.int64 and (not tensor.numel() or int(tensor.abs().max()) < 2**31):
        return tensor.to(torch.int32).contiguous()
    return tensor.contiguous()


def read_chunk(path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    target, weight = tensors.pop(TARGET), tensors.pop(WEIGHT, None)
    return tensors, target, weight  # ids stay int32 in memory; a batch is widened when it is taken


def widened(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.long() if tensor.dtype == torch.int32 else tensor


Batch = tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]
"""(inputs, encoded target, row weights or None)."""


class StreamedData(ABC):
    """Rows the trainer reads in passes instead of holding them: how many, an epoch's batches, every row's
    outputs."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def to(self, device: torch.device) -> StreamedData:
        """The same rows, batches delivered on `device`."""

    @abstractmethod
    def epoch_batches(self, seed: int, batch_size: int) -> Iterator[Batch]:
        """Every row once, in batches of `batch_size` (the last one may be smaller), in an order seeded by
        `seed`."""

    @abstractmethod
    def outputs(self, network: nn.Module, task: Task) -> tuple[np.ndarray, torch.Tensor]:
        """Every row's network outputs (eval mode) and encoded targets (on the CPU)."""


class ChunkData(StreamedData):
    """A ChunkStore as the trainer's data."""

    def __init__(self, store: ChunkStore, window: int = 4, device: torch.device | None = None) -> None:
        self.store, self.window, self.device = store, max(1, window), device or torch.device("cpu")

    def __len__(self) -> int:
        return len(self.store)

    def to(self, device: torch.device) -> ChunkData:
        return ChunkData(self.store, self.window, device)

    def epoch_batches(self, seed: int, batch_size: int
                      ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]]:
        """Every row once, in batches of `batch_size` (the last one smaller): chunks in a seeded order, rows
        shuffled within each window of chunks; a window's remainder goes into the next window's first batch."""
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self.store.files), generator=generator).tolist()
        windows = [order[i:i + self.window] for i in range(0, len(order), self.window)]
        carry: tuple | None = None
        for inputs, target, weight in _prefetched(self._window(w) for w in windows):
            if carry is not None:
                inputs, target, weight = _concat([carry, (inputs, target, weight)])
            rows = torch.randperm(len(target), generator=generator)
            whole = len(rows) - len(rows) % batch_size
            for start in range(0, whole, batch_size):
                yield self._batch(inputs, target, weight, rows[start:start + batch_size])
            rest = rows[whole:]
            carry = (_take(inputs, rest), target[rest], None if weight is None else weight[rest]) if len(rest) else None
        if carry is not None:
            yield self._batch(*carry, torch.arange(len(carry[1])))

    def _window(self, chunks: list[int]) -> Batch:
        return _concat([read_chunk(self.store.files[i]) for i in chunks])

    def _batch(self, inputs, target, weight, index: torch.Tensor):
        batch = {k: widened(v[index]).to(self.device) for k, v in inputs.items()}
        return batch, target[index].to(self.device), None if weight is None else weight[index].to(self.device)

    def targets(self) -> torch.Tensor:
        """Every row's encoded target, in store order (read alone from each chunk)."""
        from safetensors import safe_open

        parts = []
        for path in self.store.files:
            with safe_open(str(path), framework="pt") as chunk:
                parts.append(chunk.get_tensor(TARGET))
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def outputs(self, network: nn.Module, task: Task) -> tuple[np.ndarray, torch.Tensor]:
        """In store order."""
        from deepwell.inference.network import network_outputs

        outs, targets = [], []
        for path in self.store.files:
            inputs, target, _ = read_chunk(path)
            outs.append(network_outputs(network, {k: widened(v) for k, v in inputs.items()}, task, self.device))
            targets.append(target)
        if not outs:
            return np.zeros((0,)), torch.zeros(0)
        return np.concatenate(outs), torch.cat(targets)


def _take(inputs: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[index] for k, v in inputs.items()}


def _concat(parts: list[tuple]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    inputs = {k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]}
    weights = [p[2] for p in parts]
    return inputs, torch.cat([p[1] for p in parts]), None if weights[0] is None else torch.cat(weights)


def _prefetched(items: Iterator, ahead: int = 1) -> Iterator:
    """`items` produced by a thread one step ahead of the consumer (reading the next window while training);
    the thread stops when the consumer does."""
    buffer: queue.Queue = queue.Queue(maxsize=ahead)
    done, stop = object(), threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # raised again in the consumer
            put(exc)
        put(done)

    threading.Thread(target=produce, daemon=True).start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
