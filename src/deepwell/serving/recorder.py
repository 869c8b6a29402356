"""What the server remembers of each answered request, done off the serving path.

`Recorder.record` only puts the request on a bounded queue (when it is full the request is not recorded and
`deepwell_log_dropped_total` counts it: a request never waits for the log). One thread drains the queue: it
measures the rows (`monitoring.measures`), appends them to the request log, keeps the latest `window` rows, and
every `refresh_s` compares that window with the model's reference into the `/metrics` drift gauges.
`close()` (server shutdown, SIGTERM included) drains everything queued before it returns. A batch that cannot
be recorded (a full disk) is counted in `deepwell_log_errors_total` and the thread goes on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from deepwell.monitoring.drift import compare
from deepwell.monitoring.measures import Measurer, measure_predictions
from deepwell.serving.request_log import RequestLog

if TYPE_CHECKING:
    from deepwell.inference.predict import Predictions
    from deepwell.model import Model
    from deepwell.serving.metrics import ServerMetrics

_STOP = object()


@dataclass(frozen=True)
class Monitoring:
    log: Path | None = None  # the request log (None: no log)
    log_max_bytes: int = 100 * 2**20
    window: int = 5000  # latest rows the drift gauges are computed on
    refresh_s: float = 60.0  # how often the drift gauges are recomputed
    queue_size: int = 10_000  # requests waiting to be recorded at most


class Recorder:
    def __init__(self, model: Model, monitoring: Monitoring, metrics: ServerMetrics) -> None:
        self.model, self.monitoring, self.metrics = model, monitoring, metrics
        self.reference = model.reference
        vocabularies = self.reference.vocabularies if self.reference else {}
        self.measurer = Measurer(model.preprocessor, vocabularies)
        self.log = RequestLog(monitoring.log, monitoring.log_max_bytes) if monitoring.log else None
        self.window: deque[dict[str, Any]] = deque(maxlen=monitoring.window)
        self.queue: queue.Queue = queue.Queue(maxsize=monitoring.queue_size)
        self.thread = threading.Thread(target=self._run, name="deepwell-recorder", daemon=True)
        self.thread.start()

    def record(self, frame: pd.DataFrame, predictions: Predictions, seconds: float) -> None:
        try:
            self.queue.put_nowait((time.time(), seconds, frame, predictions))
        except queue.Full:
            self.metrics.log_dropped.inc()

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join()
        if self.log is not None:
            self.log.close()
            self.log = None

    def refresh(self) -> None:
        """The drift gauges from the latest rows (nothing without a reference profile or rows)."""
        if self.reference is None or not self.window:
            return
        report = compare(self.reference, pd.DataFrame.from_records(list(self.window)), "served requests")
        self.metrics.set_drift(report)

    def _run(self) -> None:
        due = time.monotonic() + self.monitoring.refresh_s
        stopping = False
        while not stopping:
            batch: list[tuple] = []
            try:
                item = self.queue.get(timeout=max(0.01, due - time.monotonic()))
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                    item = self.queue.get_nowait()
            except queue.Empty:
                pass
            if batch:
                try:
                    self._write(batch)
                except Exception:  # a row that cannot be measured or a full disk must not stop the server
                    self.metrics.log_errors.inc(len(batch))
            if time.monotonic() >= due or stopping:
                self.refresh()
                due = time.monotonic() + self.monitoring.refresh_s

    def _write(self, batch: list[tuple]) -> None:
        frames = [frame for _, _, frame, _ in batch]
        measured = self.measurer.inputs(pd.concat(frames, ignore_index=True))
        predicted = pd.concat([measure_predictions(self.model.task, p) for *_, p in batch], ignore_index=True)
        measures = pd.concat([measured, predicted], axis=1).to_dict("records")
        self.window.extend(measures)
        if self.log is None:
            return
        entries, start = [], 0
        for when, seconds, frame, predictions in batch:
            rows = len(frame)
            entries.append((when, seconds, frame.to_dict("records"), _outputs(self.model, predictions),
                            measures[start:start + rows]))
            start += rows
        self.log.append(entries)


def _outputs(model: Model, predictions: Predictions) -> list[dict[str, Any]]:
    if model.task.is_regression:
        return [{"prediction": float(v)} for v in predictions.predictions]
    classes = [str(c) for c in model.classes_]
    return [{"prediction": label, "probabilities": dict(zip(classes, map(float, row), strict=True))}
            for label, row in zip(predictions.predictions, predictions.outputs, strict=True)]
