"""Prometheus metrics of the operator: what it did, how long it took, what it wrote."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "mothership_reconciles_total", "Reconciles run, by kind and result", ["kind", "result"]
)
DURATION = Histogram(
    "mothership_reconcile_duration_seconds",
    "Time spent in one reconcile",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WRITES = Counter("mothership_writes_total", "Writes to the API server, by object kind", ["kind"])
QUEUE_DEPTH = Gauge("mothership_reconciles_in_flight", "Reconciles running or waiting for a lock")
