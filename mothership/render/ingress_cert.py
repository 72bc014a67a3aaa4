"""The serving certificate of the in-cluster haproxy that ingress mode deploys.

Pods of the hosted cluster reach `kubernetes.default` through haproxy on their node
(render/ingress.py); haproxy terminates TLS with this certificate, signed by the
cluster CA, and workers get it from Secret `<cluster>-ingress-haproxy` (CAPI format,
`tls.crt`/`tls.key`, the name k0smotron's worker bootstrap reads).
"""

from __future__ import annotations

from typing import Any

from mothership import pki
from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import pki_secrets
from mothership.render.facts import identity
from mothership.render.ingress import kubernetes_service_ip

PURPOSE = "ingress-haproxy"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def cluster_domain(cluster: Cluster) -> str:
    spec = (cluster.spec.k0s_config or {}).get("spec")
    network = spec.get("network") if isinstance(spec, dict) else None
    domain = network.get("clusterDomain") if isinstance(network, dict) else None
    return domain.strip() if isinstance(domain, str) and domain.strip() else DEFAULT_CLUSTER_DOMAIN


def hosts(cluster: Cluster) -> tuple[list[str], list[str]]:
    """DNS names and IPs pods dial the API server by, which haproxy answers for."""
    domain = cluster_domain(cluster)
    dns = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster",
        f"kubernetes.default.svc.{domain}",
        f"kubernetes.svc.{domain}",
        "localhost",
    ]
    return dns, ["127.0.0.1", kubernetes_service_ip(cluster)]


def haproxy_secret(cluster: Cluster, namespace: str, ca: pki.CertKey) -> dict[str, Any]:
    """Secret `<cluster>-ingress-haproxy`: a leaf of the cluster CA for haproxy to serve."""
    name, _ = identity(cluster)
    dns, ips = hosts(cluster)
    leaf = pki.issue_cert(
        ca,
        PURPOSE,
        organizations=("kubernetes",),
        dns_names=dns,
        ip_addresses=ips,
        server=True,
        client=True,
        validity_days=3650,
        key_type="rsa",
    )
    return pki_secrets.leaf_secret(name, namespace, PURPOSE, leaf)
