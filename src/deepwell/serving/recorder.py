"""What the server remembers of each answered request, done off the serving path.

`Recorder.record` only puts the request on a bounded queue (when it is full the request is not recorded and
`deepwell_log_dropped_total` counts it: a request never waits for the log). One thread drains the queue every
half second, in chunks: it appends the requests' inputs (a file as its measures) and outputs to the request log
and keeps the latest `window` rows. Only every `refresh_s` are those rows measured, all together, and compared
with the model's reference into the `/metrics` drift gauges (measuring each request as it came cost a served
row 2.5 ms of shared CPU).
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
from deepwell.monitoring.measures import FILE_MEASURES, file_summary
from deepwell.monitoring.monitor import measure_logged
from deepwell.serving.request_log import RequestLog

if TYPE_CHECKING:
    from deepwell.inference.predict import Predictions
    from deepwell.model import Model
    from deepwell.serving.metrics import ServerMetrics

CHUNK = 4  # requests recorded between two pauses,
PAUSE_S = 0.001  # each a real sleep: time.sleep(0) hands the GIL back to a waiting serving thread too rarely


@dataclass(frozen=True)
class Monitoring:
    log: Path | None = None  # the request log (None: no log)
    log_max_bytes: int = 100 * 2**20
    window: int = 5000  # latest rows the drift gauges are computed on
    refresh_s: float = 60.0  # how often the drift gauges are recomputed
    flush_s: float = 0.5  # how often queued requests are recorded (in batches: far cheaper than one by one)
    queue_size: int = 10_000  # requests waiting to be recorded at most


class Recorder:
    def __init__(self, model: Model, monitoring: Monitoring, metrics: ServerMetrics) -> None:
        self.model, self.monitoring, self.metrics = model, monitoring, metrics
        self.reference = model.reference
        self.files = [f for f in model.preprocessor.features if f.type in FILE_MEASURES]
        self.log = RequestLog(monitoring.log, monitoring.log_max_bytes) if monitoring.log else None
        self.window: deque[tuple[dict[str, Any], dict[str, Any]]] = deque(maxlen=monitoring.window)
        self.queue: queue.Queue = queue.Queue(maxsize=monitoring.queue_size)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="deepwell-recorder", daemon=True)
        self.thread.start()

    def record(self, rows: list[dict[str, Any]], frame: pd.DataFrame, predictions: Predictions,
               seconds: float) -> None:
        """`rows` as the client sent them; `frame` the table predicted (a file column holds the files' bytes)."""
        try:
            self.queue.put_nowait((time.time(), seconds, rows, frame, predictions))
        except queue.Full:
            self.metrics.log_dropped.inc()

    def close(self) -> None:
        """Record everything queued, then close the log (the server calls it once no request is in flight)."""
        if self.thread.is_alive():
            self.stopping.set()
            self.thread.join()
        if self.log is not None:
            self.log.close()
            self.log = None

    def refresh(self) -> None:
        """The drift gauges from the latest rows (nothing without a reference profile or rows)."""
        if self.reference is None or not self.window:
            return
        inputs = pd.DataFrame.from_records([i for i, _ in self.window])
        measured = measure_logged(self.model, self.reference, inputs, [o for _, o in self.window])
        self.metrics.set_drift(compare(self.reference, measured, "served requests"))

    def _run(self) -> None:
        """Every `flush_s`, whatever is queued, in chunks with a pause between them: the thread shares the GIL
        with the serving threads, and a long stretch of measuring would sit on a request's latency."""
        refresh_due = time.monotonic() + self.monitoring.refresh_s
        while True:
            stopping = self.stopping.wait(self.monitoring.flush_s)
            pending = []
            while True:
                try:
                    pending.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            for start in range(0, len(pending), CHUNK):
                chunk = pending[start:start + CHUNK]
                try:
                    self._write(chunk)
                except Exception:  # a row that cannot be measured or a full disk must not stop the server
                    self.metrics.log_errors.inc(len(chunk))
                time.sleep(PAUSE_S)
            if stopping or time.monotonic() >= refresh_due:
                try:
                    self.refresh()
                except Exception:  # stale gauges, counted, rather than a recorder that stopped
                    self.metrics.drift_errors.inc()
                refresh_due = time.monotonic() + self.monitoring.refresh_s
            if stopping:
                return

    def _write(self, batch: list[tuple]) -> None:
        entries = []
        for when, seconds, inputs, frame, predictions in batch:
            if self.files:  # a file is kept as its measures, never its bytes
                summaries = {f.name: [file_summary(f, v) for v in frame[f.name]] for f in self.files}
                inputs = [{**row, **{name: values[i] for name, values in summaries.items()}}
                          for i, row in enumerate(inputs)]
            outputs = _outputs(self.model, predictions)
            self.window.extend(zip(inputs, outputs, strict=True))
            entries.append((when, seconds, inputs, outputs))
        if self.log is not None:
            self.log.append(entries)


def _outputs(model: Model, predictions: Predictions) -> list[dict[str, Any]]:
    if model.task.is_regression:
        return [{"prediction": float(v)} for v in predictions.predictions]
    classes = [str(c) for c in model.classes_]
    return [{"prediction": label, "probabilities": dict(zip(classes, map(float, row), strict=True))}
            for label, row in zip(predictions.predictions, predictions.outputs, strict=True)]
