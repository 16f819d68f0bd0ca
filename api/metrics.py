"""Prometheus metrics, in a registry per app (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Request counts and latencies by route template, relocations by action, jobs by state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("geoalloc_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("geoalloc_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.relocations = Counter("geoalloc_relocations_total", "relocations applied", ["action"],
                                   registry=self.registry)
        self.batch_size = Histogram("geoalloc_relocation_batch_size", "relocations written per transaction",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.batch_seconds = Histogram("geoalloc_relocation_batch_seconds", "time to apply and commit one batch",
                                       buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
                                       registry=self.registry)
        self.jobs = Counter("geoalloc_jobs_total", "background jobs finished", ["kind", "status"],
                            registry=self.registry)
        self.jobs_running = Gauge("geoalloc_jobs_running", "background jobs running", registry=self.registry)

    def render(self) -> bytes:
        """The exposition text for /metrics."""
        return generate_latest(self.registry)
