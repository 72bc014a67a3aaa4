"""Clusters on a shared DataStore (kwok mothership, real PostgreSQL and MariaDB servers).

The operator makes each tenant its own database and user on the server the DataStore
names, hands the control plane its kine URL through a Secret, keeps the data when the
Cluster goes (unless reclaimPolicy Delete), and holds the DataStore while it is in use.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Iterator

import pg8000.dbapi
import pymysql
import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import Event, Secret
from lightkube.types import PatchType

from mothership.datastores import sql_tenant
from mothership.pki import certs
from mothership.testenv import kube, sqlservers
from mothership.testenv.local import LocalMothership
from tests.integration.test_cluster_operator import Cluster, Operator, _condition, _exists

# The same fixtures as the operator tests: CRDs applied once, a namespace per test.
from tests.integration.test_cluster_operator import kc as kc
from tests.integration.test_cluster_operator import ns as ns

DataStore = create_global_resource("mothership.io", "v1alpha1", "DataStore", "datastores")
DRIVERS = {"postgres": "postgresql", "mysql": "mysql"}


@pytest.fixture(scope="module")
def operator(
    mothership_kwok: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(mothership_kwok.cfg.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log")
    op.start()
    yield op
    op.stop()


def _admin(server: sqlservers.SqlServer) -> tuple[str, str]:
    """A login that may create databases and users, as a platform team would hand over."""
    user, password = f"adm_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    server.create_admin(user, password)
    return user, password


def _data_store(kc: Client, server: sqlservers.SqlServer, ns: str) -> str:
    user, password = _admin(server)
    kc.create(
        Secret(
            metadata=ObjectMeta(name="db-admin", namespace=ns),
            stringData={"username": user, "password": password},
        )
    )
    name = f"ds-{uuid.uuid4().hex[:6]}"
    kc.create(
        DataStore(
            metadata=ObjectMeta(name=name),
            spec={
                "driver": DRIVERS[server.kind],
                "endpoints": [f"127.0.0.1:{server.port}"],
                "adminSecretRef": {"name": "db-admin", "namespace": ns},
            },
        )
    )
    return name


def _on(store: str, name: str, ns: str, reclaim: str = "Retain") -> object:
    return Cluster(
        metadata=ObjectMeta(name=name, namespace=ns),
        spec={
            "replicas": 1,
            "version": "v1.35.4-k0s.0",
            "storage": {
                "type": "kine",
                "kine": {"dataStoreRef": {"name": store, "reclaimPolicy": reclaim}},
            },
        },
    )


def _store_status(kc: Client, name: str) -> dict:
    return kc.get(DataStore, name).status or {}


def _reachable(kc: Client, name: str) -> dict | None:
    conditions = _store_status(kc, name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Reachable"), None)


def _url(kc: Client, cluster: str, ns: str) -> str:
    secret = kc.get(Secret, f"{cluster}-datastore", namespace=ns)
    return base64.b64decode(secret.data["K0SMOTRON_KINE_DATASOURCE_URL"]).decode()


def _login(server: sqlservers.SqlServer, tenant: sql_tenant.Tenant, password: str, db: str):
    if server.kind == "postgres":
        return pg8000.dbapi.connect(
            user=tenant.user, password=password, host="127.0.0.1", port=server.port, database=db
        )
    return pymysql.connect(
        user=tenant.user, password=password, host="127.0.0.1", port=server.port, database=db
    )


def _password(url: str, tenant: sql_tenant.Tenant) -> str:
    # postgres://USER:PASS@... and mysql://USER:PASS@tcp(...)
    return url.split("://", 1)[1].split("@", 1)[0].removeprefix(f"{tenant.user}:")


def test_tenants_get_their_own_database_and_the_data_outlives_the_cluster(
    kc: Client, operator: Operator, ns: str, sql_server: sqlservers.SqlServer
) -> None:
    store = _data_store(kc, sql_server, ns)
    kube.wait_until(
        "DataStore Reachable",
        lambda: (_reachable(kc, store) or {}).get("status") == "True",
        60,
    )
    kc.create(_on(store, "alpha", ns))
    kc.create(_on(store, "beta", ns, reclaim="Delete"))
    for name in ("alpha", "beta"):
        kube.wait_until(
            f"{name}-datastore Secret", lambda n=name: _exists(kc, Secret, f"{n}-datastore", ns), 60
        )
    alpha, beta = sql_tenant.tenant_for(ns, "alpha"), sql_tenant.tenant_for(ns, "beta")
    assert {alpha.database, beta.database} <= set(sql_server.databases())

    # The control plane reads the URL from the Secret; no password in the pod spec.
    kube.wait_until("StatefulSet kmc-alpha", lambda: _exists(kc, StatefulSet, "kmc-alpha", ns), 60)
    sts = kc.get(StatefulSet, "kmc-alpha", namespace=ns)
    pod_spec = str(sts.spec.template.spec.to_dict())
    assert "alpha-datastore" in pod_spec
    password = _password(_url(kc, "alpha", ns), alpha)
    assert password not in pod_spec

    # The tenant's own login works on its own database, not on the other tenant's.
    conn = _login(sql_server, alpha, password, alpha.database)
    cur = conn.cursor()
    cur.execute("CREATE TABLE kept (v INTEGER)")
    cur.execute("INSERT INTO kept VALUES (42)")
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match=r"(?i)denied|permission|not permitted|privilege"):
        _login(sql_server, alpha, password, beta.database).close()

    kube.wait_until(
        "DataStore lists both tenants",
        lambda: _store_status(kc, store).get("tenants") == [f"{ns}/alpha", f"{ns}/beta"],
        60,
    )
    assert _store_status(kc, store)["tenantCount"] == 2

    # The platform team moves the server to another name: every tenant's Secret is written
    # again from the DataStore's new spec, and the pod templates follow (the pods roll).
    kc.patch(
        DataStore,
        store,
        {"spec": {"endpoints": [f"localhost:{sql_server.port}"]}},
        patch_type=PatchType.MERGE,
    )
    for name in ("alpha", "beta"):
        kube.wait_until(
            f"{name}'s URL names the new endpoint",
            lambda n=name: (
                f"localhost:{sql_server.port}" in _url(kc, n, ns)
                or f"tcp(localhost:{sql_server.port})" in _url(kc, n, ns)
            ),
            60,
        )

    def revisions() -> tuple[str | None, str | None]:
        secret = kc.get(Secret, "alpha-datastore", namespace=ns).metadata.annotations or {}
        sts = kc.get(StatefulSet, "kmc-alpha", namespace=ns).spec.template.metadata
        key = "mothership.io/datastore-revision"
        return secret.get(key), (sts.annotations or {}).get(key)

    kube.wait_until("alpha's pod template follows", lambda: len(set(revisions())) == 1, 60)
    assert revisions()[0] is not None
    assert "DataStoreTenantUpdated" in [e.reason for e in kc.list(Event, namespace=ns)]
    new_password = _password(_url(kc, "alpha", ns), alpha)
    assert new_password != password
    _login(sql_server, alpha, new_password, alpha.database).close()

    # In use: deleting the DataStore waits, and says for whom.
    kc.delete(DataStore, store)
    kube.wait_until(
        "DataStore says it is in use",
        lambda: "alpha" in ((_reachable(kc, store) or {}).get("message") or ""),
        60,
    )
    assert kc.get(DataStore, store).metadata.deletionTimestamp

    kc.delete(Cluster, "alpha", namespace=ns)
    kc.delete(Cluster, "beta", namespace=ns)
    kube.wait_until(
        "both Clusters gone",
        lambda: not _exists(kc, Cluster, "alpha", ns) and not _exists(kc, Cluster, "beta", ns),
        90,
    )
    databases = sql_server.databases()
    assert alpha.database in databases, "Retain (the default) keeps the tenant's data"
    assert beta.database not in databases, "reclaimPolicy Delete drops the database"
    rows = sql_server.sql("SELECT v FROM kept", database=alpha.database).split()
    assert rows == ["42"]

    def store_gone() -> bool:
        try:
            kc.get(DataStore, store)
        except ApiError as exc:
            return exc.status.code == 404
        return False

    kube.wait_until("DataStore released once unused", store_gone, 60)
    events = [e.reason for e in kc.list(Event, namespace=ns)]
    assert "DataStoreTenantReady" in events and "DataStoreTenantDropped" in events


def test_a_cluster_on_a_missing_datastore_is_told_which_field(
    kc: Client, operator: Operator, ns: str
) -> None:
    kc.create(_on("no-such-store", "lost", ns, reclaim="Delete"))

    def told() -> bool:
        cond = _condition(kc, "lost", ns, "Available") or {}
        return cond.get("reason") == "DataStoreNotFound"

    kube.wait_until("Available=False DataStoreNotFound", told, 60)
    message = _condition(kc, "lost", ns, "Available")["message"]
    assert "spec.storage.kine.dataStoreRef.name" in message and "no-such-store" in message
    assert not _exists(kc, StatefulSet, "kmc-lost", ns), "no control plane without its data"
    # Nothing to drop where no DataStore is: the deletion is not held for ever.
    kc.delete(Cluster, "lost", namespace=ns)
    kube.wait_until("deleted", lambda: not _exists(kc, Cluster, "lost", ns), 60)


def tls_data_store(kc: Client, server: sqlservers.SqlServer, ns: str, host: str) -> str:
    """A DataStore on a server started with TLS: an admin login and the server's CA, each
    in a Secret of `ns`; the server reached at `host`."""
    assert server.ca is not None
    user, password = _admin(server)
    kc.create(
        Secret(
            metadata=ObjectMeta(name="db-admin", namespace=ns),
            stringData={"username": user, "password": password},
        )
    )
    kc.create(
        Secret(
            metadata=ObjectMeta(name="db-ca", namespace=ns),
            stringData={"ca.crt": server.ca.cert_pem.decode()},
        )
    )
    store = f"tls-{uuid.uuid4().hex[:6]}"
    kc.create(
        DataStore(
            metadata=ObjectMeta(name=store),
            spec={
                "driver": DRIVERS[server.kind],
                "endpoints": [f"{host}:{server.port}"],
                "adminSecretRef": {"name": "db-admin", "namespace": ns},
                "tls": {"secretRef": {"name": "db-ca", "namespace": ns}},
            },
        )
    )
    return store


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_datastore_with_tls_is_verified_by_the_operator_and_named_to_kine(
    kc: Client, operator: Operator, ns: str, kind: sqlservers.Kind
) -> None:
    """A server that takes TLS logins only: the operator logs in with TLS and checks the
    certificate against spec.tls; the tenant Secret carries the CA for kine, and the
    PostgreSQL URL asks for verify-full. Without the CA the same DataStore is not reachable."""
    server = sqlservers.start(kind, tls=True)
    try:
        store = tls_data_store(kc, server, ns, "127.0.0.1")
        kube.wait_until(
            "DataStore Reachable over TLS",
            lambda: (_reachable(kc, store) or {}).get("status") == "True",
            60,
        )
        spec = _on(store, "secure", ns).spec  # type: ignore[attr-defined]
        if kind == "mysql":
            # k0s's kine cannot be given a CA for MySQL: told, and the kubernetes one can.
            kc.create(_on(store, "k0s-mysql", ns))

            def told() -> bool:
                cond = _condition(kc, "k0s-mysql", ns, "Available") or {}
                return cond.get("reason") == "DataStoreTLSUnsupported"

            kube.wait_until("DataStoreTLSUnsupported", told, 60)
            spec = {**spec, "distribution": "kubernetes", "version": "v1.35.4"}
        kc.create(Cluster(metadata=ObjectMeta(name="secure", namespace=ns), spec=spec))
        kube.wait_until(
            "secure-datastore Secret", lambda: _exists(kc, Secret, "secure-datastore", ns), 60
        )
        secret = kc.get(Secret, "secure-datastore", namespace=ns)
        assert base64.b64decode(secret.data["ca.crt"]) == server.ca.cert_pem
        assert secret.metadata.annotations["mothership.io/datastore-tls"] == "true"
        url = _url(kc, "secure", ns)
        if kind == "postgres":
            assert url.endswith("?sslmode=verify-full&sslrootcert=/etc/mothership/datastore/ca.crt")
        # The control plane mounts the CA where the URL (or kine's --ca-file) names it.
        kube.wait_until("StatefulSet", lambda: _exists(kc, StatefulSet, "kmc-secure", ns), 60)
        pod = kc.get(StatefulSet, "kmc-secure", namespace=ns).spec.template.spec
        assert "datastore-ca" in {v.name for v in pod.volumes}
        # The server refuses the same login without TLS: the encryption is not optional.
        tenant = sql_tenant.tenant_for(ns, "secure")
        password = _password(url, tenant)
        _login(server, tenant, password, tenant.database).close()  # with TLS: yes
        login = {
            "user": tenant.user,
            "password": password,
            "host": "127.0.0.1",
            "database": tenant.database,
        }
        with pytest.raises((pg8000.dbapi.Error, pymysql.MySQLError)):
            if kind == "postgres":
                pg8000.dbapi.connect(**login, port=server.port, ssl_context=False).close()
            else:
                pymysql.connect(**login, port=server.port, ssl_disabled=True).close()

        # A CA that did not sign the server's certificate: the operator will not log in.
        kc.patch(
            Secret,
            "db-ca",
            {"stringData": {"ca.crt": certs.new_ca("other").cert_pem.decode()}},
            namespace=ns,
        )
        kc.patch(
            DataStore, store, {"metadata": {"labels": {"poke": "1"}}}, patch_type=PatchType.MERGE
        )
        kube.wait_until(
            "DataStore not Reachable with the wrong CA",
            lambda: (_reachable(kc, store) or {}).get("status") == "False",
            60,
        )
        assert "CERTIFICATE_VERIFY_FAILED" in _reachable(kc, store)["message"]
        for name in ("secure", "k0s-mysql"):
            with contextlib.suppress(ApiError):
                kc.delete(Cluster, name, namespace=ns)
    finally:
        sqlservers.remove(server)
