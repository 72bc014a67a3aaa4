"""Per-process state of the operator: the API client, write accounting, per-cluster locks.

`operator.run` installs one `Runtime` at start; every reconciler reads it through
`runtime()`. This module imports only the mechanics it holds (children, apply, tenant
probes), never a reconciler, so any controller module may import it without a cycle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient

from mothership.controllers import children, tenant
from mothership.controllers.apply import Applier
from mothership.controllers.remote_host import RemoteHosts


@dataclass
class Runtime:
    """Per-process state: the API client, write accounting, per-cluster serialisation."""

    client: AsyncClient
    applier: Applier
    resync_seconds: float = 60.0
    locks: dict[children.Key, asyncio.Lock] = field(default_factory=dict)
    kubeconfigs: dict[children.Key, str] = field(default_factory=dict)
    # Last status written per cluster, until an event shows it: the event that follows our
    # own write may carry an older status, and writing the same status twice is a waste.
    statuses: dict[children.Key, dict[str, Any]] = field(default_factory=dict)
    # Secrets found by a 409 that the watch does not report (not labelled as ours, e.g. a
    # CA the user provided), so a reconcile does not generate keys again only to be refused.
    known_secrets: dict[children.Key, set[str]] = field(default_factory=dict)
    probes: tenant.Probes = field(default_factory=lambda: tenant.Probes())
    fingerprints: dict[children.Key, bytes] = field(default_factory=dict)
    # resourceVersion of the Cluster each reconcile last started from (see
    # cluster.stale_event): kopf's queue for one Cluster can lag a minute behind a burst,
    # while resyncs and child triggers have long reconciled a fresh read of it.
    reconciled_versions: dict[children.Key, int] = field(default_factory=dict)
    # Hosting clusters of Clusters with spec.remoteHostCluster, shared by kubeconfig.
    remotes: RemoteHosts = field(default_factory=RemoteHosts)

    def lock(self, key: children.Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    if RUNTIME is None:
        raise RuntimeError("operator runtime not initialised (start it with operator.run)")
    return RUNTIME
