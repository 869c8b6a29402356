"""`/metrics` in Prometheus' text format (prometheus-client): requests by route and status, latency per route,
rows per model call (micro-batches) and predicted classes. Each app has its own registry, so two servers in one
process (the tests) never share counts."""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class ServerMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("deepwell_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("deepwell_request_seconds", "Time to answer a request", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("deepwell_batch_rows", "Rows per model call (a micro-batch of requests)",
                                    buckets=ROW_BUCKETS, registry=self.registry)
        self.predicted = Counter("deepwell_predictions", "Rows predicted, by predicted class ('value' for "
                                 "regression)", ["label"], registry=self.registry)

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
