"""The k0smotron.io Cluster reconciler: observe → render → apply → status.

Level-triggered: every event on a Cluster or on one of its children, and a periodic
resync, runs the same idempotent `reconcile()`. Writes happen only where the observed
state differs from the desired one (hash-compared), so a resync of a converged fleet
makes no writes at all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import PersistentVolumeClaim, Secret
from lightkube.types import PatchType
from pydantic import ValidationError

from mothership import pki
from mothership.api.k0smotron import v1beta2
from mothership.api.k0smotron.v1beta2 import DEFAULT_K0S_VERSION
from mothership.controllers import (
    children,
    cluster_status,
    concurrently,
    datastore_tenant,
    encryption_rotation,
    events,
    kubernetes_distribution,
    metrics,
    refusals,
    remote_host,
    remote_secrets,
    volumes,
)
from mothership.controllers.apply import get_or_none, owned_by
from mothership.controllers.conditions import Condition, merge
from mothership.controllers.runtime import runtime
from mothership.render import encryption, ingress_cert, kubeconfig_secret, names, pki_secrets
from mothership.render.cluster import render_cluster
from mothership.render.etcd import FOUNDING_ANNOTATION
from mothership.render.etcd import desired_replicas as etcd_desired_replicas
from mothership.render.facts import Facts, RenderError
from mothership.render.patches import PatchError
from mothership.webhooks.defaults import default_etcd_image

K0S_IMAGE_REPOSITORY_ENV = "MOTHERSHIP_K0S_IMAGE_REPOSITORY"
"""Operator setting: the repository k0s images come from when a Cluster keeps the API's
default (quay.io/k0sproject/k0s); see Facts.k0s_image_repository. `mothership operator run
--k0s-image-repository` sets it."""

MONITORING_PROMETHEUS_IMAGE_ENV = "MOTHERSHIP_MONITORING_PROMETHEUS_IMAGE"
MONITORING_PROXY_IMAGE_ENV = "MOTHERSHIP_MONITORING_PROXY_IMAGE"
"""Operator settings: the monitoring sidecars' images for Clusters that keep the API's
defaults; see Facts.monitoring_prometheus_image. `mothership operator run
--monitoring-prometheus-image / --monitoring-proxy-image` set them."""

log = logging.getLogger("mothership.cluster")

REFUSED_REASON = "RefusedByAPIServer"
"""Available=False reason (and event reason) when a rendered object cannot be stored."""
RENDER_CRASHED_REASON = "RenderCrashed"
"""Available=False reason (and event reason) when rendering an admitted spec failed."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CA_MISSING_REASON = "CertificateAuthorityMissing"
"""Available=False reason (and event reason) when a CA or signing-key Secret the control plane
ran with is gone: none is made again (see pki_secrets.AUTHORITIES)."""

GROUP, VERSION, PLURAL = "k0smotron.io", "v1beta2", "clusters"
FINALIZER = "k0smotron.io/finalizer"
ClusterResource = create_namespaced_resource(GROUP, VERSION, "Cluster", PLURAL)
# Custom resources take no strategic merge patch.
MERGE = PatchType.MERGE


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
        kubernetes_distribution.forget(key)
        encryption_rotation.forget(key)
        rt.fingerprints.pop(key, None)
        rt.reconciled_versions.pop(key, None)
        await rt.remotes.release(key)
        return
    if stale_event(body["metadata"]):
        return
    await reconcile(dict(body))


def resource_version(meta: Mapping[str, Any]) -> int | None:
    try:
        return int(meta.get("resourceVersion") or "")
    except ValueError:
        return None  # not etcd's (or kine's) integers: never compared


def stale_event(meta: Mapping[str, Any]) -> bool:
    """An event older than the copy a reconcile already started from.

    In a burst kopf's worker for one Cluster may start a minute late and replay its queue:
    the first copy lacks our finalizer (its patch fails with 409), later ones carry an old
    status, which a reconcile takes for a foreign edit and writes again. Resyncs and child
    triggers read the Cluster fresh, so they are never held to this (and a datastore
    restored from a backup, with smaller versions, is reconciled by them as it is).
    resourceVersions are compared as the integers etcd and kine make them.
    """
    version = resource_version(meta)
    last = runtime().reconciled_versions.get((meta["namespace"], meta["name"]))
    return version is not None and last is not None and version < last


# A child's changes (pods became ready, an LB got an address, someone edited or deleted
# it) reach reconcile() through the operator's child watches (operator.Triggers).


# -- reconcile -------------------------------------------------------------------------


async def reconcile(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    key: children.Key = (meta["namespace"], meta["name"])
    rt = runtime()
    started = time.monotonic()
    result = "ok"
    async with rt.lock(key):
        version = resource_version(meta)
        if version is not None:
            rt.reconciled_versions[key] = version
        metrics.QUEUE_DEPTH.inc()
        try:
            if meta.get("deletionTimestamp"):
                await finalize(body)
            else:
                await _reconcile(body, key)
        except Exception:
            result = "error"
            raise
        finally:
            metrics.QUEUE_DEPTH.dec()
            metrics.RECONCILES.labels(kind="Cluster", result=result).inc()
            metrics.DURATION.labels(kind="Cluster").observe(time.monotonic() - started)


async def _reconcile(body: dict[str, Any], key: children.Key) -> None:
    rt = runtime()
    try:
        cluster = v1beta2.Cluster.model_validate(body)
    except ValidationError as exc:
        # The admission webhook rejects such specs; this only happens without it.
        events.warn(body, reason="InvalidSpec", message=str(exc)[:1000])
        return
    await ensure_finalizer(body)
    owned = children.children_of(key)
    # Nothing we look at changed since the last full pass, and no probe is due: the
    # result would be the same, so skip rendering (a resync of a large fleet stays cheap).
    seen = fingerprint(body, owned, rt.remotes.children_of(key), rt.remotes.nodes(key))
    if (
        rt.fingerprints.get(key) == seen
        and not rt.probes.due(key)
        and not kubernetes_distribution.due(key)
        and not encryption_rotation.due(key)
    ):
        return
    try:
        converged = await _converge(body, key, cluster, owned)
    except refusals.Refused as exc:
        await report_refusal(body, exc.refusal)
        return  # no fingerprint: the next resync tries again (a quota may have grown)
    except remote_host.RemoteProblem as exc:
        await report_failure(body, exc.reason, exc.message)
        return  # likewise: the hosting cluster may answer at the next resync
    if converged:
        rt.fingerprints[key] = seen


async def _converge(
    body: dict[str, Any],
    key: children.Key,
    cluster: v1beta2.Cluster,
    owned: dict[tuple[str, str], children.Child],
) -> bool:
    """Render, write what differs, and record the status. False when the spec could not be
    rendered (said in the status); raises Refused when the API server refused an object,
    RemoteProblem when the hosting cluster the spec names cannot be used."""
    if not await ensure_pki(body, cluster, owned):
        return False
    key_secret = ("Secret", names.encryption_secret(body["metadata"]["name"]))
    made = key_secret not in owned
    if not await ensure_encryption_key(body, cluster, owned):
        return False
    if made or await encryption_rotation.advance(body, owned):
        # The key Secret just made or written is a fact of this render: its revision goes
        # on the pod template now (the first pods start with it; a rotation step starts
        # the roll the next step waits for), not in a roll one reconcile later.
        owned = children.children_of(key)
    problem = await datastore_tenant.ensure(body, cluster, owned)
    if problem is not None:
        await report_failure(body, problem.reason, problem.message)
        return False
    if datastore_tenant.data_store_ref(cluster) is not None:
        # The tenant Secret it may just have written (or renewed) is a fact of this render:
        # the pods start with its CA mounted and its certificate's date, not a roll later.
        owned = children.children_of(key)

    host = await _host_of(body)
    with remote_host.reaching(host):
        return await _place(body, key, cluster, owned, host)


async def _host_of(body: dict[str, Any]) -> remote_host.Host:
    """Where the workload objects go: the mothership, or the hosting cluster the spec names
    (RemoteProblem when that cannot be used)."""
    rt = runtime()
    ref = remote_host.kubeconfig_ref(body)
    if ref is None:
        return remote_host.Host(rt.client, rt.applier, children.REGISTRY)
    return await rt.remotes.host_for(rt.client, body, ref)


async def _place(
    body: dict[str, Any],
    key: children.Key,
    cluster: v1beta2.Cluster,
    owned: dict[tuple[str, str], children.Child],
    host: remote_host.Host,
) -> bool:
    """Render and write the control plane's objects on its host, then record the status.

    `owned` is what the mothership holds for the Cluster (PKI, users' kubeconfig); `placed`
    what its host holds (the same registry unless the control plane is hosted remotely).
    """
    rt = runtime()
    name = key[1]
    spec = body.get("spec") or {}
    placed = host.children_of(key) if host.remote else owned
    recorded = (body.get("status") or {}).get("version")
    missing: list[str] = []
    # A new Service goes first, on its own: its cluster IP is part of the k0s config, the
    # StatefulSet and the kubeconfig, which are then written once instead of twice.
    for _ in range(2):
        address = external_address(cluster, body, placed, children.node_addresses(host.registry))
        facts = kubernetes_distribution.facts(
            cluster, facts_for(cluster, body, placed, address), recorded
        )
        try:
            objects = render_cluster(cluster, facts)
        except (RenderError, PatchError) as exc:
            events.warn(body, reason="RenderFailed", message=str(exc))
            await write_status(body, _failed_status(body, str(exc)))
            return False
        except Exception as exc:
            # Admission let this spec through, so it should render: a bug, told on the
            # Cluster rather than only in the operator's log.
            log.exception("rendering %s/%s", key[0], name)
            await report_failure(
                body,
                RENDER_CRASHED_REASON,
                f"the operator could not render this spec ({type(exc).__name__}: {exc}); "
                "this is a bug in mothership: please report it with the spec",
            )
            return False
        new = [o for o in objects if o["kind"] == "Service" and _child_of(o) not in placed]
        if not new:
            break
        for service in new:
            with refusals.refused_as(service, spec):
                await host.applier.apply(host.place(service, body), None)
            missing.append(f"Service/{service['metadata']['name']}")
            metrics.WRITES.labels(kind="Service").inc()
        owned = children.children_of(key)
        placed = host.children_of(key) if host.remote else owned
    try:
        # Before the pods that mount it: a missing Secret holds them in creation.
        await kubernetes_distribution.ensure_certs(rt, body, cluster, facts, owned)
    except (RenderError, PatchError) as exc:
        events.warn(body, reason="RenderFailed", message=str(exc))
        await write_status(body, _failed_status(body, str(exc)))
        return False

    async def apply(obj: dict[str, Any]) -> str | None:
        """The object written (or held back), as `Kind/name`; None if it was in place."""
        observed = placed.get((obj["kind"], obj["metadata"]["name"]))
        if obj["kind"] == "StatefulSet":
            obj, hold = await volumes.fit_claims(host.client, body, obj, observed)
            if hold:
                return f"{obj['kind']}/{obj['metadata']['name']}"
        with refusals.refused_as(obj, spec):
            applied = await host.applier.apply(host.place(obj, body), observed)
        if applied:
            metrics.WRITES.labels(kind=obj["kind"]).inc()
            return f"{obj['kind']}/{obj['metadata']['name']}"
        return None

    # What the pods mount and the Services around them go together (one after another,
    # their round trips were most of the time from apply to the StatefulSet); the
    # StatefulSets after them, so a new pod finds its ConfigMaps and Secrets in place.
    if host.remote:  # the pods there mount copies of the mothership's Secrets
        wanted = remote_secrets.mounted_secrets(objects)
        missing += await remote_secrets.copy_secrets(rt.client, host, body, wanted, owned, placed)
    written = await concurrently.all_at_once(
        [apply(o) for o in objects if o["kind"] != "StatefulSet"]
    )
    written += [await apply(o) for o in objects if o["kind"] == "StatefulSet"]
    missing += [w for w in written if w]

    kubeconfig_ready = await ensure_kubeconfig(body, cluster, address, owned)
    sts = placed.get(("StatefulSet", names.statefulset(name)))
    functional: bool | None = None
    error = ""
    if sts and (sts.status.get("readyReplicas") or 0) >= 1 and kubeconfig_ready:
        functional, error = await rt.probes.check(key, meta_generation(body), rt)
    bootstrap = await kubernetes_distribution.bootstrap(rt, key, cluster, facts, functional)
    authn = await kubernetes_distribution.authentication_loaded(
        rt, body, cluster, functional, host.client
    )
    obs = cluster_status.Observed(
        statefulset=sts,
        objects_missing=missing,
        certificates_ready=True,
        kubeconfig_ready=kubeconfig_ready,
        external_address=address,
        functional=functional,
        functional_error=error,
        version=kubernetes_distribution.status_version(cluster, facts)
        or cluster.spec.version
        or "",
        tenant_bootstrap=bootstrap,
        authentication=authn,
    )
    previous = rt.statuses.get(key) or body.get("status")
    new_status = cluster_status.status(
        previous, name, spec.get("replicas", 1), meta_generation(body), obs
    )
    await write_status(body, new_status)
    return True


async def report_refusal(body: dict[str, Any], refusal: refusals.Refusal) -> None:
    """Say on the Cluster which object was refused and why."""
    await report_failure(body, REFUSED_REASON, str(refusal))


async def report_failure(body: dict[str, Any], reason: str, message: str) -> None:
    """Available=False with this reason, and a Warning event the first time it is told.

    The Available condition because the control plane cannot become available while this
    holds, and it is where `mothership cluster get` and `kubectl wait` users already look.
    """
    meta = body["metadata"]
    # Our own last status write may not be in this body yet: a resync soon after it would
    # otherwise tell the same refusal twice.
    status = runtime().statuses.get((meta["namespace"], meta["name"])) or body.get("status")
    previous = (status or {}).get("conditions") or []
    told = any(c.get("type") == "Available" and c.get("message") == message for c in previous)
    if not told:
        events.warn(body, reason=reason, message=message)
    log.warning("%s/%s: %s", meta["namespace"], meta["name"], message)
    await write_status(body, _failed_status(body, message, reason))


def _child_of(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["kind"], obj["metadata"]["name"])


def fingerprint(
    body: dict[str, Any],
    owned: dict[tuple[str, str], children.Child],
    placed: dict[tuple[str, str], children.Child] | None = None,
    remote_nodes: list[tuple[str, str | None]] | None = None,
) -> bytes:
    """Everything a reconcile's outcome depends on, as one short digest.

    The date is part of it so that time-based work (kubeconfig rotation ahead of expiry)
    gets a full pass at least daily even when nothing else moves.
    """
    meta = body["metadata"]
    nodes = remote_nodes if placed else children.node_addresses()
    text = repr(
        (
            datetime.now(UTC).date().isoformat(),
            meta.get("resourceVersion"),
            sorted(owned.items()),
            sorted((placed or {}).items()),
            nodes if (body.get("spec") or {}).get("service", {}).get("type") == "NodePort" else (),
        )
    )
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


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
    store_secret = owned.get(("Secret", names.datastore_secret(name)))
    key_secret = owned.get(("Secret", names.encryption_secret(name)))
    return Facts(
        encryption_revision=key_secret.annotations.get(encryption.REVISION_ANNOTATION)
        if key_secret is not None
        else None,
        datastore_tls=store_secret is not None
        and store_secret.annotations.get(datastore_tenant.TLS_ANNOTATION) == "true",
        datastore_revision=store_secret.annotations.get(datastore_tenant.REVISION_ANNOTATION)
        if store_secret is not None
        else None,
        external_address=address,
        k0s_version_default=recorded or DEFAULT_K0S_VERSION,
        service_cluster_ips=ips,
        etcd_replicas=etcd_step(cluster, etcd_sts),
        etcd_initial_cluster=etcd_sts.annotations.get(FOUNDING_ANNOTATION) if etcd_sts else None,
        default_etcd_image=default_etcd_image(),
        k0s_image_repository=os.environ.get(K0S_IMAGE_REPOSITORY_ENV) or None,
        monitoring_prometheus_image=os.environ.get(MONITORING_PROMETHEUS_IMAGE_ENV) or None,
        monitoring_proxy_image=os.environ.get(MONITORING_PROXY_IMAGE_ENV) or None,
    )


def etcd_step(cluster: v1beta2.Cluster, observed: children.Child | None) -> int | None:
    """Grow or shrink etcd one member at a time, and only once every member is ready."""
    if not cluster.spec.storage.managed_etcd or observed is None:
        return None
    target = etcd_desired_replicas(cluster.spec.replicas)
    current = observed.status.get("replicas") or 0
    ready = observed.status.get("readyReplicas") or 0
    if current == target or current == 0:
        return target if current == 0 else current
    if ready < current:
        return current
    return current + 1 if target > current else current - 1


def _failed_status(
    body: dict[str, Any], message: str, reason: str = "InvalidSpec"
) -> dict[str, Any]:
    status = dict(body.get("status") or {})
    previous = status.get("conditions")
    status["conditions"] = merge(
        previous,
        [Condition("Available", False, reason, message)],
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


async def ensure_pki(
    body: dict[str, Any],
    cluster: v1beta2.Cluster,
    owned: dict[tuple[str, str], children.Child],
) -> bool:
    """Create the PKI secrets that do not exist; never replace one that does.

    An authority (a CA, the service-account key) is made only for a control plane that
    never ran: once its StatefulSet exists, a missing one is a lost one and a new one would
    break everything signed by the old, so none is made and False says so (told on the
    Cluster; the pods, which cannot mount it, wait for the Secret to be restored). The
    authorities we made carry a finalizer, added here to those made before it existed.
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    present = {n for (kind, n) in owned if kind == "Secret"}
    present |= runtime().known_secrets.get((namespace, name), set())
    ran = ("StatefulSet", names.statefulset(name)) in owned
    lost = await _confirm_gone(body, pki_secrets.lost_authorities(name, present, ran))
    if lost:
        await report_failure(body, CA_MISSING_REASON, pki_secrets.lost_message(namespace, lost))
        return False
    await hold_authorities(body, owned)
    wanted = list(pki_secrets.ALL_PURPOSES)
    if cluster.spec.storage.managed_etcd:
        wanted += pki_secrets.ETCD_LEAVES
    have = {p for p in wanted if names.pki_secret(name, p) in present}
    nats = cluster.spec.storage.type == "nats"
    nats_missing = nats and names.nats_token_secret(name) not in present
    haproxy = names.pki_secret(name, ingress_cert.PURPOSE)
    haproxy_missing = cluster.spec.ingress is not None and haproxy not in present
    if len(have) == len(wanted) and not nats_missing and not haproxy_missing:
        return True
    # Create-if-absent: a 409 means the Secret exists (ours, CAPI's or the user's) and it is
    # kept as it is. No lookup first: the create is the lookup.
    new = await asyncio.to_thread(pki_secrets.missing_secrets, name, namespace, have)
    created = await _create_all(body, new)
    if cluster.spec.storage.managed_etcd and not set(pki_secrets.ETCD_LEAVES) <= have:
        etcd_name = names.pki_secret(name, "etcd")
        ours = next((s for s in new if s["metadata"]["name"] == etcd_name), None)
        if ours and etcd_name in created:
            ca = _cert_key(ours["data"])
        else:
            ca = await read_cert_key(name, "etcd", namespace)
        leaves = await asyncio.to_thread(pki_secrets.missing_etcd_leaves, name, namespace, ca, have)
        created += await _create_all(body, leaves)
    if nats_missing:
        token = pki_secrets.nats_token_secret(name, namespace)
        if await _create_once(body, token):
            created.append(token["metadata"]["name"])
    if haproxy_missing:
        # Serves `kubernetes.default` inside the hosted cluster in ingress mode; signed by
        # the cluster CA, so it follows whichever CA exists (ours or the user's).
        ca = await read_cert_key(name, "ca", namespace)
        leaf = await asyncio.to_thread(ingress_cert.haproxy_secret, cluster, namespace, ca)
        if await _create_once(body, leaf):
            created.append(haproxy)
    if created:
        events.info(body, reason="SecretsCreated", message=", ".join(created))
    return True


async def _confirm_gone(body: dict[str, Any], secrets: list[str]) -> list[str]:
    """Those of these Secrets the API server does not have either.

    The registry holds only Secrets with our labels: one brought by the user or Cluster API
    is known only once a create ran into it, which after a restart has not happened yet,
    and is remembered from here on as such a create would. One of ours is not: the
    registry sees it (it was only behind), and would see it go."""
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    gone = []
    for secret in secrets:
        found = await get_or_none(runtime().client, Secret, secret, meta["namespace"])
        if found is None:
            gone.append(secret)
        elif (found.metadata.labels or {}).get(MANAGED_BY_LABEL) != names.MANAGED_BY:
            runtime().known_secrets.setdefault(key, set()).add(secret)
    return gone


async def hold_authorities(
    body: dict[str, Any], owned: dict[tuple[str, str], children.Child]
) -> None:
    """Put the PKI finalizer on our authority Secrets that lack it (made by an operator
    from before it): one strategic-merge patch each, which adds to the list without
    touching anyone else's finalizers; nothing is written where it already is."""
    meta = body["metadata"]
    held = {
        n: (None if c.deleting else c.finalizers)
        for (kind, n), c in owned.items()
        if kind == "Secret"
    }
    for secret in pki_secrets.unheld(meta["name"], held):
        try:
            result = await runtime().client.patch(
                Secret,
                secret,
                {"metadata": {"finalizers": [pki_secrets.FINALIZER]}},
                namespace=meta["namespace"],
                patch_type=PatchType.STRATEGIC,
            )
        except ApiError as exc:
            if exc.status.code == 404:  # gone since the watch said it was there
                continue
            raise
        metrics.WRITES.labels(kind="Secret").inc()
        children.observe_write(result.to_dict())


async def ensure_encryption_key(
    body: dict[str, Any], cluster: v1beta2.Cluster, owned: dict[tuple[str, str], children.Child]
) -> bool:
    """The tenant's key for encrypting Secrets at rest: made once, never replaced.

    False (told on the Cluster) when the key is gone from a control plane that ran with
    it: a new key could not read what the old one wrote, so none is made and the pods,
    which cannot mount it, wait for the Secret to be restored from a backup."""
    if cluster.spec.distribution != "kubernetes" and encryption.user_provider(
        cluster.spec.k0s_config
    ):
        return True  # the user's k0sConfig names an EncryptionConfiguration of its own
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    secret = names.encryption_secret(name)
    if ("Secret", secret) in owned or secret in runtime().known_secrets.get((namespace, name), ()):
        return True
    running = owned.get(("StatefulSet", names.statefulset(name)))
    if running is not None and running.annotations.get(encryption.KEY_ANNOTATION) == secret:
        await report_failure(
            body,
            "EncryptionKeyMissing",
            f"Secret {namespace}/{secret} holds the key this control plane encrypted its "
            "Secrets with, and it is gone; mothership does not make a new one (data written "
            "with the old key would be lost): restore the Secret from a backup",
        )
        return False
    made = encryption.key_secret(
        name, namespace, os.urandom(encryption.KEY_BYTES), datetime.now(UTC)
    )
    if await _create_once(body, made):
        events.info(body, reason="SecretsCreated", message=secret)
    return True


async def release_encryption_key(name: str, namespace: str) -> None:
    """Let the key Secret go with its Cluster: take off the finalizer that kept it."""
    await _release(names.encryption_secret(name), namespace, encryption.FINALIZER)


async def release_authorities(name: str, namespace: str) -> None:
    """Let the CA and service-account Secrets go with their Cluster (garbage collection
    deletes those we made; restored ones, without an owner, stay): take off our finalizer."""
    await concurrently.all_at_once(
        [
            _release(secret, namespace, pki_secrets.FINALIZER)
            for secret in pki_secrets.authority_secrets(name)
        ]
    )


async def _release(secret: str, namespace: str, finalizer: str) -> None:
    """Take `finalizer` off this Secret, if it is there and carries it; nothing else."""
    client = runtime().client
    try:
        current = await client.get(Secret, secret, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return
        raise
    assert current.metadata is not None
    finalizers = list(current.metadata.finalizers or [])
    if finalizer not in finalizers:
        return
    kept = [f for f in finalizers if f != finalizer]
    # resourceVersion: a finalizer someone added since the read is not dropped (409, and the
    # Cluster's finalize runs again).
    await client.patch(
        Secret,
        secret,
        {
            "metadata": {
                "finalizers": kept or None,
                "resourceVersion": current.metadata.resourceVersion,
            }
        },
        namespace=namespace,
        patch_type=MERGE,
    )
    metrics.WRITES.labels(kind="Secret").inc()


def _cert_key(data: dict[str, str]) -> pki.CertKey:
    return pki.CertKey(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))


async def read_cert_key(cluster: str, purpose: str, namespace: str) -> pki.CertKey:
    secret = await runtime().client.get(
        Secret, names.pki_secret(cluster, purpose), namespace=namespace
    )
    return _cert_key(secret.data or {})


async def _create_all(body: dict[str, Any], secrets: list[dict[str, Any]]) -> list[str]:
    """Create these (independent) Secrets at once; the names of those created."""
    made = await concurrently.all_at_once([_create_once(body, s) for s in secrets])
    return [s["metadata"]["name"] for s, ok in zip(secrets, made, strict=True) if ok]


async def _create_once(body: dict[str, Any], secret: dict[str, Any]) -> bool:
    """Create, never apply: an existing secret (someone else's, or a race) is kept as is."""
    meta = body["metadata"]
    try:
        with refusals.refused_as(secret, body.get("spec") or {}):
            result = await runtime().client.create(from_dict(owned_by(secret, body)))
    except ApiError as exc:
        if exc.status.code != 409:
            raise
        known = runtime().known_secrets.setdefault((meta["namespace"], meta["name"]), set())
        known.add(secret["metadata"]["name"])
        return False
    metrics.WRITES.labels(kind="Secret").inc()
    children.observe_write(result.to_dict())
    return True


def external_address(
    cluster: v1beta2.Cluster,
    body: dict[str, Any],
    owned: dict[tuple[str, str], children.Child],
    nodes: list[tuple[str, str | None]] | None = None,
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
        found = children.node_addresses() if nodes is None else nodes
        return next((addr for _, addr in found if addr), None)
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
    extra = (body.get("spec") or {}).get("kubeconfigSecretMetadata") or {}
    wanted_metadata = kubeconfig_secret.metadata_digest(
        extra.get("labels"), extra.get("annotations")
    )
    # Our last write is in `owned` even before the watch delivers it (the registry takes
    # the write's answer), so a second reconcile does not mint a second client cert.
    if (
        observed is not None
        and not observed.drifted
        and not kubeconfig_secret.needs_rotation(
            dict(observed.annotations), server, metadata=wanted_metadata
        )
    ):
        return True
    ca = await read_cert_key(name, "ca", namespace)
    secret = kubeconfig_secret.kubeconfig_secret(
        name,
        namespace,
        server=server,
        ca=ca,
        extra_labels=extra.get("labels"),
        extra_annotations=extra.get("annotations"),
    )
    with refusals.refused_as(secret, body.get("spec") or {}):
        await rt.applier.apply(owned_by(secret, body), observed)
    metrics.WRITES.labels(kind="Secret").inc()
    rt.kubeconfigs[key] = base64.b64decode(secret["data"]["value"]).decode()
    events.info(
        body, reason="KubeconfigWritten", message=f"{secret['metadata']['name']} -> {server}"
    )
    return True


async def write_status(body: dict[str, Any], new_status: dict[str, Any]) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    rt = runtime()
    if (body.get("status") or {}) == new_status:
        rt.statuses.pop(key, None)  # the object shows it: nothing left to remember
        return
    if rt.statuses.get(key) == new_status:
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


async def finalize(body: dict[str, Any]) -> None:
    """Deletion: dependents go by garbage collection (ownerReferences); PVCs stay unless asked.

    The StatefulSets' PVC retention policy covers their own claims when the user opted in
    with autoDeletePVCs; the claims are also deleted here, so none is left behind when the
    StatefulSet went first or was created before the policy was set.
    """
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return
    name, namespace = meta["name"], meta["namespace"]
    client = runtime().client
    spec = body.get("spec") or {}
    # Each switch governs its own claims: the control plane's (and NATS') or etcd's.
    opted_in = {
        "control-plane": (spec.get("persistence") or {}).get("autoDeletePVCs"),
        "etcd": ((spec.get("storage") or {}).get("etcd") or {}).get("autoDeletePVCs"),
    }
    message = "removing the control plane; its objects go by garbage collection" + (
        f", volume claims of {' and '.join(c for c, yes in opted_in.items() if yes)} deleted"
        if any(opted_in.values())
        else ", volume claims kept (autoDeletePVCs is off)"
    )
    events.info(body, reason="Deleting", message=message)
    resource_version = meta["resourceVersion"]
    new_status = cluster_status.deleting_status(body.get("status"), message, meta.get("generation"))
    if new_status is not None:  # once: a finalizer that runs again finds it written
        try:
            written = await client.patch(
                ClusterResource.Status,
                name,
                {"status": new_status},
                namespace=namespace,
                patch_type=MERGE,
            )
        except ApiError as exc:
            if exc.status.code == 404:
                return  # a late event: the Cluster is already gone
            raise
        metrics.WRITES.labels(kind="ClusterStatus").inc()
        assert written.metadata is not None
        resource_version = written.metadata.resourceVersion  # the status write moved it
    claims_of = [c for c, yes in opted_in.items() if yes]
    if remote_host.kubeconfig_ref(body) is not None:
        if not await _remove_remote(body, claims_of):
            return  # told in an event; the next resync tries again, the finalizer stays
        claims_of = []  # they were in the hosting cluster
    if not await datastore_tenant.release(body):
        return  # told in an event; the next resync tries again, the finalizer stays
    await release_encryption_key(name, namespace)
    await release_authorities(name, namespace)
    for component in claims_of:
        labels = {"cluster": name, "component": component}
        async for pvc in client.list(PersistentVolumeClaim, namespace=namespace, labels=labels):
            if pvc.metadata and pvc.metadata.name:
                await client.delete(PersistentVolumeClaim, pvc.metadata.name, namespace=namespace)
    finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    try:
        await client.patch(
            ClusterResource,
            name,
            {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}},
            namespace=namespace,
            patch_type=MERGE,
        )
    except ApiError as exc:
        # 404: an earlier run (this body is a late event of our own status write) finished.
        # 409: the object changed since; that change's event runs this again.
        if exc.status.code not in (404, 409):
            raise


async def _remove_remote(body: dict[str, Any], claims_of: list[str]) -> bool:
    """Delete the control plane from its hosting cluster (no garbage collector crosses
    clusters). False, with a warning, while that cluster cannot be used: the Cluster stays
    until it can, since going without would leave a control plane running unowned."""
    ref = remote_host.kubeconfig_ref(body)
    assert ref is not None
    rt = runtime()
    meta = body["metadata"]
    try:
        host = await rt.remotes.host_for(rt.client, body, ref)
        with remote_host.reaching(host):
            deleted = await remote_host.remove(host, body, claims_of)
    except remote_host.RemoteProblem as exc:
        events.warn(
            body,
            reason=remote_host.CLEANUP_REASON,
            message=f"{exc.message}; the Cluster is deleted once its objects there are, or "
            f"remove the finalizer {FINALIZER} to leave them behind",
        )
        return False
    events.info(
        body,
        reason="RemoteObjectsDeleted",
        message=f"{deleted} objects deleted in the hosting cluster ({ref})",
    )
    await rt.remotes.release((meta["namespace"], meta["name"]))
    return True
