"""The PKI Secrets of a Cluster, in Cluster API's format.

Generated once and never regenerated while they exist: a new CA would invalidate every
kubeconfig and every joined node. The caller passes which purposes already exist; this
module only makes the missing ones.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from mothership import pki
from mothership.render import names

# purpose -> common name of the CA stored under that purpose.
CA_PURPOSES = {
    "ca": "kubernetes-ca",
    "proxy": "front-proxy-ca",
    "etcd": "etcd-ca",
}
SA_PURPOSE = "sa"
ALL_PURPOSES = (*CA_PURPOSES, SA_PURPOSE)
# Leaf certificates signed by the etcd CA, used only with managed etcd storage.
ETCD_LEAVES = ("apiserver-etcd-client", "etcd-server", "etcd-peer")


def _secret(cluster: str, namespace: str, purpose: str, crt: bytes, key: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": names.CAPI_SECRET_TYPE,
        "metadata": {
            "name": names.pki_secret(cluster, purpose),
            "namespace": namespace,
            "labels": {
                **names.labels(cluster, "pki"),
                names.CAPI_CLUSTER_NAME_LABEL: cluster,
            },
        },
        "data": {
            "tls.crt": base64.b64encode(crt).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }


def leaf_secret(cluster: str, namespace: str, purpose: str, leaf: pki.CertKey) -> dict[str, Any]:
    """A certificate and its key in Cluster API's format, named after its purpose."""
    return _secret(cluster, namespace, purpose, leaf.cert_pem, leaf.key_pem)


def missing_secrets(cluster: str, namespace: str, existing: set[str]) -> list[dict[str, Any]]:
    """Secrets for the purposes not in `existing`.

    CAs are RSA: k0s and kubeadm-era tooling sign leaf certificates with the CA key and
    expect RSA; the service-account pair is RSA as kube-apiserver requires.
    """
    out = []
    for purpose, cn in CA_PURPOSES.items():
        if purpose not in existing:
            ca = pki.new_ca(cn, key_type="rsa")
            out.append(_secret(cluster, namespace, purpose, ca.cert_pem, ca.key_pem))
    if SA_PURPOSE not in existing:
        private, public = pki.new_service_account_key()
        out.append(_secret(cluster, namespace, SA_PURPOSE, public, private))
    return out


def etcd_hosts(cluster: str, namespace: str) -> tuple[list[str], list[str]]:
    """DNS names and IPs an etcd member answers on: the headless Service and every pod."""
    svc = names.etcd(cluster)
    dns = ["localhost"]
    for base in (svc, f"{svc}.{namespace}.svc", f"{svc}.{namespace}.svc.cluster.local"):
        dns += [base, f"*.{base}"]
    return dns, ["127.0.0.1"]


def missing_etcd_leaves(
    cluster: str, namespace: str, etcd_ca: pki.CertKey, existing: set[str]
) -> list[dict[str, Any]]:
    """etcd server, peer and apiserver-client certificates not in `existing`."""
    dns, ips = etcd_hosts(cluster, namespace)
    out = []
    for purpose in ETCD_LEAVES:
        if purpose in existing:
            continue
        leaf = pki.issue_cert(
            etcd_ca,
            purpose,
            organizations=(purpose,),
            dns_names=dns,
            ip_addresses=ips,
            server=purpose != "apiserver-etcd-client",
            client=True,
            validity_days=3650,
            key_type="rsa",
        )
        out.append(_secret(cluster, namespace, purpose, leaf.cert_pem, leaf.key_pem))
    return out


def nats_token_secret(cluster: str, namespace: str) -> dict[str, Any]:
    """The shared token NATS members authenticate with; random, made once."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.nats_token_secret(cluster),
            "namespace": namespace,
            "labels": names.labels(cluster, "nats"),
        },
        "data": {"token": base64.b64encode(secrets.token_hex(32).encode()).decode()},
    }
