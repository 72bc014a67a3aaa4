"""CPU time of pods and their containers, as the kubelet measures it (its /stats/summary).

The same endpoint as podmemory.py: cumulative CPU seconds per cgroup, each figure with the
time cAdvisor took it. Two readings far enough apart give the average cores a pod used in
between, which is what "idle CPU of a control plane" means in `mothership bench density`.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mothership.bench.podmemory import summary_url
from mothership.testenv import health


@dataclass(frozen=True)
class CpuTime:
    seconds: float  # cumulative CPU time of the cgroup
    taken: datetime

    @classmethod
    def of(cls, stats: dict[str, Any] | None) -> CpuTime | None:
        if not stats or "usageCoreNanoSeconds" not in stats or not stats.get("time"):
            return None
        taken = datetime.fromisoformat(str(stats["time"]).replace("Z", "+00:00"))
        return cls(stats["usageCoreNanoSeconds"] / 1e9, taken)


@dataclass
class PodCpu:
    name: str
    pod: CpuTime | None
    containers: dict[str, CpuTime] = field(default_factory=dict)

    def taken_after(self, when: datetime) -> bool:
        figures = [*self.containers.values(), *([self.pod] if self.pod else [])]
        return bool(figures) and all(f.taken >= when for f in figures)


def cores_between(before: CpuTime | None, after: CpuTime | None) -> float | None:
    """Average cores used between two readings of one cgroup (None if not measurable)."""
    if before is None or after is None:
        return None
    elapsed = (after.taken - before.taken).total_seconds()
    if elapsed <= 0:
        return None
    return max(0.0, after.seconds - before.seconds) / elapsed


def parse_summary(summary: dict[str, Any], namespace: str) -> dict[str, PodCpu]:
    """The pods of one namespace in a kubelet stats summary, by pod name."""
    out = {}
    for pod in summary.get("pods") or []:
        ref = pod.get("podRef") or {}
        if ref.get("namespace") != namespace:
            continue
        containers = {}
        for c in pod.get("containers") or []:
            cpu = CpuTime.of(c.get("cpu"))
            if cpu is not None:
                containers[c["name"]] = cpu
        out[ref["name"]] = PodCpu(ref["name"], CpuTime.of(pod.get("cpu")), containers)
    return out


def read(api_url: str, node: str, namespace: str, tls: ssl.SSLContext) -> dict[str, PodCpu]:
    status, body = health.http_get(summary_url(api_url, node), tls, timeout=15.0)
    if status != 200:
        raise RuntimeError(f"GET {summary_url(api_url, node)}: {status} {body[:300]}")
    return parse_summary(json.loads(body), namespace)
