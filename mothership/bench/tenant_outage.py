"""`mothership bench chaos --tenant-datastore-stop S`: a tenant's own PostgreSQL goes away.

The kwok faults of `bench chaos` test the operator and the mothership; this one tests a
tenant's control plane, so it runs on the real-node local mothership where control
planes really serve. A kubernetes-distribution Cluster on kine/PostgreSQL (a private
server the bench starts) takes a steady stream of writes through its own kubeconfig;
PostgreSQL is stopped for S seconds and started again on the same data. The tenant must
write again by itself, with no restart of anything, and every write its API server
acknowledged, before the stop or after, must still be there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mothership.bench import provision as bench_provision
from mothership.bench import tenant_writes
from mothership.bench.chaos_result import table
from mothership.bench.postgres_tenant import postgres_tenant

Report = Callable[[str], None]
RECOVERED_AFTER = 5  # writes acknowledged after the restart that count as "writing again"


@dataclass
class Outage:
    """What one tenant datastore outage did to the tenant's writes."""

    stop_seconds: float
    stopped_for: float = 0.0
    acknowledged: int = 0
    before: int = 0
    refused: int = 0
    recovered_seconds: float | None = None  # PostgreSQL started -> a write acknowledged
    lost: list[str] = field(default_factory=list)
    available_again: bool = False

    def failures(self) -> list[str]:
        out = []
        if self.refused == 0:
            out.append("tenant: no write failed while its datastore was stopped (the fault missed)")
        if self.recovered_seconds is None:
            out.append("tenant: not writing again after its datastore came back")
        out += [f"tenant: acknowledged write lost: {name}" for name in self.lost]
        if not self.available_again:
            out.append("tenant: its Cluster is not Available again")
        return out

    def rows(self) -> list[tuple[str, str]]:
        recovered = (
            "- (never)" if self.recovered_seconds is None else f"{self.recovered_seconds:.1f} s"
        )
        return [
            (
                "tenant datastore fault",
                f"its own PostgreSQL stopped for {self.stopped_for:.1f} s under a stream of "
                "writes, started again on the same data",
            ),
            (
                "tenant writes",
                f"{self.acknowledged} acknowledged ({self.before} before the stop), "
                f"{self.refused} refused or cut off during the outage",
            ),
            (
                "tenant writes lost",
                f"{len(self.lost)} of {self.acknowledged} acknowledged "
                "(each listed again at the end)",
            ),
            ("tenant time to recover", f"{recovered} (PostgreSQL started -> a write acknowledged)"),
            ("tenant Available again", "yes" if self.available_again else "no"),
        ]

    def lines(self) -> list[str]:
        return table(self.rows(), self.failures(), "tenant invariants")


def run(
    name: str, state_dir: Path | None, stop_seconds: float, timeout: float, report: Report
) -> Outage:
    """On the real-node mothership `name` (started for the run when none is up)."""
    with bench_provision.realnode_mothership(name, state_dir, report, timeout) as (ms, _):
        return on(ms, stop_seconds, timeout, report)


def on(ms: Any, stop_seconds: float, timeout: float, report: Report) -> Outage:
    """The outage on a running real-node mothership whose operator reconciles Clusters."""
    with postgres_tenant(ms, "chaos", "outage", 1, timeout, report) as tenant:
        return _outage(
            tenant.kc, tenant.server, tenant.namespace, tenant.cluster, stop_seconds, timeout,
            report,
        )  # fmt: skip


def _outage(
    kc: Any,
    server: Any,
    namespace: str,
    cluster: str,
    stop_seconds: float,
    timeout: float,
    report: Report,
) -> Outage:
    from mothership.controllers.cluster import ClusterResource
    from mothership.testenv import kube

    result = Outage(stop_seconds)
    tenant = tenant_writes.tenant_client(kc, namespace, cluster)
    writer = tenant_writes.started(tenant, timeout)
    try:
        report(f"stopping the tenant's PostgreSQL for {stop_seconds:g} s under writes")
        server.stop()
        stopped = time.monotonic()
        result.before = len(writer.acknowledged)
        failed_before = writer.failures
        while time.monotonic() - stopped < stop_seconds:
            writer.stop.wait(0.5)  # the fault itself: PostgreSQL away this long
        server.start_again()
        restarted = time.monotonic()
        result.stopped_for = restarted - stopped
        report(f"PostgreSQL started again after {result.stopped_for:.1f} s")
        result.refused = writer.failures - failed_before
        report(f"{result.refused} writes refused meanwhile, the last: {writer.last_error}")
        try:
            kube.wait_until(
                "the tenant writing again",
                lambda: (
                    writer.last_ok > restarted
                    and len(writer.acknowledged) >= result.before + RECOVERED_AFTER
                ),
                timeout,
            )
            result.recovered_seconds = writer.last_ok - restarted
            report(
                f"the tenant writes again {result.recovered_seconds:.1f} s after the restart "
                f"({writer.failures - failed_before - result.refused} more refused first, "
                f"the last: {writer.last_error})"
            )
        except TimeoutError as exc:
            report(str(exc))
    finally:
        writer.finish()
    result.acknowledged = len(writer.acknowledged)
    result.lost = tenant_writes.lost(tenant, writer, timeout)

    def available() -> bool:
        obj = kc.get(ClusterResource, cluster, namespace=namespace).to_dict()
        conditions = (obj.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)

    try:
        kube.wait_until(f"Cluster {cluster} Available again", available, timeout)
        result.available_again = True
    except TimeoutError as exc:
        report(str(exc))
    return result
