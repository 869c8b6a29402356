"""`/metrics` in Prometheus' text format (prometheus-client): requests by route and status, latency per route,
rows per model call (micro-batches), predicted classes, the request log's losses, and drift per measure (PSI and
a 0/1 flag, refreshed by `recorder.py`). Each app has its own registry, so two servers in one
process (the tests) never share counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepwell.monitoring.drift import DriftReport

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class ServerMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("deepwell_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("deepwell_request_seconds", "Time to answer a request", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("deepwell_batch_rows", "Rows per model call (a micro-batch of requests)",
                                    buckets=ROW_BUCKETS, registry=self.registry)
        self.predicted = Counter("deepwell_predictions", "Rows predicted, by predicted class ('value' for "
                                 "regression)", ["label"], registry=self.registry)
        self.log_dropped = Counter("deepwell_log_dropped", "Requests not recorded because the recorder's queue "
                                   "was full", registry=self.registry)
        self.log_errors = Counter("deepwell_log_errors", "Requests that could not be recorded",
                                  registry=self.registry)
        self.drift_psi = Gauge("deepwell_drift_psi", "Population stability index of a measure over the latest "
                               "served rows against training", ["measure"], registry=self.registry)
        self.drift_flagged = Gauge("deepwell_drift_flagged", "1 when a measure has shifted or drifted from "
                                   "training", ["measure"], registry=self.registry)
        self.drift_errors = Counter("deepwell_drift_errors", "Refreshes of the drift gauges that failed",
                                    registry=self.registry)
        self.drift_rows = Gauge("deepwell_drift_rows", "Served rows the drift gauges were computed on",
                                registry=self.registry)

    def set_drift(self, report: DriftReport) -> None:
        self.drift_rows.set(report.rows)
        for measure in report.measures:
            if measure.psi is not None:
                self.drift_psi.labels(measure.measure).set(measure.psi)
            self.drift_flagged.labels(measure.measure).set(int(measure.status.flagged))

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, rows: int) -> None:
        self.batch_rows.observe(rows)

    def observe_predictions(self, labels: list[Any] | None, rows: int) -> None:
        if labels is None:
            self.predicted.labels("value").inc(rows)
            return
        for label in set(labels):
            self.predicted.labels(str(label)).inc(labels.count(label))

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
