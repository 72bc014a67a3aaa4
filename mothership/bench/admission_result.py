"""Figures of `mothership bench admission`, computed from Prometheus text; no I/O here.

The API server's admission histograms are cumulative since it started, so the bench
scrapes ``/metrics`` before and after the burst of creates and works on the difference:
only the requests of the burst count. Quantiles are interpolated inside a bucket the way
Prometheus' ``histogram_quantile`` does, so the figures match a dashboard's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# The API server's, per admission webhook (labels name, type, operation, rejected).
ADMISSION = "apiserver_admission_webhook_admission_duration_seconds"
# The API server's, per CRD conversion call (labels crd_name, from/to_version, succeeded).
CONVERSION = "apiserver_crd_conversion_webhook_duration_seconds"
# The operator's own handling time, per endpoint (see mothership/webhooks/server.py).
OPERATOR = "mothership_webhook_duration_seconds"

# Issue 12's target: p99 <= 20 ms, i.e. at least 99 % of the requests within 20 ms. The API
# server's buckets jump from 25 ms to 100 ms, so its p99 above 25 ms is a coarse guess;
# the share within 20 ms says how far from the target a run is.
TARGET_SECONDS = 0.020

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = tuple[tuple[str, str], ...]


@dataclass
class Histogram:
    """One histogram series: cumulative bucket counts by upper bound, plus count and sum."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def __sub__(self, before: Histogram) -> Histogram:
        return Histogram(
            {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.count - before.count,
            self.total - before.total,
        )

    def __add__(self, other: Histogram) -> Histogram:
        bounds = set(self.buckets) | set(other.buckets)
        return Histogram(
            {le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in bounds},
            self.count + other.count,
            self.total + other.total,
        )

    def quantile(self, q: float) -> float:
        """``histogram_quantile(q)``: linear inside the bucket, NaN without observations.

        A quantile that falls into the ``+Inf`` bucket is reported as the highest finite
        bound, as Prometheus does: the histogram cannot say more.
        """
        bounds = sorted(self.buckets)
        if not bounds or self.count <= 0:
            return math.nan
        rank = q * self.buckets[bounds[-1]]
        lower, below = 0.0, 0.0
        for le in bounds:
            n = self.buckets[le]
            if n >= rank:
                if math.isinf(le):
                    return lower
                if n == below:
                    return le
                return lower + (le - lower) * (rank - below) / (n - below)
            lower, below = le, n
        return lower

    def share_within(self, bound: float) -> float:
        """The share of observations at most ``bound`` seconds (linear inside a bucket)."""
        bounds = sorted(self.buckets)
        if not bounds or self.count <= 0:
            return math.nan
        total = self.buckets[bounds[-1]]
        lower, below = 0.0, 0.0
        for le in bounds:
            n = self.buckets[le]
            if le >= bound:
                if math.isinf(le):
                    return below / total
                return (below + (n - below) * (bound - lower) / (le - lower)) / total
            lower, below = le, n
        return 1.0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count > 0 else math.nan


def parse(text: str, metric: str) -> dict[Labels, Histogram]:
    """Every series of histogram ``metric`` in Prometheus text, keyed by its labels
    (without ``le``)."""
    series: dict[Labels, Histogram] = {}
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, raw, value = match.groups()
        labels = dict(_LABEL.findall(raw or ""))
        le = labels.pop("le", None)
        hist = series.setdefault(tuple(sorted(labels.items())), Histogram())
        if name == f"{metric}_bucket" and le is not None:
            hist.buckets[float(le)] = float(value)
        elif name == f"{metric}_count":
            hist.count = float(value)
        elif name == f"{metric}_sum":
            hist.total = float(value)
    return series


def grouped(
    before: dict[Labels, Histogram],
    after: dict[Labels, Histogram],
    key: Callable[[dict[str, str]], str | None],
) -> dict[str, Histogram]:
    """The growth of each series between two scrapes, summed by ``key(labels)``.

    ``key`` returning None leaves a series out (another webhook, another CRD).
    """
    out: dict[str, Histogram] = {}
    for labels, hist in after.items():
        name = key(dict(labels))
        if name is None:
            continue
        delta = hist - before.get(labels, Histogram())
        if delta.count <= 0:
            continue
        out[name] = out[name] + delta if name in out else delta
    return out


def admission_key(prefix: str) -> Callable[[dict[str, str]], str | None]:
    """Groups the API server's admission series of our webhooks (names ending in
    ``prefix``) by webhook and operation, e.g. ``clusters.mutate CREATE``: the operator's
    own UPDATEs (its finalizer) pass the webhooks too and are told apart."""

    def key(labels: dict[str, str]) -> str | None:
        name = labels.get("name", "")
        if not name.endswith(prefix):
            return None
        return f"{name.removesuffix(prefix)} {labels.get('operation', '?')}"

    return key


def conversion_key(crd: str) -> Callable[[dict[str, str]], str | None]:
    """Groups the API server's conversion series of ``crd`` by direction."""

    def key(labels: dict[str, str]) -> str | None:
        if labels.get("crd_name") != crd:
            return None
        return f"convert {labels.get('from_version', '?')}->{labels.get('to_version', '?')}"

    return key


def operator_key(labels: dict[str, str]) -> str | None:
    return labels.get("endpoint")


@dataclass(frozen=True)
class Figures:
    """Request count and latency quantiles of one webhook, in seconds."""

    requests: int
    p50: float
    p95: float
    p99: float
    mean: float
    within_target: float  # share answered within TARGET_SECONDS

    @classmethod
    def of(cls, hist: Histogram) -> Figures:
        return cls(
            round(hist.count),
            hist.quantile(0.50),
            hist.quantile(0.95),
            hist.quantile(0.99),
            hist.mean,
            hist.share_within(TARGET_SECONDS),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "p50_ms": _ms(self.p50),
            "p95_ms": _ms(self.p95),
            "p99_ms": _ms(self.p99),
            "mean_ms": _ms(self.mean),
            "within_20ms_percent": None
            if math.isnan(self.within_target)
            else round(100 * self.within_target, 1),
        }


def figures(hists: dict[str, Histogram]) -> dict[str, Figures]:
    return {name: Figures.of(hist) for name, hist in sorted(hists.items())}


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 2)


@dataclass
class Run:
    """One burst of creates: how long it took and what the webhooks cost meanwhile."""

    label: str
    clusters: int
    seconds: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    apiserver: dict[str, Figures] = field(default_factory=dict)
    operator: dict[str, Figures] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.clusters / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "clusters": self.clusters,
            "seconds": round(self.seconds, 2),
            "objects_per_second": round(self.per_second, 1),
            "load_average": list(self.load),
            "apiserver": {k: v.as_dict() for k, v in self.apiserver.items()},
            "operator": {k: v.as_dict() for k, v in self.operator.items()},
        }


@dataclass
class Result:
    clusters: int
    client: str
    api_version: str
    reconcile: bool
    runs: list[Run] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clusters": self.clusters,
            "client": self.client,
            "api_version": self.api_version,
            "reconcile": self.reconcile,
            "runs": [r.as_dict() for r in self.runs],
        }

    def lines(self) -> list[str]:
        out = [
            f"clusters {self.clusters} ({self.api_version}) created with {self.client}, "
            f"operator reconciling: {'yes' if self.reconcile else 'no'}",
        ]
        for run in self.runs:
            load = " ".join(f"{x:.2f}" for x in run.load)
            out.append(
                f"{run.label:<28} {run.seconds:7.1f} s  {run.per_second:7.1f} objects/s  "
                f"(load average {load})"
            )
            out.extend(_table("API server", run.apiserver))
            out.extend(_table("operator", run.operator))
        return out


def _table(source: str, rows: dict[str, Figures]) -> Iterable[str]:
    if not rows:
        return []
    lines = [
        f"  {source + ' webhook':<34} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'mean ms':>8} {'<=20 ms':>8}"
    ]
    for name, f in rows.items():
        share = f"{'-':>8}" if math.isnan(f.within_target) else f"{100 * f.within_target:7.1f}%"
        lines.append(
            f"  {name:<34} {f.requests:>8} {_cell(f.p50)} {_cell(f.p95)} {_cell(f.p99)} "
            f"{_cell(f.mean)} {share}"
        )
    return lines


def _cell(seconds: float) -> str:
    return f"{'-':>8}" if math.isnan(seconds) else f"{seconds * 1000:8.1f}"
