"""What `mothership bench provision` measured, as JSON and as tables. Pure.

Percentiles are nearest-rank: every figure printed is one that was measured.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from mothership.bench.floor import FloorRun
from mothership.bench.podmemory import PodMemory

PVC_SIZE = "1Gi"
CONTROL_PLANE = "control-plane"
CONTAINER_ORDER = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "konnectivity-server",
    "kine",
    "etcd",
)


class Storage(StrEnum):
    kine = "kine"
    etcd = "etcd"
    postgres = "postgres"
    mysql = "mysql"


class Output(StrEnum):
    table = "table"
    json = "json"


DATASTORE_LABELS = {
    Storage.kine: f"kine on SQLite, pvc persistence ({PVC_SIZE})",
    Storage.etcd: "managed etcd StatefulSet",
    Storage.postgres: "kine on PostgreSQL (private server, one database per Cluster)",
    Storage.mysql: "kine on MariaDB (private server, one database per Cluster)",
}


# --- figures ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
        "min": min(values),
        "mean": statistics.fmean(values),
    }


# What the watches see of each Cluster's control plane, in the order it happens:
# (attribute of ClusterTiming, label, JSON key of the seconds since apply).
MILESTONES = (
    ("pod_created", "apply -> pod created", "apply_to_pod_created_seconds"),
    ("pod_scheduled", "apply -> pod scheduled", "apply_to_pod_scheduled_seconds"),
    ("containers_running", "apply -> containers running", "apply_to_containers_running_seconds"),
    ("pod_ready", "apply -> pod Ready", "apply_to_pod_ready_seconds"),
    ("available", "apply -> Available", "apply_to_available_seconds"),
)


@dataclass
class ClusterTiming:
    """One Cluster's clock (monotonic seconds), filled in from the watches."""

    name: str
    applied: float | None = None
    pod_created: float | None = None  # the operator's part: certificates, Secrets, StatefulSet
    pod_scheduled: float | None = None  # PodScheduled: its claim is bound, a node chosen
    containers_running: float | None = None  # every container of the pod running
    pod_ready: float | None = None
    available: float | None = None
    available_at: datetime | None = None
    version: str = ""
    waiting_for: str = ""

    def since_apply(self, milestone: str) -> float | None:
        at = getattr(self, milestone)
        return None if self.applied is None or at is None else float(at) - self.applied

    @property
    def to_available(self) -> float | None:
        return self.since_apply("available")


@dataclass
class PodFigures:
    cluster: str
    component: str
    memory: PodMemory


@dataclass
class Result:
    clusters: int
    storage: Storage
    concurrency: int
    namespace: str
    mothership: str
    mothership_started: bool = False
    timings: list[ClusterTiming] = field(default_factory=list)
    all_applied_seconds: float = 0.0
    total_seconds: float = 0.0
    pods: list[PodFigures] = field(default_factory=list)
    floor_datastore: str = ""
    floor: list[FloorRun] = field(default_factory=list)
    cleaned_up: bool = False
    cleanup_seconds: float = 0.0

    @property
    def version(self) -> str:
        return ", ".join(sorted({t.version for t in self.timings if t.version}))

    def containers(self) -> list[str]:
        """Container names of every pod: the control plane's in its order, then the rest."""
        names = {c for p in self.pods for c in p.memory.containers}
        known = [c for c in CONTAINER_ORDER if c in names]
        return known + sorted(names - set(known))

    def as_dict(self) -> dict[str, Any]:
        milestones = {
            key: spread([x for t in self.timings if (x := t.since_apply(attr)) is not None])
            for attr, _label, key in MILESTONES
        }
        per_container: dict[str, dict[str, float]] = {}
        for name in self.containers():
            rss = [
                p.memory.containers[name].rss_mib for p in self.pods if name in p.memory.containers
            ]
            per_container[name] = spread(rss)
        return {
            "clusters": self.clusters,
            "storage": self.storage.value,
            "datastore": DATASTORE_LABELS[self.storage],
            "concurrency": self.concurrency,
            "namespace": self.namespace,
            "version": self.version,
            "mothership": {"name": self.mothership, "started_by_bench": self.mothership_started},
            **milestones,
            "all_applied_seconds": self.all_applied_seconds,
            "total_seconds": self.total_seconds,
            "per_cluster": [
                {
                    "name": t.name,
                    "version": t.version,
                    **{key: t.since_apply(attr) for attr, _label, key in MILESTONES},
                }
                for t in self.timings
            ],
            "pods": [
                {
                    "cluster": p.cluster,
                    "component": p.component,
                    "pod": p.memory.name,
                    "rss_mib": p.memory.rss_mib,
                    "working_set_mib": p.memory.working_set_mib,
                    "containers": {
                        name: {"rss_mib": m.rss_mib, "working_set_mib": m.working_set_mib}
                        for name in self.containers()
                        if (m := p.memory.containers.get(name))
                    },
                }
                for p in self.pods
            ],
            "container_rss_mib": per_container,
            "floor": {
                "what": "bare kube-apiserver started by hand: exec to /readyz ok, fresh datastore",
                "datastore": self.floor_datastore,
                "runs": [
                    {
                        "datastore_seconds": r.datastore_seconds,
                        "apiserver_seconds": r.apiserver_seconds,
                        "apiserver_rss_mib": r.apiserver_rss_mib,
                    }
                    for r in self.floor
                ],
                "apiserver_seconds": spread([r.apiserver_seconds for r in self.floor]),
                "datastore_and_apiserver_seconds": spread(
                    [r.datastore_seconds + r.apiserver_seconds for r in self.floor]
                ),
            },
            "cleanup": {"deleted": self.cleaned_up, "seconds": self.cleanup_seconds},
        }

    def print_tables(self, console: Console) -> None:
        data = self.as_dict()
        console.print(
            f"[bold]bench provision[/]: {self.clusters} Clusters, kubernetes {self.version or '?'}"
            f", {DATASTORE_LABELS[self.storage]}, {self.concurrency} applied at a time, "
            f"mothership {self.mothership!r} (namespace {self.namespace})",
            highlight=False,
        )
        summary = Table("seconds", "p50", "p95", "max", "min", title="time to serve")
        rows = [
            *((label, data[key]) for _attr, label, key in reversed(MILESTONES)),
            (
                f"floor: bare kube-apiserver exec -> /readyz ({self.floor_datastore}, "
                f"{len(self.floor)} runs)",
                data["floor"]["apiserver_seconds"],
            ),
            ("floor: datastore + kube-apiserver", data["floor"]["datastore_and_apiserver_seconds"]),
        ]
        for label, s in rows:
            summary.add_row(label, *(_num(s.get(k)) for k in ("p50", "p95", "max", "min")))
        console.print(summary)
        console.print(
            f"applied over {self.all_applied_seconds:.1f} s; all Available "
            f"{self.total_seconds:.1f} s after the first apply",
            highlight=False,
        )
        containers = self.containers()
        pods = Table(
            "cluster",
            "pod",
            "apply->Available s",
            "pod RSS MiB",
            "pod WS MiB",
            *(f"{c}\nRSS / WS" for c in containers),
            title="memory per pod and container (kubelet /stats/summary)",
        )
        timing = {t.name: t for t in self.timings}
        for p in self.pods:
            t = timing.get(p.cluster)
            pods.add_row(
                p.cluster,
                p.memory.name,
                _num(t.to_available if t and p.component == CONTROL_PLANE else None),
                f"{p.memory.rss_mib:.0f}",
                f"{p.memory.working_set_mib:.0f}",
                *(
                    f"{m.rss_mib:.0f} / {m.working_set_mib:.0f}"
                    if (m := p.memory.containers.get(c))
                    else ""
                    for c in containers
                ),
            )
        console.print(pods)
        floor = Table(
            "floor run",
            "datastore start s",
            "kube-apiserver exec -> /readyz s",
            "kube-apiserver RSS MiB at /readyz",
            title=f"floor on {self.floor_datastore}",
        )
        for i, r in enumerate(self.floor, start=1):
            floor.add_row(
                str(i),
                f"{r.datastore_seconds:.2f}",
                f"{r.apiserver_seconds:.2f}",
                f"{r.apiserver_rss_mib:.0f}",
            )
        if self.floor:
            console.print(floor)
        console.print(
            "clean-up: "
            + (
                f"every Cluster, pod, claim and volume gone after {self.cleanup_seconds:.1f} s"
                if self.cleaned_up
                else f"kept (--keep): namespace {self.namespace}"
            ),
            highlight=False,
        )


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"
