"""Leaf certificates and kubeconfigs of the kubernetes distribution, in one Secret.

k0s makes these itself from the CA; upstream components need them handed over. They are
signed here from the cluster's CAs (which are never regenerated) and stored in
`<cluster>-kubernetes-certs`, which the control plane pods mount by name: the pod template
never carries certificate content, so a new certificate does not roll the pods (the API
server re-reads its serving certificate from disk).

The Secret is made again only when what its certificates say would change (the names the
API server is reached by, the port the in-pod kubeconfigs dial, the CA Secrets they chain
to) or when they approach expiry. The controller decides that from two annotations, so it
never reads the Secret's content to find out.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mothership import pki
from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import configmaps, names, network, statefulset
from mothership.render import kubernetes_control_plane as kcp
from mothership.render.facts import Facts, external_address, identity

INPUTS_ANNOTATION = "mothership.io/kubernetes-certs-inputs"
NOT_AFTER_ANNOTATION = "mothership.io/kubernetes-certs-not-after"
VALIDITY_DAYS = 365
RENEW_BEFORE = timedelta(days=30)
COMPONENT = "kubernetes-certs"

CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
KONNECTIVITY_USER = "system:konnectivity-server"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
MONITORING_USER = "mothership:monitoring"
MONITORING_GROUP = "system:monitoring"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def apiserver_sans(cluster: Cluster, facts: Facts) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the API server is reached by, each sorted and unique.

    From outside: the Service names and cluster IPs, the external address, the user's
    k0sConfig SANs (the names k0s would sign). From inside the tenant: the `kubernetes`
    Service by every name and its cluster IP. From inside the pod: localhost.
    """
    spec = cluster.spec
    domain = network.cluster_domain(spec)
    everything = set(configmaps.sans(cluster, facts))
    everything.update(
        {
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{domain}",
            "localhost",
            "127.0.0.1",
            network.service_ip(spec, 1),
        }
    )
    address = external_address(spec, facts)
    if address:
        everything.add(address)
    ips = sorted(v for v in everything if _is_ip(v))
    dns = sorted(v for v in everything if not _is_ip(v))
    return dns, ips


def _ca_secrets(cluster: Cluster) -> tuple[str, str]:
    cluster_name, _ = identity(cluster)
    refs = dict(statefulset.certificate_refs(cluster))
    return (
        refs.get("ca", names.pki_secret(cluster_name, "ca")),
        refs.get("proxy", names.pki_secret(cluster_name, "proxy")),
    )


def ca_secret_names(cluster: Cluster) -> tuple[str, str]:
    """(cluster CA Secret, front-proxy CA Secret) the certificates are signed from."""
    return _ca_secrets(cluster)


def inputs_digest(cluster: Cluster, facts: Facts) -> str:
    """What the certificates depend on, as a short digest stored on the Secret."""
    dns, ips = apiserver_sans(cluster, facts)
    inputs = {
        "dns": dns,
        "ips": ips,
        "apiPort": cluster.spec.service.api_port,
        "cas": list(_ca_secrets(cluster)),
    }
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def needs_regeneration(
    annotations: dict[str, str] | None, digest: str, now: datetime | None = None
) -> bool:
    """True when the Secret is missing, was made for other inputs, or expires soon."""
    if not annotations or annotations.get(INPUTS_ANNOTATION) != digest:
        return True
    raw = annotations.get(NOT_AFTER_ANNOTATION)
    try:
        not_after = datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return True
    if not_after is None or not_after.tzinfo is None:
        return True
    return (now or datetime.now(UTC)) + RENEW_BEFORE >= not_after


def _b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def certs_secret(
    cluster: Cluster, facts: Facts, *, ca: pki.CertKey, proxy_ca: pki.CertKey
) -> dict[str, Any]:
    """A fresh `<cluster>-kubernetes-certs` Secret (new keys every call)."""
    cluster_name, namespace = identity(cluster)
    dns, ips = apiserver_sans(cluster, facts)
    server = f"https://127.0.0.1:{cluster.spec.service.api_port}"

    def issue(ca_pair: pki.CertKey, cn: str, orgs: tuple[str, ...] = (), **kw: Any) -> pki.CertKey:
        return pki.issue_cert(ca_pair, cn, organizations=orgs, validity_days=VALIDITY_DAYS, **kw)

    def kubeconfig(user: str, client: pki.CertKey) -> str:
        return pki.kubeconfig(
            cluster_name=cluster_name,
            server=server,
            ca_pem=ca.cert_pem,
            user=user,
            client_cert_pem=client.cert_pem,
            client_key_pem=client.key_pem,
        )

    leaves = {
        kcp.APISERVER_CERT: issue(
            ca, "kube-apiserver", server=True, dns_names=dns, ip_addresses=ips
        ),
        kcp.KUBELET_CLIENT_CERT: issue(ca, KUBELET_CLIENT_USER, client=True),
        kcp.FRONT_PROXY_CLIENT_CERT: issue(proxy_ca, kcp.FRONT_PROXY_CLIENT, client=True),
        kcp.MONITORING_CERT: issue(ca, MONITORING_USER, (MONITORING_GROUP,), client=True),
    }
    clients = {
        kcp.CONTROLLER_MANAGER_KUBECONFIG: CONTROLLER_MANAGER_USER,
        kcp.SCHEDULER_KUBECONFIG: SCHEDULER_USER,
        kcp.KONNECTIVITY_KUBECONFIG: KONNECTIVITY_USER,
    }
    data: dict[str, str] = {}
    expiries = []
    for prefix, pair in leaves.items():
        data[f"{prefix}.crt"] = _b64(pair.cert_pem)
        data[f"{prefix}.key"] = _b64(pair.key_pem)
        expiries.append(pair.not_after)
    for key, user in clients.items():
        client = issue(ca, user, client=True)
        data[key] = _b64(kubeconfig(user, client))
        expiries.append(client.not_after)
    not_after = min(expiries)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.kubernetes_certs_secret(cluster_name),
            "namespace": namespace,
            "labels": {
                **names.labels(cluster_name, COMPONENT),
                names.CAPI_CLUSTER_NAME_LABEL: cluster_name,
            },
            "annotations": {
                INPUTS_ANNOTATION: inputs_digest(cluster, facts),
                NOT_AFTER_ANNOTATION: not_after.isoformat(),
            },
        },
        "data": data,
    }
