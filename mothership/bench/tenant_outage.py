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

import base64
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mothership.bench import provision as bench_provision
from mothership.bench.chaos_result import table
from mothership.bench.provision_result import Storage
from mothership.errors import MissingPrerequisite

Report = Callable[[str], None]
WARM_UP_WRITES = 10  # acknowledged before the fault, so "before" is never empty
RECOVERED_AFTER = 5  # writes acknowledged after the restart that count as "writing again"
WRITE_PAUSE = 0.2


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


class Writer:
    """ConfigMaps created in the tenant one after another on a thread: which the API
    server acknowledged (the create answered), how many failed, when one last went in."""

    def __init__(self, tenant: Any) -> None:
        self.tenant = tenant
        self.acknowledged: list[str] = []
        self.failures = 0
        self.last_ok = 0.0
        self.last_error = ""  # why the latest write failed, for the report
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="tenant-writer")

    def _run(self) -> None:
        from lightkube.core.exceptions import ApiError
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ConfigMap

        i = 0
        while not self.stop.is_set():
            name = f"w-{i:05d}"
            try:
                self.tenant.create(
                    ConfigMap(metadata=ObjectMeta(name=name), data={"i": str(i)}),
                    namespace="default",
                )
                self.acknowledged.append(name)
                self.last_ok = time.monotonic()
                i += 1
            except ApiError as exc:
                if exc.status.code == 409:  # an earlier try went in after all (answer lost)
                    self.acknowledged.append(name)
                    i += 1
                    continue
                self.failures += 1
                self.last_error = f"{exc.status.code} {exc.status.message}"
            except Exception as exc:  # cut off, timed out: the outage itself
                self.failures += 1
                self.last_error = f"{type(exc).__name__} {exc}"
            self.stop.wait(WRITE_PAUSE)


def run(
    name: str, state_dir: Path | None, stop_seconds: float, timeout: float, report: Report
) -> Outage:
    """On the real-node mothership `name` (started for the run when none is up)."""
    with bench_provision.realnode_mothership(name, state_dir, report, timeout) as (ms, _):
        return on(ms, stop_seconds, timeout, report)


def on(ms: Any, stop_seconds: float, timeout: float, report: Report) -> Outage:
    """The outage on a running real-node mothership whose operator reconciles Clusters."""
    import asyncio

    from lightkube import Client
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    from mothership.testenv import sqlservers

    config = bench_provision.admin_client_config(ms)
    kc = Client(config=config, field_manager=bench_provision.FIELD_MANAGER)
    bench_provision.check_operator(ms, kc)
    run_id = uuid.uuid4().hex[:6]
    namespace = f"bench-chaos-{run_id}"
    cluster = "outage"
    report("starting a private PostgreSQL for the tenant")
    try:
        server = sqlservers.start("postgres")
    except sqlservers.SqlServerUnavailable as exc:
        raise MissingPrerequisite(str(exc)) from None
    kc.create(
        Namespace(metadata=ObjectMeta(name=namespace, labels={bench_provision.RUN_LABEL: run_id}))
    )
    try:
        database = server.create_database(f"outage_{run_id}", ms.cfg.host_ip)
        manifest = bench_provision.cluster_manifest(
            cluster, namespace, Storage.postgres, run_id, kine_url=database.pod_url
        )
        report(f"creating Cluster {namespace}/{cluster} on kine/PostgreSQL")
        asyncio.run(bench_provision.provision(config, namespace, [manifest], 1, timeout, report))
        return _outage(kc, server, namespace, cluster, stop_seconds, timeout, report)
    finally:
        report(f"deleting the Cluster and namespace {namespace}; stopping PostgreSQL")
        asyncio.run(bench_provision.delete_all(config, namespace, [cluster], timeout))
        sqlservers.remove(server)


def _outage(
    kc: Any,
    server: Any,
    namespace: str,
    cluster: str,
    stop_seconds: float,
    timeout: float,
    report: Report,
) -> Outage:
    from lightkube import Client, KubeConfig
    from lightkube.resources.core_v1 import ConfigMap, Secret

    from mothership.controllers.cluster import ClusterResource
    from mothership.render import names as object_names
    from mothership.testenv import kube

    result = Outage(stop_seconds)
    secret = kc.get(Secret, object_names.kubeconfig_secret(cluster), namespace=namespace)
    text = base64.b64decode((secret.data or {})["value"]).decode()
    tenant = Client(config=KubeConfig.from_dict(yaml.safe_load(text)), field_manager="bench")
    writer = Writer(tenant)
    writer.thread.start()
    try:
        kube.wait_until(
            f"{WARM_UP_WRITES} writes acknowledged",
            lambda: len(writer.acknowledged) >= WARM_UP_WRITES,
            timeout,
        )
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
        writer.stop.set()
        writer.thread.join(30)
    result.acknowledged = len(writer.acknowledged)
    stored: set[str] = set()

    def listed() -> bool:
        # Asked until it answers: the tenant's API server may be restarting just after the
        # outage (its liveness probe failed while the datastore was away). Seen in CI: the
        # writes went in again, then this LIST met "connection refused" and the run failed.
        items = tenant.list(ConfigMap, namespace="default")
        stored.update(c.metadata.name for c in items if c.metadata and c.metadata.name)
        return True

    kube.wait_until("the tenant's ConfigMaps listed", listed, timeout)
    result.lost = [n for n in writer.acknowledged if n not in stored]

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
