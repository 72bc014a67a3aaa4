"""The DataStore reconciler: who uses it, whether the operator can log in, and deletion.

A DataStore holds other people's data: it is never deleted while a Cluster still uses it.
Like Kubernetes' own pvc-protection, a finalizer holds it: a `kubectl delete` leaves it
Terminating (the condition and an event name the Clusters) until the last of them is gone,
then the finalizer is released. Tenants are found by listing Clusters, not from a cache,
so an operator that just started can never release a DataStore that is in use.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from mothership.api.mothership import v1alpha1
from mothership.controllers import datastore_tenant, events, metrics
from mothership.controllers.cluster import ClusterResource
from mothership.controllers.conditions import Condition, merge
from mothership.controllers.runtime import runtime
from mothership.datastores import etcd_admin, sql_admin

log = logging.getLogger("mothership.datastore")

GROUP, VERSION, PLURAL = v1alpha1.GROUP, v1alpha1.VERSION, v1alpha1.PLURAL
FINALIZER = v1alpha1.IN_USE_FINALIZER
DataStoreResource = datastore_tenant.DataStoreResource
IN_USE_REASON = "InUse"
MERGE = PatchType.MERGE


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_datastore_event(type: str, body: kopf.Body, **_: Any) -> None:
    if type != "DELETED":
        await reconcile(dict(body))


async def tenants_of(store: str) -> list[str]:
    """`namespace/name` of every Cluster whose spec names this DataStore, sorted."""
    found: list[str] = []
    async for item in runtime().client.list(ClusterResource, namespace="*", chunk_size=250):
        body = item.to_dict()
        ref = datastore_tenant.ref_from_spec(body.get("spec") or {})
        if ref is not None and ref.get("name") == store:
            meta = body["metadata"]
            found.append(f"{meta['namespace']}/{meta['name']}")
    return sorted(found)


async def reconcile(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    name = meta["name"]
    tenants = await tenants_of(name)
    if meta.get("deletionTimestamp"):
        await _deleting(body, tenants)
        return
    if FINALIZER not in (meta.get("finalizers") or []):
        await _patch(
            name,
            {
                "metadata": {
                    "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
                    "resourceVersion": meta["resourceVersion"],
                }
            },
        )
    _note_generation(name, meta.get("generation"), tenants)
    reachable = await _reachable(name)
    await _write_status(body, tenants, [reachable])


def _note_generation(name: str, generation: int | None, tenants: list[str]) -> None:
    """Record the DataStore's generation; when its spec changed, reconcile its tenants now
    (each rewrites its Secret from the new spec: endpoints, TLS) instead of at a resync."""
    if generation is None:
        return
    previous = datastore_tenant.STORE_GENERATIONS.get(name)
    datastore_tenant.STORE_GENERATIONS[name] = generation
    if previous is None or generation <= previous:
        return
    for tenant in tenants:
        namespace, _, cluster = tenant.partition("/")
        for listener in datastore_tenant.STORE_CHANGED:
            listener((namespace, cluster))


async def _reachable(name: str) -> Condition:
    try:
        _, admin = await datastore_tenant.admin_for(name, "metadata.name")
        if isinstance(admin, etcd_admin.EtcdAdmin):
            await asyncio.to_thread(etcd_admin.ping, admin)
            where = ", ".join(admin.urls)
        else:
            await asyncio.to_thread(sql_admin.ping, admin)
            where = f"{admin.host}:{admin.port}"
    except datastore_tenant.Problem as problem:
        return Condition(v1alpha1.CONDITION_REACHABLE, False, problem.reason, problem.message)
    except sql_admin.DataStoreError as exc:
        return Condition(
            v1alpha1.CONDITION_REACHABLE, False, datastore_tenant.UNREACHABLE_REASON, str(exc)
        )
    return Condition(
        v1alpha1.CONDITION_REACHABLE,
        True,
        "LoggedIn",
        f"the operator logged in as {admin.user} at {where}",
    )


async def _deleting(body: dict[str, Any], tenants: list[str]) -> None:
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return
    if tenants:
        shown = ", ".join(tenants[:10]) + (
            f" and {len(tenants) - 10} more" if len(tenants) > 10 else ""
        )
        message = (
            f"deletion waits: {len(tenants)} Cluster(s) still use this DataStore ({shown}); "
            "delete them (or their data is kept with reclaimPolicy Retain) first"
        )
        previous = ((body.get("status") or {}).get("conditions")) or []
        if not any(c.get("message") == message for c in previous):
            events.warn(body, reason=IN_USE_REASON, message=message)
        await _write_status(
            body,
            tenants,
            [Condition(v1alpha1.CONDITION_REACHABLE, None, IN_USE_REASON, message)],
        )
        return
    finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    try:
        await _patch(
            meta["name"],
            {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}},
        )
    except ApiError as exc:
        if exc.status.code not in (404, 409):
            raise


async def _write_status(body: dict[str, Any], tenants: list[str], wanted: list[Condition]) -> None:
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    new = {
        "tenants": tenants,
        "tenantCount": len(tenants),
        "conditions": merge(old.get("conditions"), wanted, generation),
        "observedGeneration": generation,
    }
    if all(old.get(k) == v for k, v in new.items()):
        return
    try:
        await runtime().client.patch(
            DataStoreResource.Status, body["metadata"]["name"], {"status": new}, patch_type=MERGE
        )
    except ApiError as exc:
        if exc.status.code != 404:
            raise
        return
    metrics.WRITES.labels(kind="DataStoreStatus").inc()


async def _patch(name: str, patch: dict[str, Any]) -> None:
    await runtime().client.patch(DataStoreResource, name, patch, patch_type=MERGE)
    metrics.WRITES.labels(kind="DataStore").inc()
