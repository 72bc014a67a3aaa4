"""The K0smotronControlPlane reconciler: Cluster API's control-plane contract over a
k0smotron.io Cluster.

A control plane is adopted by its Cluster API Cluster (Cluster API sets the ownerReference);
from then on it is one hosted k0smotron.io Cluster named after that Cluster, kept equal to
the control plane's spec by server-side apply, and whatever that Cluster reports is written
back in the contract's shape: status (initialized, replicas, version, conditions) on the
control plane, and the endpoint on the Cluster API Cluster. Pausing the Cluster (spec.paused
or the paused annotation) stops every write but the Paused condition.

Deletion: the finalizer stays until the hosted Cluster is gone, so Cluster API sees the
control plane disappear only once its pods, Secrets and Services went with it.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import CascadeType, PatchType

from mothership.api.controlplane.v1beta2 import FINALIZER, GROUP
from mothership.api.infrastructure.v1beta2 import GROUP as INFRA_GROUP
from mothership.controllers import controlplane_status, events, metrics
from mothership.controllers.apply import get_or_none, owner_name, stamp
from mothership.controllers.cluster import ClusterResource
from mothership.controllers.runtime import runtime
from mothership.render.names import FIELD_MANAGER, HASH_ANNOTATION

log = logging.getLogger("mothership.controlplane")

VERSION, PLURAL, KIND = "v1beta2", "k0smotroncontrolplanes", "K0smotronControlPlane"
ControlPlaneResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
CapiClusterResource = create_namespaced_resource(
    "cluster.x-k8s.io", "v1beta2", "Cluster", "clusters"
)
RemoteClusterResource = create_namespaced_resource(
    INFRA_GROUP, "v1beta2", "RemoteCluster", "remoteclusters"
)
MERGE = PatchType.MERGE


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_control_plane_event(type: str, body: kopf.Body, **_: Any) -> None:
    if type != "DELETED":
        await reconcile(dict(body))


@kopf.on.event("k0smotron.io", "v1beta2", "clusters")
async def on_hosted_cluster_event(body: kopf.Body, **_: Any) -> None:
    """A hosted Cluster changed (status, deletion): its control plane reports it."""
    owner = owner_name(dict(body), KIND, GROUP)
    if owner is not None:
        cp = await get_or_none(
            runtime().client, ControlPlaneResource, owner, body["metadata"]["namespace"]
        )
        if cp is not None:
            await reconcile(cp.to_dict())


@kopf.on.event("cluster.x-k8s.io", "v1beta2", "clusters")
async def on_capi_cluster_event(type: str, body: kopf.Body, **_: Any) -> None:
    """Cluster API's Cluster changed (adopted its control plane, paused, unpaused)."""
    ref = (body.get("spec") or {}).get("controlPlaneRef") or {}
    if type == "DELETED" or ref.get("apiGroup") != GROUP or ref.get("kind") != KIND:
        return
    cp = await get_or_none(
        runtime().client, ControlPlaneResource, ref["name"], body["metadata"]["namespace"]
    )
    if cp is not None:
        await reconcile(cp.to_dict())


async def reconcile(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    async with runtime().lock(("controlplane", *key)):  # type: ignore[arg-type]
        try:
            if meta.get("deletionTimestamp"):
                await finalize(body)
            else:
                await _reconcile(body)
            metrics.RECONCILES.labels(kind=KIND, result="ok").inc()
        except ApiError as exc:
            metrics.RECONCILES.labels(kind=KIND, result="error").inc()
            if exc.status.code in (404, 409):
                return  # gone meanwhile, or changed: the change's event runs this again
            raise


async def _reconcile(body: dict[str, Any]) -> None:
    rt = runtime()
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        await _patch_meta(body, {"finalizers": [*(meta.get("finalizers") or []), FINALIZER]})
        return  # the write's event reconciles again, with the finalizer in place
    cluster_name = controlplane_status.owner_cluster(body)
    if cluster_name is None:
        log.info("%s/%s: waiting for Cluster API to set its Cluster as owner", *_key(body))
        return
    capi = await get_or_none(rt.client, CapiClusterResource, cluster_name, meta["namespace"])
    if capi is None:
        return
    capi_cluster = capi.to_dict()
    hosted_obj = await get_or_none(rt.client, ClusterResource, cluster_name, meta["namespace"])
    hosted = hosted_obj.to_dict() if hosted_obj is not None else None
    if controlplane_status.paused(body, capi_cluster):
        await _write_status(body, controlplane_status.status(body, hosted, paused_now=True))
        return
    problem = ""
    network = (capi_cluster.get("spec") or {}).get("clusterNetwork")
    try:
        desired = stamp(controlplane_status.hosted_cluster(body, cluster_name, network))
        digest = desired["metadata"]["annotations"][HASH_ANNOTATION]
    except controlplane_status.NetworkConflict as exc:
        problem, digest = str(exc), ""
        events.warn(body, reason="InvalidSpec", message=problem)
    current = ((hosted or {}).get("metadata") or {}).get("annotations") or {}
    if problem:
        pass  # reported below; the hosted Cluster keeps what it runs
    elif hosted is not None and not _owned_by(hosted, body):
        problem = (
            f"a k0smotron.io Cluster {cluster_name} exists that this control plane does not own;"
            " delete or rename it"
        )
    elif current.get(HASH_ANNOTATION) != digest:
        try:
            written = await rt.client.apply(
                from_dict(desired), field_manager=FIELD_MANAGER, force=True
            )
            metrics.WRITES.labels(kind="Cluster").inc()
            hosted = written.to_dict()
            events.info(
                body, reason="HostedClusterApplied", message=f"k0smotron.io Cluster {cluster_name}"
            )
        except ApiError as exc:
            if exc.status.code not in (400, 403, 422):
                raise
            problem = (
                f"the hosted k0smotron.io Cluster {cluster_name} was refused: {exc.status.message}"
            )
            events.warn(body, reason="InvalidSpec", message=problem)
    await _set_endpoint(capi_cluster, controlplane_status.endpoint(body, hosted))
    await _write_status(
        body, controlplane_status.status(body, hosted, paused_now=False, problem=problem)
    )


def _owned_by(hosted: dict[str, Any], cp: dict[str, Any]) -> bool:
    uid = cp["metadata"]["uid"]
    return any(r.get("uid") == uid for r in hosted["metadata"].get("ownerReferences") or [])


def _key(body: dict[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


async def _set_endpoint(capi_cluster: dict[str, Any], endpoint: tuple[str, int] | None) -> None:
    """Cluster API reads the control plane's address from its Cluster's spec; k0smotron sets
    it there too (the control plane spec has no such field)."""
    if endpoint is None:
        return
    host, port = endpoint
    have = (capi_cluster.get("spec") or {}).get("controlPlaneEndpoint") or {}
    if have.get("host") == host and int(have.get("port") or 0) == port:
        return
    meta = capi_cluster["metadata"]
    patch = {"spec": {"controlPlaneEndpoint": {"host": host, "port": port}}}
    infra = (capi_cluster.get("spec") or {}).get("infrastructureRef") or {}
    if infra.get("kind") == "RemoteCluster" and infra.get("apiGroup") == INFRA_GROUP:
        # The infrastructure cluster says the same, as Cluster API expects of it.
        await runtime().client.patch(
            RemoteClusterResource, infra["name"], patch, namespace=meta["namespace"],
            patch_type=MERGE,
        )  # fmt: skip
    await runtime().client.patch(
        CapiClusterResource, meta["name"], patch, namespace=meta["namespace"], patch_type=MERGE
    )
    metrics.WRITES.labels(kind="CapiCluster").inc()


async def _write_status(body: dict[str, Any], new_status: dict[str, Any]) -> None:
    if (body.get("status") or {}) == new_status:
        return
    meta = body["metadata"]
    await runtime().client.patch(
        ControlPlaneResource.Status,
        meta["name"],
        {"status": new_status},
        namespace=meta["namespace"],
        patch_type=MERGE,
    )
    metrics.WRITES.labels(kind=f"{KIND}Status").inc()


async def _patch_meta(body: dict[str, Any], changes: dict[str, Any]) -> None:
    meta = body["metadata"]
    # resourceVersion makes the finalizer list replacement safe against a concurrent edit.
    patch = {"metadata": {**changes, "resourceVersion": meta["resourceVersion"]}}
    await runtime().client.patch(
        ControlPlaneResource, meta["name"], patch, namespace=meta["namespace"], patch_type=MERGE
    )
    metrics.WRITES.labels(kind=KIND).inc()


async def finalize(body: dict[str, Any]) -> None:
    """Delete the hosted Cluster (its own finalizer cleans up) and wait for it to be gone."""
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return
    rt = runtime()
    cluster_name = controlplane_status.owner_cluster(body)
    hosted = None
    if cluster_name is not None:
        hosted = await get_or_none(rt.client, ClusterResource, cluster_name, meta["namespace"])
    if cluster_name is not None and hosted is not None and _owned_by(hosted.to_dict(), body):
        if not hosted.metadata.deletionTimestamp:
            await rt.client.delete(
                ClusterResource,
                cluster_name,
                namespace=meta["namespace"],
                cascade=CascadeType.BACKGROUND,
            )
            events.info(body, reason="Deleting", message=f"k0smotron.io Cluster {cluster_name}")
        return  # the hosted Cluster's deletion events bring us back
    await _patch_meta(body, {"finalizers": [f for f in meta["finalizers"] if f != FINALIZER]})
