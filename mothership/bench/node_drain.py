"""`mothership bench chaos --node-drain`: a node of the mothership drained under a tenant.

What a platform does to its nodes every week (a kernel update, a node replaced) must not
cost its tenants their API. On the real-node local mothership the bench adds a second node
(testenv/extra_node.py, a kubelet in a machine of its own), creates a three-replica
kubernetes-distribution Cluster on kine/PostgreSQL (a private server the bench starts),
whose rendered anti-affinity spreads the replicas over both nodes, and runs `kubectl drain`
on the second node while a steady stream of ConfigMap creates goes through the tenant's
kubeconfig. The drain evicts one replica at a time as the Cluster's PodDisruptionBudget
allows; the evicted replicas come back on the first node. Every acknowledged write must be
there at the end, at most a few writes may fail while replicas move, and the second node
is removed again with everything it had.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mothership.bench import provision as bench_provision
from mothership.bench import tenant_writes
from mothership.bench.chaos_result import table
from mothership.bench.postgres_tenant import postgres_tenant
from mothership.errors import MissingPrerequisite

Report = Callable[[str], None]
SECOND_NODE = "mothership-node-2"
REPLICAS = 3
# Writes that may fail while a replica moves: the API servers leave their Service before
# they stop (shutdown delay, preStop), so none should; a busy host may cut one or two off.
FAILED_WRITES_ALLOWED = 0.02


@dataclass
class Drain:
    """What draining one node under a three-replica control plane did to the tenant."""

    node: str = SECOND_NODE
    placement_before: dict[str, str] = field(default_factory=dict)  # pod -> node
    placement_after: dict[str, str] = field(default_factory=dict)
    drained_seconds: float | None = None  # `kubectl drain` start -> it returned
    recovered_seconds: float | None = None  # drain start -> all replicas ready elsewhere
    acknowledged: int = 0
    failed: int = 0
    last_error: str = ""
    lost: list[str] = field(default_factory=list)

    @property
    def moved(self) -> list[str]:
        return sorted(p for p, n in self.placement_before.items() if n == self.node)

    def failures(self) -> list[str]:
        out = []
        if not self.moved:
            out.append(f"drain: no replica ran on {self.node} (the fault missed)")
        if self.drained_seconds is None:
            out.append(f"drain: `kubectl drain {self.node}` did not finish")
        if self.recovered_seconds is None:
            out.append(f"drain: not {REPLICAS} ready replicas off {self.node} again")
        writes = self.acknowledged + self.failed
        if writes and self.failed > FAILED_WRITES_ALLOWED * writes:
            out.append(
                f"drain: {self.failed} of {writes} writes failed (at most "
                f"{FAILED_WRITES_ALLOWED:.0%}; the last: {self.last_error})"
            )
        out += [f"drain: acknowledged write lost: {name}" for name in self.lost]
        return out

    def rows(self) -> list[tuple[str, str]]:
        def seconds(value: float | None) -> str:
            return "- (never)" if value is None else f"{value:.1f} s"

        nodes = sorted(set(self.placement_before.values()))
        return [
            (
                "node drain fault",
                f"`kubectl drain {self.node}` under {REPLICAS} replicas on "
                f"{len(nodes)} nodes, {len(self.moved)} of them on the drained node",
            ),
            ("node drained in", seconds(self.drained_seconds)),
            (
                "drain time to recover",
                f"{seconds(self.recovered_seconds)} (drain start -> {REPLICAS} replicas "
                "ready, none on the drained node)",
            ),
            (
                "drain tenant writes",
                f"{self.acknowledged} acknowledged, {self.failed} failed while replicas moved",
            ),
            ("drain tenant writes lost", f"{len(self.lost)} of {self.acknowledged} acknowledged"),
        ]

    def lines(self) -> list[str]:
        return table(self.rows(), self.failures(), "drain invariants")


def run(name: str, state_dir: Path | None, timeout: float, report: Report) -> Drain:
    """On the real-node mothership `name` (started for the run when none is up)."""
    with bench_provision.realnode_mothership(name, state_dir, report, timeout) as (ms, _):
        return on(ms, timeout, report)


def on(ms: Any, timeout: float, report: Report) -> Drain:
    """The drain on a running real-node mothership whose operator reconciles Clusters."""
    from mothership.testenv import extra_node

    if extra_node.find(ms.cfg, SECOND_NODE) is not None:
        raise MissingPrerequisite(
            f"the mothership has a node {SECOND_NODE} already (a bench left behind?): "
            f"remove it with `mothership dev node delete {SECOND_NODE}`"
        )
    report(f"adding node {SECOND_NODE} in a machine of its own")
    node = extra_node.start(ms.cfg, SECOND_NODE, report, timeout=timeout)
    try:
        with postgres_tenant(ms, "drain", "drain", REPLICAS, timeout, report) as tenant:
            return _drain(ms, tenant.kc, tenant.namespace, tenant.cluster, timeout, report)
    finally:
        report(f"removing node {SECOND_NODE}")
        extra_node.stop(ms.cfg, node, report)


def _placement(kc: Any, namespace: str, cluster: str) -> dict[str, str]:
    from lightkube.resources.core_v1 import Pod

    from mothership.render import names

    return {
        p.metadata.name: p.spec.nodeName or ""
        for p in kc.list(Pod, namespace=namespace, labels=names.selector(cluster))
        if p.metadata.deletionTimestamp is None
    }


def _ready(kc: Any, namespace: str, cluster: str) -> int:
    from lightkube.resources.apps_v1 import StatefulSet

    from mothership.render import names

    sts = kc.get(StatefulSet, names.statefulset(cluster), namespace=namespace)
    return int((sts.status and sts.status.readyReplicas) or 0)


def _drain(ms: Any, kc: Any, namespace: str, cluster: str, timeout: float, report: Report) -> Drain:
    from mothership.testenv import kube

    result = Drain()
    kube.wait_until(
        f"{REPLICAS} ready replicas", lambda: _ready(kc, namespace, cluster) == REPLICAS, timeout
    )
    result.placement_before = _placement(kc, namespace, cluster)
    report(f"replicas on nodes: {result.placement_before}")
    tenant = tenant_writes.tenant_client(kc, namespace, cluster)
    writer = tenant_writes.started(tenant, timeout)
    try:
        report(f"draining {SECOND_NODE} under writes")
        started = time.monotonic()
        done = subprocess.run(
            [str(ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(ms.cfg.kubeconfig),
             "drain", SECOND_NODE, "--ignore-daemonsets", "--delete-emptydir-data",
             f"--timeout={int(timeout)}s"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=timeout + 30, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            result.drained_seconds = time.monotonic() - started
        report(done.stdout.strip()[-2000:])

        def recovered() -> bool:
            placed = _placement(kc, namespace, cluster)
            return (
                _ready(kc, namespace, cluster) == REPLICAS
                and len(placed) == REPLICAS
                and SECOND_NODE not in placed.values()
            )

        try:
            kube.wait_until("the replicas ready off the drained node", recovered, timeout)
            result.recovered_seconds = time.monotonic() - started
        except TimeoutError as exc:
            report(str(exc))
        result.placement_after = _placement(kc, namespace, cluster)
        # A few more writes on the moved control plane, then stop.
        settled = len(writer.acknowledged)
        kube.wait_until(
            "writes after the drain",
            lambda: len(writer.acknowledged) >= settled + 5,
            timeout,
        )
    finally:
        writer.finish()
    result.acknowledged, result.failed = len(writer.acknowledged), writer.failures
    result.last_error = writer.last_error
    result.lost = tenant_writes.lost(tenant, writer, timeout)
    report(f"replicas now on nodes: {result.placement_after}")
    return result
