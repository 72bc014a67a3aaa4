"""What the Cluster reconciler does only for the `kubernetes` distribution.

Three things k0s does for itself inside its pod, and upstream components need done for
them: facts that name the component images and version, the leaf certificates Secret
the pods mount, and the bootstrap objects applied into the serving tenant. Everything
else (PKI Secrets, Services, kubeconfig, status) is the reconciler's shared path.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Secret

from mothership import pki
from mothership.api.k0smotron import v1beta2
from mothership.controllers import (
    children,
    events,
    metrics,
    tenant_authentication,
    tenant_bootstrap,
)
from mothership.controllers.apply import owned_by
from mothership.controllers.conditions import Condition
from mothership.controllers.runtime import Runtime
from mothership.render import authentication, kubernetes_certs, names
from mothership.render.facts import Facts, kubernetes_version

IMAGE_TEMPLATE_ENV = "MOTHERSHIP_KUBERNETES_IMAGE_TEMPLATE"
"""Operator setting: image of the control plane components when a Cluster names none.

``{version}`` stands for the Cluster's Kubernetes version, e.g.
``localhost/mothership/control-plane:{version}``; the image holds every component binary
on PATH under its upstream name. `mothership operator run --kubernetes-image-template`
sets it. Unset: the upstream images (registry.k8s.io/kube-apiserver:<version>, ...).
"""


@dataclass
class State:
    """Per-process memory, per tenant: CA certificates and bootstrap outcomes."""

    ca_pems: dict[children.Key, bytes] = field(default_factory=dict)
    bootstraps: tenant_bootstrap.Bootstraps = field(
        default_factory=lambda: tenant_bootstrap.Bootstraps()
    )
    authentications: tenant_authentication.Checks = field(
        default_factory=lambda: tenant_authentication.Checks()
    )


STATE = State()


def is_kubernetes(cluster: v1beta2.Cluster) -> bool:
    return cluster.spec.distribution == "kubernetes"


def image_template() -> str | None:
    return os.environ.get(IMAGE_TEMPLATE_ENV) or None


def facts(cluster: v1beta2.Cluster, shared: Facts, recorded_version: str | None) -> Facts:
    """The shared facts plus the distribution's version default and image template.

    The recorded version (status.version) is what the cluster was first rendered with, so
    an operator release with a newer default does not upgrade unversioned clusters.
    """
    if not is_kubernetes(cluster):
        return shared
    return dataclasses.replace(
        shared,
        kubernetes_version_default=recorded_version or v1beta2.DEFAULT_KUBERNETES_VERSION,
        kubernetes_image_template=image_template(),
    )


def status_version(cluster: v1beta2.Cluster, facts: Facts) -> str:
    """What status.version records: the version the pods are rendered with."""
    return kubernetes_version(cluster.spec, facts) if is_kubernetes(cluster) else ""


def due(key: children.Key) -> bool:
    """A bootstrap or authentication check is due, so a reconcile must not be skipped as
    unchanged."""
    return STATE.bootstraps.due(key) or STATE.authentications.due(key)


def forget(key: children.Key) -> None:
    STATE.ca_pems.pop(key, None)
    STATE.bootstraps.forget(key)
    STATE.authentications.forget(key)


async def _pair(rt: Runtime, secret_name: str, namespace: str) -> pki.CertKey:
    secret = await rt.client.get(Secret, secret_name, namespace=namespace)
    data = secret.data or {}
    return pki.CertKey(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))


async def ensure_certs(
    rt: Runtime,
    body: dict[str, Any],
    cluster: v1beta2.Cluster,
    facts: Facts,
    owned: dict[tuple[str, str], children.Child],
) -> None:
    """`<cluster>-kubernetes-certs`: made when missing, again only when the names the API
    server answers to, the in-pod port or the CA Secrets change, or expiry nears. The CAs
    themselves are only read."""
    if not is_kubernetes(cluster) or not facts.external_address:
        return
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    digest = kubernetes_certs.inputs_digest(cluster, facts)
    # Our last write is in `owned` before the watch delivers it (the registry takes the
    # write's answer), and a deleted Secret is absent from it, so it is made again.
    observed = owned.get(("Secret", names.kubernetes_certs_secret(name)))
    if observed is not None and not kubernetes_certs.needs_regeneration(
        dict(observed.annotations), digest
    ):
        return
    ca_name, proxy_name = kubernetes_certs.ca_secret_names(cluster)
    ca = await _pair(rt, ca_name, namespace)
    proxy = await _pair(rt, proxy_name, namespace)
    secret = await asyncio.to_thread(
        kubernetes_certs.certs_secret, cluster, facts, ca=ca, proxy_ca=proxy
    )
    await rt.applier.apply(owned_by(secret, body), None)
    metrics.WRITES.labels(kind="Secret").inc()
    _, ips = kubernetes_certs.apiserver_sans(cluster, facts)
    events.info(
        body,
        reason="CertificatesWritten",
        message=f"{secret['metadata']['name']}: API server certificate for {', '.join(ips)}",
    )


async def _ca_pem(rt: Runtime, cluster: v1beta2.Cluster, key: children.Key) -> bytes:
    if key not in STATE.ca_pems:
        ca_name, _ = kubernetes_certs.ca_secret_names(cluster)
        STATE.ca_pems[key] = (await _pair(rt, ca_name, key[0])).cert_pem
    return STATE.ca_pems[key]


async def bootstrap(
    rt: Runtime,
    key: children.Key,
    cluster: v1beta2.Cluster,
    facts: Facts,
    functional: bool | None,
) -> Condition | None:
    """The TenantBootstrapped condition (None for k0s, which bootstraps itself)."""
    if not is_kubernetes(cluster):
        return None
    if not functional:
        return tenant_bootstrap.waiting()
    ca_pem = await _ca_pem(rt, cluster, key)
    return await tenant_bootstrap.ensure(rt, STATE.bootstraps, key, cluster, facts, ca_pem)


async def authentication_loaded(
    rt: Runtime,
    body: dict[str, Any],
    cluster: v1beta2.Cluster,
    functional: bool | None,
    pods_client: AsyncClient,
) -> Condition | None:
    """The AuthenticationLoaded condition (None for k0s, or when no issuer is trusted),
    with a Warning event when the tenant API server is seen refusing a file."""
    if not is_kubernetes(cluster):
        return None
    namespace, name = key = (body["metadata"]["namespace"], body["metadata"]["name"])
    pods = [f"{names.statefulset(name)}-{i}" for i in range(cluster.spec.replicas)]
    before = STATE.authentications.outcome(key)
    cond = await tenant_authentication.check(
        rt,
        key,
        authentication.file_text(cluster),
        functional,
        tenant_authentication.pod_logs(pods_client, namespace, pods, "kube-apiserver"),
        STATE.authentications,
    )
    if cond is not None and cond.reason == "Rejected" and before != cond:
        events.warn(body, reason="AuthenticationRejected", message=cond.message)
    return cond
