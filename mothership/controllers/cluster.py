"""The k0smotron.io Cluster reconciler: observe → render → apply → status.

Level-triggered: every event on a Cluster or on one of its children, and a periodic
resync, runs the same idempotent `reconcile()`. Writes happen only where the observed
state differs from the desired one (hash-compared), so a resync of a converged fleet
makes no writes at all.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
from lightkube import AsyncClient
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import PersistentVolumeClaim, Secret
from pydantic import ValidationError

from mothership import pki
from mothership.api.k0smotron import v1beta2
from mothership.controllers import children, cluster_status, metrics, tenant
from mothership.controllers.apply import Applier, owned_by
from mothership.render import kubeconfig_secret, names, pki_secrets
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts

log = logging.getLogger("mothership.cluster")

GROUP, VERSION, PLURAL = "k0smotron.io", "v1beta2", "clusters"
FINALIZER = "k0smotron.io/finalizer"
ClusterResource = create_namespaced_resource(GROUP, VERSION, "Cluster", PLURAL)


@dataclass
class Runtime:
    """Per-process state: the API client, write accounting, per-cluster serialisation."""

    client: AsyncClient
    applier: Applier
    resync_seconds: float = 60.0
    locks: dict[children.Key, asyncio.Lock] = field(default_factory=dict)
    kubeconfigs: dict[children.Key, str] = field(default_factory=dict)

    def lock(self, key: children.Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


RUNTIME: Runtime | None = None
# kopf hands its (live) index views only to handlers; the resync loop, which is not a
# handler, uses the ones the first handler call saw.
INDEXES: dict[str, Any] = {}


def runtime() -> Runtime:
    if RUNTIME is None:
        raise RuntimeError("operator runtime not initialised (start it with operator.run)")
    return RUNTIME


# -- handlers --------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_cluster_event(type: str, body: kopf.Body, **kw: Any) -> None:
    if type == "DELETED":
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        runtime().locks.pop(key, None)
        runtime().kubeconfigs.pop(key, None)
        return
    await reconcile(dict(body), kw)


@kopf.on.event("apps", "v1", "statefulsets", labels=children.MANAGED)
@kopf.on.event("v1", "services", labels=children.MANAGED)
async def on_child_event(namespace: str, labels: dict[str, str], **kw: Any) -> None:
    """A child changed (pods became ready, LB got an address): refresh its cluster."""
    cluster = labels.get("cluster")
    if not cluster:
        return
    try:
        obj = await runtime().client.get(ClusterResource, cluster, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return
        raise
    await reconcile(obj.to_dict(), kw)


# -- reconcile -------------------------------------------------------------------------


async def reconcile(body: dict[str, Any], indexes: dict[str, Any]) -> None:
    if not INDEXES:
        INDEXES.update({k: v for k, v in indexes.items() if isinstance(v, kopf.Index)})
    meta = body["metadata"]
    key: children.Key = (meta["namespace"], meta["name"])
    rt = runtime()
    started = time.monotonic()
    result = "ok"
    async with rt.lock(key):
        metrics.QUEUE_DEPTH.inc()
        try:
            if meta.get("deletionTimestamp"):
                await finalize(body, indexes)
            else:
                await _reconcile(body, key, indexes)
        except Exception:
            result = "error"
            raise
        finally:
            metrics.QUEUE_DEPTH.dec()
            metrics.RECONCILES.labels(kind="Cluster", result=result).inc()
            metrics.DURATION.labels(kind="Cluster").observe(time.monotonic() - started)


async def _reconcile(body: dict[str, Any], key: children.Key, indexes: dict[str, Any]) -> None:
    rt = runtime()
    name = key[1]
    try:
        cluster = v1beta2.Cluster.model_validate(body)
    except ValidationError as exc:
        # The admission webhook rejects such specs; this only happens without it.
        kopf.warn(body, reason="InvalidSpec", message=str(exc)[:1000])
        return
    await ensure_finalizer(body)
    owned = children.children_of(key, indexes)

    secrets_present = {n for (kind, n) in owned if kind == "Secret"}
    await ensure_pki(body, secrets_present)

    address = external_address(cluster, body, owned, indexes)
    objects = render_cluster(cluster, Facts(external_address=address))
    missing: list[str] = []
    for obj in objects:
        observed = owned.get((obj["kind"], obj["metadata"]["name"]))
        if await rt.applier.apply(owned_by(obj, body), observed.hash if observed else None):
            missing.append(f"{obj['kind']}/{obj['metadata']['name']}")
            metrics.WRITES.labels(kind=obj["kind"]).inc()

    kubeconfig_ready = await ensure_kubeconfig(body, cluster, address, owned)
    sts = owned.get(("StatefulSet", names.statefulset(name)))
    functional: bool | None = None
    error = ""
    if sts and (sts.status.get("readyReplicas") or 0) >= 1 and kubeconfig_ready:
        functional, error = await tenant.check_functional(rt, key)
    obs = cluster_status.Observed(
        statefulset=sts,
        objects_missing=missing,
        certificates_ready=True,
        kubeconfig_ready=kubeconfig_ready,
        external_address=address,
        functional=functional,
        functional_error=error,
        version=cluster.spec.version or "",
    )
    spec = body.get("spec") or {}
    new_status = cluster_status.status(
        body.get("status"), name, spec.get("replicas", 1), meta_generation(body), obs
    )
    await write_status(body, new_status)


def meta_generation(body: dict[str, Any]) -> int | None:
    gen = body["metadata"].get("generation")
    return int(gen) if gen is not None else None


async def ensure_finalizer(body: dict[str, Any]) -> None:
    if FINALIZER in (body["metadata"].get("finalizers") or []):
        return
    meta = body["metadata"]
    # resourceVersion makes the list replacement safe against a concurrent finalizer edit.
    patch = {
        "metadata": {
            "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
            "resourceVersion": meta["resourceVersion"],
        }
    }
    await runtime().client.patch(ClusterResource, meta["name"], patch, namespace=meta["namespace"])
    metrics.WRITES.labels(kind="Cluster").inc()


async def ensure_pki(body: dict[str, Any], present: set[str]) -> None:
    """Create the CA secrets that do not exist; never replace one that does."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    have = {p for p in pki_secrets.ALL_PURPOSES if names.pki_secret(name, p) in present}
    if len(have) == len(pki_secrets.ALL_PURPOSES):
        return
    client = runtime().client
    # Secrets not labelled as ours (made by CAPI or by hand) still count: look them up.
    for purpose in set(pki_secrets.ALL_PURPOSES) - have:
        try:
            await client.get(Secret, names.pki_secret(name, purpose), namespace=namespace)
            have.add(purpose)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
    for secret in pki_secrets.missing_secrets(name, namespace, have):
        try:
            await client.create(from_dict(owned_by(secret, body)))
            metrics.WRITES.labels(kind="Secret").inc()
            kopf.info(body, reason="CertificateCreated", message=secret["metadata"]["name"])
        except ApiError as exc:
            if exc.status.code != 409:  # someone else created it first: theirs wins
                raise


def external_address(
    cluster: v1beta2.Cluster,
    body: dict[str, Any],
    owned: dict[tuple[str, str], children.Child],
    indexes: dict[str, Any],
) -> str | None:
    """Where clients reach the control plane: the spec, else what the Service got.

    Recorded in status, never written into the user's spec.
    """
    if cluster.spec.external_address:
        return cluster.spec.external_address
    name = body["metadata"]["name"]
    service_type = (body.get("spec") or {}).get("service", {}).get("type", "ClusterIP")
    svc = owned.get(("Service", names.service(name, service_type)))
    if svc is None:
        return None
    if service_type == "LoadBalancer":
        return next((a for a in svc.status.get("lb", []) if a), None)
    if service_type == "NodePort":
        nodes = sorted(indexes.get("node_addresses", {}).get(None, []))
        return next((addr for _, addr in nodes if addr), None)
    return svc.status.get("clusterIP") or None


def api_port(body: dict[str, Any]) -> int:
    return int((body.get("spec") or {}).get("service", {}).get("apiPort", 30443))


async def ensure_kubeconfig(
    body: dict[str, Any],
    cluster: v1beta2.Cluster,
    address: str | None,
    owned: dict[tuple[str, str], children.Child],
) -> bool:
    if not address:
        return False
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    server = f"https://{address}:{api_port(body)}"
    observed = owned.get(("Secret", names.kubeconfig_secret(name)))
    if observed and not kubeconfig_secret.needs_rotation(observed.annotations, server):
        return True
    rt = runtime()
    ca_secret = await rt.client.get(Secret, names.pki_secret(name, "ca"), namespace=namespace)
    data = ca_secret.data or {}
    ca = pki.CertKey(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))
    extra = (body.get("spec") or {}).get("kubeconfigSecretMetadata") or {}
    secret = kubeconfig_secret.kubeconfig_secret(
        name,
        namespace,
        server=server,
        ca=ca,
        extra_labels=extra.get("labels"),
        extra_annotations=extra.get("annotations"),
    )
    await rt.applier.apply(owned_by(secret, body), None)
    metrics.WRITES.labels(kind="Secret").inc()
    rt.kubeconfigs[(namespace, name)] = base64.b64decode(secret["data"]["value"]).decode()
    kopf.info(body, reason="KubeconfigWritten", message=f"{secret['metadata']['name']} -> {server}")
    return True


async def write_status(body: dict[str, Any], new_status: dict[str, Any]) -> None:
    if (body.get("status") or {}) == new_status:
        return
    meta = body["metadata"]
    await runtime().client.patch(
        ClusterResource,
        meta["name"],
        {"status": new_status},
        namespace=meta["namespace"],
        subresource="status",
    )
    metrics.WRITES.labels(kind="ClusterStatus").inc()


async def finalize(body: dict[str, Any], indexes: dict[str, Any]) -> None:
    """Deletion: dependents go by garbage collection (ownerReferences); PVCs stay unless asked.

    The StatefulSet's PVC retention policy covers its own claims; this also removes the
    etcd claims, and only when the user opted in with autoDeletePVCs.
    """
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return
    name, namespace = meta["name"], meta["namespace"]
    client = runtime().client
    spec = body.get("spec") or {}
    kopf.info(body, reason="Deleting", message="removing the control plane")
    auto_delete = (spec.get("persistence") or {}).get("autoDeletePVCs") or (
        (spec.get("storage") or {}).get("etcd") or {}
    ).get("autoDeletePVCs")
    if auto_delete:
        async for pvc in client.list(
            PersistentVolumeClaim, namespace=namespace, labels={"cluster": name}
        ):
            await client.delete(PersistentVolumeClaim, pvc.metadata.name, namespace=namespace)
    finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    await client.patch(
        ClusterResource,
        name,
        {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}},
        namespace=namespace,
    )
