"""Memory of pods and their containers, as the kubelet measures it (its /stats/summary).

Read through the API server's node proxy, so it is the same figure `kubectl top` is built
on, taken from the containers' cgroups by the kubelet's cAdvisor. `rss` is anonymous
resident memory (cgroup `total_rss`), `working set` is usage minus inactive page cache
(what the kubelet evicts on). cAdvisor refreshes these every 10-15 s, so each figure
carries the time it was taken.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mothership.testenv import health

MIB = 1024 * 1024


@dataclass(frozen=True)
class Memory:
    rss_mib: float
    working_set_mib: float
    taken: datetime | None

    @classmethod
    def of(cls, stats: dict[str, Any] | None) -> Memory | None:
        if not stats or "rssBytes" not in stats:
            return None
        return cls(
            stats.get("rssBytes", 0) / MIB,
            stats.get("workingSetBytes", 0) / MIB,
            _time(stats.get("time")),
        )


@dataclass
class PodMemory:
    namespace: str
    name: str
    pod: Memory | None
    containers: dict[str, Memory] = field(default_factory=dict)

    def taken_after(self, when: datetime) -> bool:
        """Every container's figure (and the pod's, if given) was taken after `when`."""
        figures = [*self.containers.values(), *([self.pod] if self.pod else [])]
        return bool(self.containers) and all(
            m.taken is not None and m.taken >= when for m in figures
        )

    @property
    def rss_mib(self) -> float:
        """The pod cgroup's figure; the containers' sum if the kubelet gave none."""
        if self.pod is not None:
            return self.pod.rss_mib
        return sum(m.rss_mib for m in self.containers.values())

    @property
    def working_set_mib(self) -> float:
        if self.pod is not None:
            return self.pod.working_set_mib
        return sum(m.working_set_mib for m in self.containers.values())


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def summary_url(api_url: str, node: str) -> str:
    return f"{api_url}/api/v1/nodes/{node}/proxy/stats/summary"


def parse_summary(summary: dict[str, Any], namespace: str) -> dict[str, PodMemory]:
    """The pods of one namespace in a kubelet stats summary, by pod name."""
    out = {}
    for pod in summary.get("pods") or []:
        ref = pod.get("podRef") or {}
        if ref.get("namespace") != namespace:
            continue
        containers = {}
        for c in pod.get("containers") or []:
            mem = Memory.of(c.get("memory"))
            if mem is not None:
                containers[c["name"]] = mem
        out[ref["name"]] = PodMemory(
            namespace, ref["name"], Memory.of(pod.get("memory")), containers
        )
    return out


def read(api_url: str, node: str, namespace: str, tls: ssl.SSLContext) -> dict[str, PodMemory]:
    status, body = health.http_get(summary_url(api_url, node), tls, timeout=15.0)
    if status != 200:
        raise RuntimeError(f"GET {summary_url(api_url, node)}: {status} {body[:300]}")
    return parse_summary(json.loads(body), namespace)
