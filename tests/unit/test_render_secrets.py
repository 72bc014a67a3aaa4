"""PKI Secrets and the kubeconfig Secret (pure)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mothership import pki
from mothership.controllers.apply import desired_hash, owned_by, stamp
from mothership.render import kubeconfig_secret, names, pki_secrets


def test_missing_secrets_only_makes_what_is_missing() -> None:
    made = pki_secrets.missing_secrets("demo", "ns", {"ca", "sa"})
    assert sorted(s["metadata"]["name"] for s in made) == ["demo-etcd", "demo-proxy"]
    assert pki_secrets.missing_secrets("demo", "ns", set(pki_secrets.ALL_PURPOSES)) == []


def test_pki_secrets_are_capi_shaped_ecdsa_authorities() -> None:
    made = {s["metadata"]["name"]: s for s in pki_secrets.missing_secrets("demo", "ns", set())}
    assert set(made) == {"demo-ca", "demo-proxy", "demo-etcd", "demo-sa"}
    ca = made["demo-ca"]
    assert ca["type"] == "cluster.x-k8s.io/secret"
    assert ca["metadata"]["labels"][names.CAPI_CLUSTER_NAME_LABEL] == "demo"
    crt = base64.b64decode(ca["data"]["tls.crt"])
    key = base64.b64decode(ca["data"]["tls.key"])
    assert pki.key_matches_cert(crt, key)
    assert pki.CertKey(crt, key).certificate.public_key().curve.name == "secp256r1"
    for name in ("demo-proxy", "demo-etcd"):
        cert = pki.CertKey(
            base64.b64decode(made[name]["data"]["tls.crt"]),
            base64.b64decode(made[name]["data"]["tls.key"]),
        ).certificate
        assert cert.public_key().curve.name == "secp256r1", name
    # The service-account pair: public half in tls.crt, private in tls.key, as Cluster API has it.
    sa = made["demo-sa"]["data"]
    public = base64.b64decode(sa["tls.crt"])
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----")
    private = serialization.load_pem_private_key(base64.b64decode(sa["tls.key"]), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert serialization.load_pem_public_key(public) == private.public_key()


def test_authorities_carry_the_pki_finalizer_and_leaves_do_not() -> None:
    made = {s["metadata"]["name"]: s for s in pki_secrets.missing_secrets("demo", "ns", set())}
    assert all(s["metadata"]["finalizers"] == [pki_secrets.FINALIZER] for s in made.values())
    assert set(made) == set(pki_secrets.authority_secrets("demo"))
    leaves = pki_secrets.missing_etcd_leaves("demo", "ns", pki.new_ca("etcd-ca"), set())
    assert leaves and all("finalizers" not in s["metadata"] for s in leaves)
    leaf = pki_secrets.leaf_secret("demo", "ns", "ingress-haproxy", pki.new_ca("x"))
    assert "finalizers" not in leaf["metadata"]


def test_a_missing_authority_is_lost_only_once_the_control_plane_ran() -> None:
    every = set(pki_secrets.authority_secrets("demo"))
    assert pki_secrets.lost_authorities("demo", set(), ran=False) == []
    assert pki_secrets.lost_authorities("demo", every, ran=True) == []
    assert pki_secrets.lost_authorities("demo", every - {"demo-sa"}, ran=True) == ["demo-sa"]
    # Leaves are made again from their CA: never lost.
    assert pki_secrets.lost_authorities("demo", every | {"demo-etcd-peer"}, ran=True) == []
    assert pki_secrets.lost_authorities("demo", set(), ran=True) == [
        "demo-ca",
        "demo-proxy",
        "demo-etcd",
        "demo-sa",
    ]


def test_the_lost_message_names_the_secrets_and_the_fix() -> None:
    one = pki_secrets.lost_message("ns", ["demo-ca"])
    assert "Secret ns/demo-ca " in one and one.endswith("restore the Secret from a backup")
    two = pki_secrets.lost_message("ns", ["demo-ca", "demo-sa"])
    assert "ns/demo-ca, ns/demo-sa" in two and two.endswith("restore the Secrets from a backup")


def test_unheld_names_our_present_authorities_without_the_finalizer() -> None:
    ours = pki_secrets.FINALIZER
    held = {
        "demo-ca": (ours,),
        "demo-proxy": ("someone.else/keep",),  # ours is added next to theirs
        "demo-etcd": None,  # terminating: nothing can be added
        "demo-etcd-peer": (),  # a leaf: not held
        # demo-sa absent: nothing to hold
    }
    assert pki_secrets.unheld("demo", held) == ["demo-proxy"]
    assert (
        pki_secrets.unheld("demo", {s: (ours,) for s in pki_secrets.authority_secrets("demo")})
        == []
    )


def test_kubeconfig_secret_is_signed_by_the_cluster_ca() -> None:
    ca = pki.new_ca("kubernetes-ca", key_type="rsa")
    secret = kubeconfig_secret.kubeconfig_secret(
        "demo", "ns", server="https://10.0.0.5:30443", ca=ca, extra_labels={"team": "a"}
    )
    assert secret["metadata"]["name"] == "demo-kubeconfig"
    assert secret["type"] == "cluster.x-k8s.io/secret"
    assert secret["metadata"]["labels"]["team"] == "a"
    config = yaml.safe_load(base64.b64decode(secret["data"]["value"]))
    assert config["clusters"][0]["cluster"]["server"] == "https://10.0.0.5:30443"
    assert config["current-context"] == "demo-admin@demo"
    client_crt = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    assert pki.cert_signed_by(client_crt, ca.cert_pem)
    annotations = secret["metadata"]["annotations"]
    asked = kubeconfig_secret.metadata_digest({"team": "a"}, None)
    assert not kubeconfig_secret.needs_rotation(annotations, "https://10.0.0.5:30443", None, asked)
    # Other extra metadata asked for (or none any more): written again.
    other = kubeconfig_secret.metadata_digest({"team": "b"}, None)
    assert kubeconfig_secret.needs_rotation(annotations, "https://10.0.0.5:30443", None, other)
    assert kubeconfig_secret.needs_rotation(annotations, "https://10.0.0.5:30443")


def test_kubeconfig_rotation_rules() -> None:
    soon = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=300)).isoformat()
    server = "https://a:1"
    ann = {kubeconfig_secret.SERVER_ANNOTATION: server}
    assert kubeconfig_secret.needs_rotation(None, server)
    assert kubeconfig_secret.needs_rotation(
        {**ann, kubeconfig_secret.NOT_AFTER_ANNOTATION: soon}, server
    )
    assert not kubeconfig_secret.needs_rotation(
        {**ann, kubeconfig_secret.NOT_AFTER_ANNOTATION: later}, server
    )
    assert kubeconfig_secret.needs_rotation(
        {**ann, kubeconfig_secret.NOT_AFTER_ANNOTATION: later}, "https://b:1"
    )
    # A Secret from before extra metadata was tracked, none asked for: left alone.
    assert kubeconfig_secret.metadata_digest(None, {}) == ""


def test_stamp_hash_is_stable_and_ignores_itself() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}}
    once = stamp(obj)
    assert stamp(once) == once
    assert desired_hash(once) == desired_hash(obj)
    changed = {**obj, "data": {"a": "2"}}
    assert desired_hash(changed) != desired_hash(obj)
    owner = {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "demo", "uid": "u-1"},
    }
    ref = owned_by(obj, owner)["metadata"]["ownerReferences"][0]
    assert ref == {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "name": "demo",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
