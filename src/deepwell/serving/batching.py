"""Micro-batching: the rows of requests that arrive while the model is busy (or within `wait_s` of the first)
are predicted in one call, up to `max_rows`, so throughput grows with concurrency while a lone request waits for
nothing (`wait_s` 0, the default).

A batch whose prediction fails on one request's values (a `DeepwellError`) is predicted again request by
request, so only that request gets the error. Every request's frame holds exactly the model's input columns
(`Batcher.submit` checks them first), so frames concatenate without inventing missing values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import pandas as pd

from deepwell.errors import DeepwellError
from deepwell.inference.predict import Predictions


@dataclass
class _Pending:
    frame: pd.DataFrame
    future: asyncio.Future


class Batcher:
    def __init__(self, predict: Callable[[pd.DataFrame], Predictions], executor: Executor,
                 max_rows: int = 256, wait_s: float = 0.0, on_batch: Callable[[int], None] | None = None) -> None:
        """`on_batch(rows)` is told the size of each model call (the server's metrics)."""
        self.predict, self.executor, self.on_batch = predict, executor, on_batch
        self.max_rows, self.wait_s = max_rows, wait_s
        self.queue: asyncio.Queue[_Pending] | None = None
        self.worker: asyncio.Task | None = None

    async def submit(self, frame: pd.DataFrame) -> Predictions:
        if self.queue is None:  # created in the server's event loop, on the first request
            self.queue = asyncio.Queue()
            self.worker = asyncio.get_running_loop().create_task(self._serve())
        pending = _Pending(frame, asyncio.get_running_loop().create_future())
        await self.queue.put(pending)
        return await pending.future

    async def _serve(self) -> None:
        assert self.queue is not None
        while True:
            batch = await self._collect(await self.queue.get())
            await self._run(batch)

    async def _collect(self, first: _Pending) -> list[_Pending]:
        assert self.queue is not None
        batch, rows = [first], len(first.frame)
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while rows < self.max_rows:
            try:
                if self.queue.empty() and self.wait_s > 0:
                    left = deadline - asyncio.get_running_loop().time()
                    if left <= 0:
                        break
                    item = await asyncio.wait_for(self.queue.get(), left)
                else:
                    item = self.queue.get_nowait()
            except (asyncio.QueueEmpty, TimeoutError):
                break
            batch.append(item)
            rows += len(item.frame)
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        live = [p for p in batch if not p.future.done()]  # a timed-out request is no longer waited for
        if not live:
            return
        frame = pd.concat([p.frame for p in live], ignore_index=True) if len(live) > 1 else live[0].frame
        if self.on_batch is not None:
            self.on_batch(len(frame))
        try:
            predictions = await loop.run_in_executor(self.executor, self.predict, frame)
        except DeepwellError as exc:
            if len(live) == 1:
                _settle(live[0], exception=exc)
                return
            for pending in live:  # find whose values failed: each request alone
                await self._run([pending])
            return
        except Exception as exc:  # noqa: BLE001 — every waiting request learns of it; the loop goes on
            for pending in live:
                _settle(pending, exception=exc)
            return
        start = 0
        for pending in live:
            end = start + len(pending.frame)
            _settle(pending, result=_rows(predictions, start, end))
            start = end


def _rows(predictions: Predictions, start: int, end: int) -> Predictions:
    return Predictions(predictions.task, predictions.classes, predictions.outputs[start:end],
                       predictions.predictions[start:end], predictions.errors[start:end])


def _settle(pending: _Pending, result: Predictions | None = None, exception: BaseException | None = None) -> None:
    if pending.future.done():
        return
    if exception is not None:
        pending.future.set_exception(exception)
    else:
        pending.future.set_result(result)
