"""The PKI Secrets of a Cluster, in Cluster API's format.

Generated once and never regenerated while they exist: a new CA would invalidate every
kubeconfig and every joined node. The caller passes which purposes already exist; this
module only makes the missing ones.

The authorities (see AUTHORITIES) are also never regenerated once a control plane ran with
them: each carries the finalizer FINALIZER, which the operator removes only when the
Cluster goes, so a `kubectl delete` by mistake leaves it in place (terminating, still
mounted); and if one is gone anyway, `lost_authorities` names it and the operator makes
no new one but says so on the Cluster. Leaf certificates are made again when missing:
their CA still signs a new one that everything trusts.
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
# What cannot be made again without breaking what trusts it, per purpose:
# - ca: the cluster CA; every kubeconfig, kubelet (joined worker) and API server
#   certificate is signed by it and every client trusts it.
# - proxy: the front-proxy CA; aggregated API servers trust requests signed by it.
# - etcd: the etcd CA; etcd members and the API server trust each other through it (and
#   k0s controllers are handed it whatever the storage).
# - sa: not a CA but the service-account signing key; every service-account token the
#   tenant issued was signed with it and would stop verifying.
# Not here, made again from their CA when missing: the etcd leaves (ETCD_LEAVES), the
# ingress haproxy certificate, `<cluster>-kubernetes-certs` and the kubeconfig.
AUTHORITIES = ALL_PURPOSES
FINALIZER = "k0smotron.io/pki"
# Leaf certificates signed by the etcd CA, used only with managed etcd storage.
ETCD_LEAVES = ("apiserver-etcd-client", "etcd-server", "etcd-peer")


def _secret(cluster: str, namespace: str, purpose: str, crt: bytes, key: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {
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
    if purpose in AUTHORITIES:
        out["metadata"]["finalizers"] = [FINALIZER]
    return out


def authority_secrets(cluster: str) -> list[str]:
    """The Secret names of this Cluster's authorities, in AUTHORITIES' order."""
    return [names.pki_secret(cluster, p) for p in AUTHORITIES]


def lost_authorities(cluster: str, present: set[str], ran: bool) -> list[str]:
    """Authority Secrets that are gone although the control plane ran with them.

    `ran`: the control plane was given its authorities (its StatefulSet exists; the
    operator makes it only after every authority exists, and its pods mount them all).
    Before that, a missing authority is one still to be made: a new Cluster's.
    """
    if not ran:
        return []
    return [s for s in authority_secrets(cluster) if s not in present]


def lost_message(namespace: str, lost: list[str]) -> str:
    """Available's message for lost authorities: which Secrets, why none is made, the fix."""
    which = ", ".join(f"{namespace}/{s}" for s in lost)
    if len(lost) == 1:
        return (
            f"Secret {which} held a certificate authority or signing key this control plane "
            "ran with, and it is gone; mothership does not make a new one (every kubeconfig, "
            "joined node and service-account token signed with the old one would break): "
            "restore the Secret from a backup"
        )
    return (
        f"Secrets {which} held certificate authorities or signing keys this control plane "
        "ran with, and they are gone; mothership does not make new ones (every kubeconfig, "
        "joined node and service-account token signed with the old ones would break): "
        "restore the Secrets from a backup"
    )


def unheld(cluster: str, finalizers: dict[str, tuple[str, ...] | None]) -> list[str]:
    """Authority Secrets present without FINALIZER, to be given it.

    `finalizers`: Secret name -> its finalizers, None when it is being deleted (no
    finalizer can be added then, and one that is terminating is held by ours already or
    by nothing). Secrets not in it are not ours to hold (absent, or someone else's).
    """
    out = []
    for secret in authority_secrets(cluster):
        held = finalizers.get(secret, (FINALIZER,))
        if held is not None and FINALIZER not in held:
            out.append(secret)
    return out


def leaf_secret(cluster: str, namespace: str, purpose: str, leaf: pki.CertKey) -> dict[str, Any]:
    """A certificate and its key in Cluster API's format, named after its purpose."""
    return _secret(cluster, namespace, purpose, leaf.cert_pem, leaf.key_pem)


def missing_secrets(cluster: str, namespace: str, existing: set[str]) -> list[dict[str, Any]]:
    """Secrets for the purposes not in `existing`.

    Every key is ECDSA P-256. An RSA 2048 key costs 50-150 ms of the operator's CPU, and
    the three a Cluster had (cluster CA, front-proxy CA, service-account pair) were over half
    of its CPU per Cluster (`bench fleet`, issue 12); P-256 takes well under a millisecond.
    Everything that signs or verifies with them takes it: kube-apiserver and the controller
    manager (ES256 service-account tokens, CSR signing), kubelets, etcd, k0s (its certificate
    manager signs its leaves with our CAs through cfssl, which picks ECDSA-SHA256 for an EC
    key), Cluster API (its key decoder reads PKCS#8 and EC keys) and Prometheus. Authorities
    made before stay as they are: RSA ones keep working, and none is ever made again.
    """
    out = []
    for purpose, cn in CA_PURPOSES.items():
        if purpose not in existing:
            ca = pki.new_ca(cn)
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
    """etcd server, peer and apiserver-client certificates not in `existing`.

    Their keys are ECDSA P-256, as every other leaf's: etcd, etcdctl, kube-apiserver and
    k0s (all Go) take them, the CA signing them may still be RSA, and making three RSA
    keys was a third of the operator's CPU per Cluster (`bench fleet`, issue 12). Leaves
    made before stay as they are."""
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
