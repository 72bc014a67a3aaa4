"""What `mothership bench density` measured, as JSON and as lines. Pure.

Percentiles are nearest-rank (provision_result.percentile): every figure printed is one
that was measured.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mothership.bench.provision_result import CONTAINER_ORDER, percentile

TARGET_CONTROL_PLANES = 30
TARGET_RSS_MIB = 160.0
TARGET_IDLE_CORES = 0.02


@dataclass(frozen=True)
class Sample:
    """One request of the steady load: which control plane, what, how long, whether it worked."""

    cluster: str
    path: str
    at: float  # monotonic time it finished
    seconds: float
    ok: bool


@dataclass
class Step:
    """The mothership with `serving` control planes, the newest just Available."""

    serving: int
    to_available: float | None  # apply -> Available of the newest; None: it never was
    requests: int = 0
    errors: int = 0
    p50: float = 0.0
    p99: float = 0.0
    worst_cluster: str = ""
    worst_p99: float = 0.0
    mem_available_mib: float = 0.0
    load1: float = 0.0

    @classmethod
    def of(
        cls,
        serving: int,
        to_available: float | None,
        samples: Sequence[Sample],
        mem_available_mib: float,
        load1: float,
    ) -> Step:
        step = cls(serving, to_available, mem_available_mib=mem_available_mib, load1=load1)
        step.requests = len(samples)
        step.errors = sum(1 for s in samples if not s.ok)
        times = [s.seconds for s in samples]
        if times:
            step.p50, step.p99 = percentile(times, 50), percentile(times, 99)
        per_cluster: dict[str, list[float]] = {}
        for s in samples:
            per_cluster.setdefault(s.cluster, []).append(s.seconds)
        if per_cluster:
            step.worst_cluster, worst = max(
                ((c, percentile(v, 99)) for c, v in per_cluster.items()), key=lambda x: x[1]
            )
            step.worst_p99 = worst
        return step


@dataclass
class ControlPlaneFigures:
    """One control-plane pod at rest: RSS (kubelet) and idle cores, whole pod and per container."""

    cluster: str
    rss_mib: float
    idle_cores: float | None
    container_rss_mib: dict[str, float] = field(default_factory=dict)
    container_idle_cores: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    namespace: str
    mothership: str
    max_clusters: int
    rate: float
    window: float
    p99_limit: float
    spec: dict[str, Any] = field(default_factory=dict)  # merged into every Cluster's spec
    mothership_started: bool = False
    steps: list[Step] = field(default_factory=list)
    limit: str = ""  # why the run stopped adding control planes
    idle_window: float = 0.0
    settle: float = 0.0  # seconds at rest before the idle window began
    control_planes: list[ControlPlaneFigures] = field(default_factory=list)
    cleaned_up: bool = False

    @property
    def serving_within_limit(self) -> int:
        """Control planes that were serving at the last step whose load met the limits."""
        good = [s.serving for s in self.steps if _within(s, self.p99_limit)]
        return max(good, default=0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["serving_within_limit"] = self.serving_within_limit
        out["per_control_plane"] = self.summary()
        return out

    def summary(self) -> dict[str, float]:
        rss = [c.rss_mib for c in self.control_planes]
        idle = [c.idle_cores for c in self.control_planes if c.idle_cores is not None]
        out: dict[str, float] = {}
        if rss:
            out |= {"rss_mib_p50": percentile(rss, 50), "rss_mib_max": max(rss)}
        if idle:
            out |= {"idle_cores_p50": percentile(idle, 50), "idle_cores_max": max(idle)}
        return out

    def lines(self) -> list[str]:
        out = [
            f"bench density on mothership {self.mothership!r} (namespace {self.namespace}): "
            "kubernetes-distribution Clusters on "
            + ("the storage of the spec below" if "storage" in self.spec else "kine/SQLite")
            + " added one after another, each "
            f"getting GET /readyz and LIST namespaces at {self.rate:g} request/s in turn; "
            f"every step measured over {self.window:g} s",
            *(
                [f"spec merged into every Cluster: {json.dumps(self.spec, sort_keys=True)}"]
                if self.spec
                else []
            ),
            "",
            f"{'serving':>7} {'to Available':>12} {'requests':>8} {'errors':>6} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'worst CP':>12} {'its p99 ms':>10} {'MemAvailable':>12} "
            f"{'load1':>5}",
        ]
        for s in self.steps:
            available = f"{s.to_available:.1f} s" if s.to_available is not None else "never"
            out.append(
                f"{s.serving:>7} {available:>12} {s.requests:>8} {s.errors:>6} "
                f"{s.p50 * 1000:>7.0f} {s.p99 * 1000:>7.0f} "
                f"{s.worst_cluster:>12} {s.worst_p99 * 1000:>10.0f} "
                f"{s.mem_available_mib / 1024:>9.1f} GiB {s.load1:>5.1f}"
            )
        mark = "met" if self.serving_within_limit >= TARGET_CONTROL_PLANES else "NOT met"
        out += [
            "",
            f"control planes serving with p99 <= {self.p99_limit:g} s and no errors: "
            f"{self.serving_within_limit} (target >= {TARGET_CONTROL_PLANES}: {mark})",
            f"stopped adding because: {self.limit}",
        ]
        out += self._rest_lines()
        if self.cleaned_up:
            out.append("the bench's Clusters and namespace were deleted")
        return out

    def _rest_lines(self) -> list[str]:
        if not self.control_planes:
            return []
        figures = self.summary()
        out = [
            "",
            f"per control plane at rest ({len(self.control_planes)} pods, no bench load, "
            f"CPU over {self.idle_window:g} s"
            + (f" after {self.settle:g} s at rest" if self.settle else "")
            + "; kubelet figures):",
        ]
        if "rss_mib_p50" in figures:
            mark = "met" if figures["rss_mib_max"] <= TARGET_RSS_MIB else "NOT met"
            out.append(
                f"  RSS p50 {figures['rss_mib_p50']:.0f} MiB, max {figures['rss_mib_max']:.0f} MiB "
                f"(target <= {TARGET_RSS_MIB:.0f} MiB: {mark})"
            )
        if "idle_cores_p50" in figures:
            mark = "met" if figures["idle_cores_max"] <= TARGET_IDLE_CORES else "NOT met"
            out.append(
                f"  idle CPU p50 {figures['idle_cores_p50'] * 100:.1f} % of a core, max "
                f"{figures['idle_cores_max'] * 100:.1f} % "
                f"(target <= {TARGET_IDLE_CORES * 100:.0f} %: {mark})"
            )
        out.append("  per container (p50 over the pods): RSS MiB / idle millicores")
        for name in _containers(self.control_planes):
            rss = [
                c.container_rss_mib[name]
                for c in self.control_planes
                if name in c.container_rss_mib
            ]
            cpu = [
                c.container_idle_cores[name]
                for c in self.control_planes
                if name in c.container_idle_cores
            ]
            rss_text = f"{statistics.median(rss):.0f}" if rss else "-"
            cpu_text = f"{statistics.median(cpu) * 1000:.1f}" if cpu else "-"
            out.append(f"    {name:<24} {rss_text:>5} / {cpu_text:>5}")
        return out


def _within(step: Step, p99_limit: float) -> bool:
    return step.to_available is not None and step.errors == 0 and step.p99 <= p99_limit


def _containers(planes: Sequence[ControlPlaneFigures]) -> list[str]:
    names = {n for c in planes for n in (*c.container_rss_mib, *c.container_idle_cores)}
    known = [n for n in CONTAINER_ORDER if n in names]
    return known + sorted(names - set(known))


def over_limit(step: Step, p99_limit: float, min_mem_available_mib: float) -> str:
    """Why this step ends the run ("" if it does not): the first limit it hit."""
    if step.to_available is None:
        return f"control plane {step.serving} did not become Available"
    if step.errors:
        return f"{step.errors} of {step.requests} requests failed with {step.serving} serving"
    if step.p99 > p99_limit:
        return (
            f"p99 {step.p99 * 1000:.0f} ms > {p99_limit * 1000:.0f} ms with {step.serving} "
            f"serving (worst: {step.worst_cluster}, {step.worst_p99 * 1000:.0f} ms)"
        )
    if step.mem_available_mib < min_mem_available_mib:
        return (
            f"the host's MemAvailable {step.mem_available_mib:.0f} MiB fell below "
            f"{min_mem_available_mib:.0f} MiB with {step.serving} serving"
        )
    return ""
