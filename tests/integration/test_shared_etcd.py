"""Clusters on a shared etcd DataStore (kwok mothership, a real etcd with auth and TLS).

The operator makes each tenant an etcd user and a role limited to its own key prefix,
issues the tenant a client certificate from the DataStore's CA, and hands the API server
endpoints, prefix and certificate through the tenant Secret. What one tenant's certificate
may do is checked against the real server with etcdctl: its own prefix yes, another's no.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Event, Namespace, Secret
from lightkube.types import PatchType

from mothership.datastores import etcd_admin
from mothership.pki import certs
from mothership.testenv import etcdservers, kube
from mothership.testenv.local import LocalMothership
from tests.integration.test_cluster_operator import Cluster, Operator, _condition, _exists
from tests.integration.test_cluster_operator import kc as kc
from tests.integration.test_cluster_operator import ns as ns
from tests.integration.test_shared_datastore import DataStore, _reachable


@pytest.fixture(scope="module")
def operator(
    mothership_kwok: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(mothership_kwok.cfg.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log")
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def etcd() -> Iterator[etcdservers.EtcdServer]:
    server = etcdservers.start()
    yield server
    etcdservers.remove(server)


def etcd_data_store(kc: Client, server: etcdservers.EtcdServer, ns: str, host: str) -> str:
    """An etcd DataStore as a platform team hands it over: root password and the CA."""
    kc.create(
        Secret(
            metadata=ObjectMeta(name="etcd-root", namespace=ns),
            stringData={"username": etcdservers.ROOT_USER, "password": server.root_password},
        )
    )
    kc.create(
        Secret(
            metadata=ObjectMeta(name="etcd-ca", namespace=ns),
            stringData={
                "ca.crt": server.ca.cert_pem.decode(),
                "ca.key": server.ca.key_pem.decode(),
            },
        )
    )
    name = f"etcd-{uuid.uuid4().hex[:6]}"
    kc.create(
        DataStore(
            metadata=ObjectMeta(name=name),
            spec={
                "driver": "etcd",
                "endpoints": [server.endpoint(host)],
                "adminSecretRef": {"name": "etcd-root", "namespace": ns},
                "tls": {"secretRef": {"name": "etcd-ca", "namespace": ns}},
            },
        )
    )
    return name


def keys_only_under(server: etcdservers.EtcdServer, prefix: str, expected: str) -> None:
    """`expected` is stored under the tenant's prefix, and nothing in the etcd is outside it
    (kube-apiserver keeps no global keys)."""
    keys = server.root("get", f"{prefix}/", "--prefix", "--keys-only").split()
    assert f"{prefix}/{expected}" in keys, keys[:20]
    everything = server.root("get", "/", "--prefix", "--keys-only").split()
    assert everything and all(k.startswith(f"{prefix}/") for k in everything), everything[:5]


def on_etcd(store: str, name: str, ns: str, reclaim: str = "Retain") -> object:
    return Cluster(
        metadata=ObjectMeta(name=name, namespace=ns),
        spec={
            "replicas": 1,
            "distribution": "kubernetes",
            "version": "v1.35.4",
            "storage": {
                "type": "etcd",
                "etcd": {"dataStoreRef": {"name": store, "reclaimPolicy": reclaim}},
            },
        },
    )


def tenant_cert(kc: Client, cluster: str, ns: str) -> tuple[certs.CertKey, dict[str, str]]:
    data = kc.get(Secret, f"{cluster}-datastore", namespace=ns).data or {}
    text = {k: base64.b64decode(v).decode() for k, v in data.items()}
    return certs.CertKey(text["tls.crt"].encode(), text["tls.key"].encode()), text


def test_tenants_get_a_prefix_a_user_and_a_certificate_that_reach_nothing_else(
    kc: Client, operator: Operator, ns: str, etcd: etcdservers.EtcdServer
) -> None:
    store = etcd_data_store(kc, etcd, ns, "127.0.0.1")
    kube.wait_until(
        "DataStore Reachable", lambda: (_reachable(kc, store) or {}).get("status") == "True", 60
    )
    assert "logged in as root at https://127.0.0.1:" in _reachable(kc, store)["message"]
    kc.create(on_etcd(store, "alpha", ns))
    kc.create(on_etcd(store, "beta", ns, reclaim="Delete"))
    for name in ("alpha", "beta"):
        kube.wait_until(
            f"{name}-datastore Secret", lambda n=name: _exists(kc, Secret, f"{n}-datastore", ns), 60
        )
    alpha, beta = etcd_admin.etcd_tenant_for(ns, "alpha"), etcd_admin.etcd_tenant_for(ns, "beta")
    alpha_cert, alpha_data = tenant_cert(kc, "alpha", ns)
    beta_cert, _ = tenant_cert(kc, "beta", ns)
    assert alpha_data["endpoints"] == f"https://127.0.0.1:{etcd.port}"
    assert alpha_data["prefix"] == alpha.prefix
    assert alpha_data["ca.crt"] == etcd.ca.cert_pem.decode()
    assert "ca.key" not in alpha_data  # the CA key stays with the DataStore
    assert alpha_cert.common_name == alpha.user

    # Each tenant writes and reads its own prefix; the other's is refused by etcd itself.
    etcd.etcdctl(alpha_cert, "put", f"{alpha.prefix}/registry/x", "alpha-data")
    etcd.etcdctl(beta_cert, "put", f"{beta.prefix}/registry/x", "beta-data")
    assert "alpha-data" in etcd.etcdctl(alpha_cert, "get", f"{alpha.prefix}/registry/x")
    for cert, other in ((alpha_cert, beta), (beta_cert, alpha)):
        with pytest.raises(etcdservers.EtcdctlError, match="permission denied"):
            etcd.etcdctl(cert, "get", f"{other.prefix}/registry/x")
        with pytest.raises(etcdservers.EtcdctlError, match="permission denied"):
            etcd.etcdctl(cert, "put", f"{other.prefix}/registry/y", "intruder")
        with pytest.raises(etcdservers.EtcdctlError, match="permission denied"):
            etcd.etcdctl(cert, "get", "/", "--prefix")

    # The control plane takes endpoints, prefix and certificate from the Secret; there is no
    # managed etcd.
    kube.wait_until("StatefulSet kmc-alpha", lambda: _exists(kc, StatefulSet, "kmc-alpha", ns), 60)
    assert not _exists(kc, StatefulSet, "kmc-alpha-etcd", ns)

    # The first StatefulSet already names the Secret's revision: no roll after creation.
    revision = "mothership.io/datastore-revision"

    def template_says() -> str | None:
        template = kc.get(StatefulSet, "kmc-alpha", namespace=ns).spec.template.metadata
        return (template.annotations or {}).get(revision)

    def secret_says(key: str = revision) -> str | None:
        annotations = kc.get(Secret, "alpha-datastore", namespace=ns).metadata.annotations
        return (annotations or {}).get(key)

    first_revision = secret_says()
    assert first_revision and template_says() == first_revision
    assert kc.get(StatefulSet, "kmc-alpha", namespace=ns).metadata.generation == 1

    # A certificate near its end is renewed, and the pod template follows (pods roll).
    not_after = "mothership.io/datastore-cert-not-after"
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    kc.patch(
        Secret, "alpha-datastore", {"metadata": {"annotations": {not_after: soon}}}, namespace=ns
    )
    kube.wait_until("alpha's certificate renewed", lambda: secret_says(not_after) != soon, 60)
    renewed_cert, _ = tenant_cert(kc, "alpha", ns)
    assert renewed_cert.cert_pem != alpha_cert.cert_pem
    assert renewed_cert.common_name == alpha.user
    assert secret_says() != first_revision
    kube.wait_until(
        "the pod template names the renewed Secret", lambda: template_says() == secret_says(), 60
    )
    etcd.etcdctl(renewed_cert, "get", f"{alpha.prefix}/registry/x")
    kube.wait_until(
        "DataStore lists both tenants",
        lambda: (
            (kc.get(DataStore, store).status or {}).get("tenants") == [f"{ns}/alpha", f"{ns}/beta"]
        ),
        90,
    )

    # Retain keeps alpha's keys and user; Delete drops beta's.
    kc.delete(Cluster, "alpha", namespace=ns)
    kc.delete(Cluster, "beta", namespace=ns)
    for name in ("alpha", "beta"):
        kube.wait_until(f"{name} gone", lambda n=name: not _exists(kc, Cluster, n, ns), 90)
    assert "alpha-data" in etcd.root("get", f"{alpha.prefix}/registry/x")
    assert etcd.root("get", f"{beta.prefix}/", "--prefix", "--keys-only").strip() == ""
    users = etcd.root("user", "list").split()
    assert alpha.user in users and beta.user not in users
    assert beta.user not in etcd.root("role", "list").split()


def test_a_kine_ref_to_an_etcd_datastore_is_told_and_bad_credentials_are_named(
    kc: Client, operator: Operator, ns: str, etcd: etcdservers.EtcdServer
) -> None:
    store = etcd_data_store(kc, etcd, ns, "127.0.0.1")
    kc.create(
        Cluster(
            metadata=ObjectMeta(name="wrong", namespace=ns),
            spec={
                "replicas": 1,
                "version": "v1.35.4-k0s.0",
                "storage": {"type": "kine", "kine": {"dataStoreRef": {"name": store}}},
            },
        )
    )

    def told() -> bool:
        cond = _condition(kc, "wrong", ns, "Available")
        return bool(cond) and cond.get("reason") == "DataStoreDriverMismatch"

    kube.wait_until("DataStoreDriverMismatch", told, 60)
    message = _condition(kc, "wrong", ns, "Available")["message"]
    assert message == (
        f"spec.storage.kine.dataStoreRef.name names DataStore {store!r} of driver etcd, but "
        "this field takes a postgresql or mysql DataStore; use "
        "spec.storage.etcd.dataStoreRef (storage type etcd) for it, or name a postgresql or "
        "mysql DataStore"
    )

    kc.patch(Secret, "etcd-root", {"stringData": {"password": "wrong"}}, namespace=ns)
    kc.patch(DataStore, store, {"metadata": {"labels": {"poke": "1"}}}, patch_type=PatchType.MERGE)

    def refused() -> bool:
        cond = _reachable(kc, store) or {}
        return cond.get("status") == "False"

    kube.wait_until("DataStore not Reachable", refused, 60)
    assert "authentication failed" in _reachable(kc, store)["message"]
    assert "spec.adminSecretRef" in _reachable(kc, store)["message"]


def test_a_tenant_s_keys_move_to_another_etcd_datastore(
    kc: Client, operator: Operator, ns: str, etcd: etcdservers.EtcdServer
) -> None:
    """dataStoreRef.name edited: the tenant loses its permission on the first etcd, its keys
    (values byte for byte) are copied to the second, the Secret names the second with a
    certificate from its CA; the first keeps the keys."""
    second = etcdservers.start()
    try:
        first_store = etcd_data_store(kc, etcd, ns, "127.0.0.1")
        kc.create(on_etcd(first_store, "mover", ns))
        kube.wait_until(
            "mover-datastore Secret", lambda: _exists(kc, Secret, "mover-datastore", ns), 60
        )
        tenant = etcd_admin.etcd_tenant_for(ns, "mover")
        first_cert, _ = tenant_cert(kc, "mover", ns)
        for i in range(30):
            etcd.etcdctl(first_cert, "put", f"{tenant.prefix}/registry/k{i}", f"value {i} \x01")
        lease = etcd.root("lease", "grant", "600").split()[1]
        etcd.root("put", f"--lease={lease}", f"{tenant.prefix}/registry/events/e", "transient")

        # The second DataStore's Secrets live in another namespace than the first's.
        other_ns = f"{ns}-b"
        kc.create(Namespace(metadata=ObjectMeta(name=other_ns)))
        second_store = etcd_data_store(kc, second, other_ns, "127.0.0.1")
        kc.patch(
            Cluster,
            "mover",
            {"spec": {"storage": {"etcd": {"dataStoreRef": {"name": second_store}}}}},
            namespace=ns,
            patch_type=PatchType.MERGE,
        )

        def on_second() -> bool:
            secret = kc.get(Secret, "mover-datastore", namespace=ns)
            return (secret.metadata.annotations or {}).get(
                "mothership.io/datastore"
            ) == second_store

        kube.wait_until("the Secret names the second etcd", on_second, 90)
        cert, data = tenant_cert(kc, "mover", ns)
        assert data["endpoints"] == f"https://127.0.0.1:{second.port}"
        assert certs.cert_signed_by(cert.cert_pem, second.ca.cert_pem)
        for i in (0, 29):
            got = second.etcdctl(
                cert, "get", f"{tenant.prefix}/registry/k{i}", "--print-value-only"
            )
            assert got.rstrip("\n") == f"value {i} \x01"
        moved = second.root("get", f"{tenant.prefix}/", "--prefix", "--keys-only").split()
        assert len(moved) == 31, moved
        leased = second.root("get", f"{tenant.prefix}/registry/events/e", "-w", "json")
        assert '"lease":0' not in leased.replace(" ", "") and '"lease"' in leased
        # The first etcd keeps the keys, but the tenant may no longer touch them.
        assert len(etcd.root("get", f"{tenant.prefix}/", "--prefix", "--keys-only").split()) == 31
        with pytest.raises(etcdservers.EtcdctlError, match="permission denied"):
            etcd.etcdctl(first_cert, "get", f"{tenant.prefix}/registry/k0")
        events = [
            e.message
            for e in kc.list(Event, namespace=ns)
            if e.involvedObject.name == "mover" and e.reason == "DataStoreMoved"
        ]
        assert events and events[0].startswith("31 keys (1 with a lease, given a new one) copied")
        kc.delete(Cluster, "mover", namespace=ns)
        kube.wait_until("mover gone", lambda: not _exists(kc, Cluster, "mover", ns), 90)
    finally:
        etcdservers.remove(second)
        with contextlib.suppress(ApiError):
            kc.delete(Namespace, f"{ns}-b")
