"""Applying the kubernetes distribution's bootstrap objects into a serving tenant.

What to apply is rendered by `render.tenant_addons`; this module decides when, through
the tenant's kubeconfig. Steady state costs one GET per tenant per check interval (the
`cluster-info` ConfigMap, whose annotation says which set of objects was applied last)
and no writes. A tenant that lost its data store has no `cluster-info` any more, so the
same GET finds it and everything is applied again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap

from mothership.api.k0smotron import v1beta2
from mothership.controllers import concurrently, metrics, tenant
from mothership.controllers.apply import get_or_none
from mothership.controllers.conditions import Condition
from mothership.controllers.runtime import Runtime
from mothership.render import tenant_addons
from mothership.render.facts import Facts
from mothership.render.names import FIELD_MANAGER

log = logging.getLogger("mothership.tenant-bootstrap")

CONDITION = "TenantBootstrapped"
APPLY_TIMEOUT = 10.0
APPLY_CONCURRENCY = 8


@dataclass
class Bootstraps:
    """Per tenant: the digest last seen in place, the condition, and when to look again.

    A tenant in place is looked at once a minute; a failed attempt is retried after 5 s,
    doubling up to 5 min, like the functional probe.
    """

    healthy_every: float = 60.0
    first_retry: float = 5.0
    longest: float = 300.0
    seen: dict[tuple[str, str], tuple[str, Condition, float, float]] = field(default_factory=dict)

    def due(self, key: tuple[str, str]) -> bool:
        last = self.seen.get(key)
        return last is not None and time.monotonic() >= last[2]

    def forget(self, key: tuple[str, str]) -> None:
        self.seen.pop(key, None)

    def cached(self, key: tuple[str, str], digest: str) -> Condition | None:
        """The last outcome while it still holds: same objects, and not yet time to look."""
        last = self.seen.get(key)
        if last and last[0] == digest and time.monotonic() < last[2]:
            return last[1]
        return None

    def record(self, key: tuple[str, str], digest: str, cond: Condition) -> None:
        last = self.seen.get(key)
        if cond.status:
            pause = self.healthy_every
        elif last and last[1].status is False and last[0] == digest:
            pause = min(last[3] * 2, self.longest)
        else:
            pause = self.first_retry
        self.seen[key] = (digest, cond, time.monotonic() + pause, pause)


def waiting(message: str = "the tenant API does not answer yet") -> Condition:
    return Condition(CONDITION, False, "WaitingForAPI", message)


async def ensure(
    rt: Runtime,
    bootstraps: Bootstraps,
    key: tuple[str, str],
    cluster: v1beta2.Cluster,
    facts: Facts,
    ca_pem: bytes,
) -> Condition:
    """Make sure the tenant holds the current bootstrap objects; the condition says how it went."""
    objects = tenant_addons.render_tenant_addons(cluster, facts, ca_pem)
    digest = tenant_addons.applied_digest(objects[-1]["metadata"].get("annotations")) or ""
    cached = bootstraps.cached(key, digest)
    if cached is not None:
        return cached
    cond = await _check_and_apply(rt, key, objects, digest)
    bootstraps.record(key, digest, cond)
    return cond


async def _check_and_apply(
    rt: Runtime, key: tuple[str, str], objects: list[dict[str, Any]], digest: str
) -> Condition:
    try:
        client = tenant.client_for(await tenant.kubeconfig_text(rt, key), timeout=APPLY_TIMEOUT)
    except (ApiError, KeyError, ValueError) as exc:
        return waiting(f"no usable kubeconfig: {exc}")
    try:
        present = await get_or_none(client, ConfigMap, "cluster-info", tenant_addons.PUBLIC)
        annotations = (present.metadata.annotations if present is not None else None) or {}
        if tenant_addons.applied_digest(annotations) == digest:
            return _done(len(objects))
        await _apply_all(client, objects)
        log.info(
            "tenant %s/%s bootstrapped (%d objects, %s)",
            *key,
            len(objects),
            "new, or its data store was lost" if present is None else "updated",
        )
        return _done(len(objects))
    except ApiError as exc:
        return Condition(
            CONDITION,
            False,
            "ApplyFailed",
            f"the tenant API refused a bootstrap object: {exc.status.code} {exc.status.reason}",
        )
    except Exception as exc:  # connection refused, TLS, timeouts
        return waiting(f"the tenant API does not answer: {tenant.describe(exc)}")
    finally:
        await client.close()


async def _apply_all(client: Any, objects: list[dict[str, Any]]) -> None:
    """Apply every object; the first failure is raised as itself.

    Nothing here depends on another being in place first (kube-system and kube-public
    exist from the start; a binding may name a role still coming), so all but the last go
    at once: on an API server that has just started, on a busy machine, one after another
    took seconds. `cluster-info` comes last: its digest says everything before it is in.
    """

    async def apply(obj: dict[str, Any]) -> None:
        await client.apply(from_dict(obj), field_manager=FIELD_MANAGER, force=True)
        metrics.WRITES.labels(kind=f"Tenant{obj['kind']}").inc()

    await concurrently.all_at_once([apply(o) for o in objects[:-1]], limit=APPLY_CONCURRENCY)
    await apply(objects[-1])


def _done(count: int) -> Condition:
    return Condition(
        CONDITION,
        True,
        "Bootstrapped",
        f"bootstrap-token RBAC, cluster-info, kube-proxy, CoreDNS and konnectivity-agent "
        f"are in place ({count} objects)",
    )
