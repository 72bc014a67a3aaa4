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
from datetime import UTC, datetime
from typing import Any

import kopf
from lightkube import AsyncClient
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import PersistentVolumeClaim, Secret
from lightkube.types import PatchType
from pydantic import ValidationError

from mothership import pki
from mothership.api.k0smotron import v1beta2
from mothership.controllers import children, cluster_status, metrics, tenant
from mothership.controllers.apply import Applier, get_or_none, owned_by
from mothership.controllers.conditions import Condition, merge
from mothership.render import kubeconfig_secret, names, pki_secrets
from mothership.render.cluster import render_cluster
from mothership.render.etcd import desired_replicas as etcd_desired_replicas
from mothership.render.facts import DEFAULT_K0S_VERSION, Facts, RenderError
from mothership.render.patches import PatchError

log = logging.getLogger("mothership.cluster")

GROUP, VERSION, PLURAL = "k0smotron.io", "v1beta2", "clusters"
FINALIZER = "k0smotron.io/finalizer"
ClusterResource = create_namespaced_resource(GROUP, VERSION, "Cluster", PLURAL)
# Custom resources take no strategic merge patch.
MERGE = PatchType.MERGE


@dataclass
class Runtime:
    """Per-process state: the API client, write accounting, per-cluster serialisation."""

    client: AsyncClient
    applier: Applier
    resync_seconds: float = 60.0
    locks: dict[children.Key, asyncio.Lock] = field(default_factory=dict)
    kubeconfigs: dict[children.Key, str] = field(default_factory=dict)
    # Last status written per cluster: the event that follows our own write may carry an
    # older status, and writing the same status twice is a wasted request.
    statuses: dict[children.Key, dict[str, Any]] = field(default_factory=dict)
    # Secrets known to exist (created or found by a 409) before the watch reports them, so
    # a reconcile right after does not generate keys again only to be told they exist.
    known_secrets: dict[children.Key, set[str]] = field(default_factory=dict)
    probes: tenant.Probes = field(default_factory=lambda: tenant.Probes())
    kubeconfig_meta: dict[children.Key, dict[str, str]] = field(default_factory=dict)
    fingerprints: dict[children.Key, str] = field(default_factory=dict)

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
        rt = runtime()
        rt.locks.pop(key, None)
        rt.kubeconfigs.pop(key, None)
        rt.statuses.pop(key, None)
        rt.known_secrets.pop(key, None)
        rt.probes.forget(key)
        rt.kubeconfig_meta.pop(key, None)
        rt.fingerprints.pop(key, None)
        for k in [k for k in rt.applier.applied if k[1] == key[0] and key[1] in k[2]]:
            del rt.applier.applied[k]
        return
    await reconcile(dict(body), kw)


@kopf.on.event("apps", "v1", "statefulsets", labels=children.MANAGED)
@kopf.on.event("v1", "services", labels=children.MANAGED)
async def on_child_event(namespace: str, labels: dict[str, str], **kw: Any) -> None:
    """A child changed (pods became ready, LB got an address): refresh its cluster."""
    cluster = labels.get("cluster")
    if not cluster:
        return
    obj = await get_or_none(runtime().client, ClusterResource, cluster, namespace)
    if obj is not None:
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
    # Nothing we look at changed since the last full pass, and no probe is due: the
    # result would be the same, so skip rendering (a resync of a large fleet stays cheap).
    seen = fingerprint(body, owned, indexes)
    if rt.fingerprints.get(key) == seen and not rt.probes.due(key):
        return

    secrets_present = {n for (kind, n) in owned if kind == "Secret"}
    await ensure_pki(body, cluster, secrets_present)

    address = external_address(cluster, body, owned, indexes)
    try:
        objects = render_cluster(cluster, facts_for(cluster, body, owned, address))
    except (RenderError, PatchError) as exc:
        kopf.warn(body, reason="RenderFailed", message=str(exc))
        await write_status(body, _failed_status(body, str(exc)))
        return
    missing: list[str] = []
    for obj in objects:
        observed = owned.get((obj["kind"], obj["metadata"]["name"]))
        if await rt.applier.apply(
            owned_by(obj, body),
            observed.hash if observed else None,
            observed.generation if observed else None,
        ):
            missing.append(f"{obj['kind']}/{obj['metadata']['name']}")
            metrics.WRITES.labels(kind=obj["kind"]).inc()

    kubeconfig_ready = await ensure_kubeconfig(body, cluster, address, owned)
    sts = owned.get(("StatefulSet", names.statefulset(name)))
    functional: bool | None = None
    error = ""
    if sts and (sts.status.get("readyReplicas") or 0) >= 1 and kubeconfig_ready:
        functional, error = await rt.probes.check(key, meta_generation(body), rt)
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
    previous = rt.statuses.get(key) or body.get("status")
    new_status = cluster_status.status(
        previous, name, spec.get("replicas", 1), meta_generation(body), obs
    )
    await write_status(body, new_status)
    rt.fingerprints[key] = seen


def fingerprint(
    body: dict[str, Any], owned: dict[tuple[str, str], children.Child], indexes: dict[str, Any]
) -> str:
    """Everything a reconcile's outcome depends on, as one comparable string.

    The date is part of it so that time-based work (kubeconfig rotation ahead of expiry)
    gets a full pass at least daily even when nothing else moves.
    """
    meta = body["metadata"]
    nodes = sorted((indexes.get("node_addresses") or {}).get(None, []))
    return repr(
        (
            datetime.now(UTC).date().isoformat(),
            meta.get("resourceVersion"),
            sorted(owned.items()),
            nodes if (body.get("spec") or {}).get("service", {}).get("type") == "NodePort" else (),
        )
    )


def facts_for(
    cluster: v1beta2.Cluster,
    body: dict[str, Any],
    owned: dict[tuple[str, str], children.Child],
    address: str | None,
) -> Facts:
    """What rendering needs beyond the spec, all of it observed, none written to the spec."""
    name = body["metadata"]["name"]
    recorded = (body.get("status") or {}).get("version")
    ips = tuple(
        sorted(
            c.status["clusterIP"]
            for (kind, _), c in owned.items()
            if kind == "Service" and c.status.get("clusterIP") not in (None, "", "None")
        )
    )
    etcd_sts = owned.get(("StatefulSet", names.etcd(name)))
    return Facts(
        external_address=address,
        k0s_version_default=recorded or DEFAULT_K0S_VERSION,
        service_cluster_ips=ips,
        etcd_replicas=etcd_step(cluster, etcd_sts),
    )


def etcd_step(cluster: v1beta2.Cluster, observed: children.Child | None) -> int | None:
    """Grow or shrink etcd one member at a time, and only once every member is ready."""
    if cluster.spec.storage.type != "etcd" or observed is None:
        return None
    target = etcd_desired_replicas(cluster.spec.replicas)
    current = observed.status.get("replicas") or 0
    ready = observed.status.get("readyReplicas") or 0
    if current == target or current == 0:
        return target if current == 0 else current
    if ready < current:
        return current
    return current + 1 if target > current else current - 1


def _failed_status(body: dict[str, Any], message: str) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    previous = status.get("conditions")
    status["conditions"] = merge(
        previous,
        [Condition("Available", False, "InvalidSpec", message)],
        meta_generation(body),
    )
    return status


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
    await runtime().client.patch(
        ClusterResource, meta["name"], patch, namespace=meta["namespace"], patch_type=MERGE
    )
    metrics.WRITES.labels(kind="Cluster").inc()


async def ensure_pki(body: dict[str, Any], cluster: v1beta2.Cluster, present: set[str]) -> None:
    """Create the PKI secrets that do not exist; never replace one that does."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    present = present | runtime().known_secrets.get((namespace, name), set())
    wanted = list(pki_secrets.ALL_PURPOSES)
    if cluster.spec.storage.type == "etcd":
        wanted += pki_secrets.ETCD_LEAVES
    have = {p for p in wanted if names.pki_secret(name, p) in present}
    nats = cluster.spec.storage.type == "nats"
    nats_missing = nats and names.nats_token_secret(name) not in present
    if len(have) == len(wanted) and not nats_missing:
        return
    # Create-if-absent: a 409 means the Secret exists (ours, CAPI's or the user's) and it is
    # kept as it is. No lookup first: the create is the lookup.
    new = await asyncio.to_thread(pki_secrets.missing_secrets, name, namespace, have)
    created = [s["metadata"]["name"] for s in new if await _create_once(body, s)]
    if cluster.spec.storage.type == "etcd" and not set(pki_secrets.ETCD_LEAVES) <= have:
        etcd_name = names.pki_secret(name, "etcd")
        ours = next((s for s in new if s["metadata"]["name"] == etcd_name), None)
        if ours and etcd_name in created:
            ca = _cert_key(ours["data"])
        else:
            ca = await read_cert_key(name, "etcd", namespace)
        leaves = await asyncio.to_thread(pki_secrets.missing_etcd_leaves, name, namespace, ca, have)
        created += [s["metadata"]["name"] for s in leaves if await _create_once(body, s)]
    if nats_missing:
        token = pki_secrets.nats_token_secret(name, namespace)
        if await _create_once(body, token):
            created.append(token["metadata"]["name"])
    if created:
        kopf.info(body, reason="SecretsCreated", message=", ".join(created))


def _cert_key(data: dict[str, str]) -> pki.CertKey:
    return pki.CertKey(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))


async def read_cert_key(cluster: str, purpose: str, namespace: str) -> pki.CertKey:
    secret = await runtime().client.get(
        Secret, names.pki_secret(cluster, purpose), namespace=namespace
    )
    return _cert_key(secret.data or {})


async def _create_once(body: dict[str, Any], secret: dict[str, Any]) -> bool:
    """Create, never apply: an existing secret (someone else's, or a race) is kept as is."""
    meta = body["metadata"]
    known = runtime().known_secrets.setdefault((meta["namespace"], meta["name"]), set())
    try:
        await runtime().client.create(from_dict(owned_by(secret, body)))
        metrics.WRITES.labels(kind="Secret").inc()
        created = True
    except ApiError as exc:
        if exc.status.code != 409:
            raise
        created = False
    known.add(secret["metadata"]["name"])
    return created


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
    key = (namespace, name)
    server = f"https://{address}:{api_port(body)}"
    observed = owned.get(("Secret", names.kubeconfig_secret(name)))
    rt = runtime()
    # What we wrote last counts too: the watch may not have delivered it yet, and a second
    # write would also mint a second client certificate.
    for seen in (observed.annotations if observed else None, rt.kubeconfig_meta.get(key)):
        if seen and not kubeconfig_secret.needs_rotation(seen, server):
            return True
    ca = await read_cert_key(name, "ca", namespace)
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
    rt.kubeconfig_meta[key] = secret["metadata"]["annotations"]
    kopf.info(body, reason="KubeconfigWritten", message=f"{secret['metadata']['name']} -> {server}")
    return True


async def write_status(body: dict[str, Any], new_status: dict[str, Any]) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    rt = runtime()
    if (body.get("status") or {}) == new_status or rt.statuses.get(key) == new_status:
        return
    await runtime().client.patch(
        ClusterResource.Status,
        meta["name"],
        {"status": new_status},
        namespace=meta["namespace"],
        patch_type=MERGE,
    )
    rt.statuses[key] = new_status
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
        patch_type=MERGE,
    )
