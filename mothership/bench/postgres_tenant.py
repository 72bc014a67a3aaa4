"""A tenant on a PostgreSQL of its own, for the real-node benches that fault one.

The tenant datastore outage stops the server; the node drain moves the replicas. Both
need the same frame: an operator that reconciles, a private server, a namespace of the
run, a kubernetes-distribution Cluster on kine/PostgreSQL made as the CLI makes it, and
everything removed again whatever happens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mothership.bench import provision as bench_provision
from mothership.bench.provision_result import Storage
from mothership.errors import MissingPrerequisite

Report = Callable[[str], None]


@dataclass(frozen=True)
class Tenant:
    kc: Any  # the mothership's admin client
    server: Any  # the tenant's PostgreSQL (sqlservers.SqlServer)
    namespace: str
    cluster: str


@contextmanager
def postgres_tenant(
    ms: Any, prefix: str, cluster: str, replicas: int, timeout: float, report: Report
) -> Iterator[Tenant]:
    """The Cluster `cluster` Available on a private PostgreSQL, in namespace
    `bench-<prefix>-<run>`; deleted with its namespace and server on the way out."""
    from lightkube import Client
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    from mothership.testenv import sqlservers

    config = bench_provision.admin_client_config(ms)
    kc = Client(config=config, field_manager=bench_provision.FIELD_MANAGER)
    bench_provision.check_operator(ms, kc)
    run_id = uuid.uuid4().hex[:6]
    namespace = f"bench-{prefix}-{run_id}"
    report("starting a private PostgreSQL for the tenant")
    try:
        server = sqlservers.start("postgres")
    except sqlservers.SqlServerUnavailable as exc:
        raise MissingPrerequisite(str(exc)) from None
    try:
        labels = {bench_provision.RUN_LABEL: run_id}
        kc.create(Namespace(metadata=ObjectMeta(name=namespace, labels=labels)))
        try:
            database = server.create_database(f"{prefix}_{run_id}", ms.cfg.host_ip)
            manifest = bench_provision.cluster_manifest(
                cluster, namespace, Storage.postgres, run_id, kine_url=database.pod_url
            )
            manifest["spec"]["replicas"] = replicas
            report(
                f"creating Cluster {namespace}/{cluster} on kine/PostgreSQL ({replicas} "
                f"replica{'s' if replicas > 1 else ''})"
            )
            asyncio.run(
                bench_provision.provision(config, namespace, [manifest], 1, timeout, report)
            )
            yield Tenant(kc, server, namespace, cluster)
        finally:
            report(f"deleting the Cluster and namespace {namespace}")
            asyncio.run(bench_provision.delete_all(config, namespace, [cluster], timeout))
    finally:
        report("stopping PostgreSQL")
        sqlservers.remove(server)
