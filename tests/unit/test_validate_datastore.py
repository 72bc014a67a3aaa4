"""DataStore (mothership.io/v1alpha1): the model, its CRD, and its admission rules, offline.

The rules are pure functions: every one gets good and bad input, and messages are compared
exactly, because they are the user interface of the webhook (field path, then the fix).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from mothership.api import crdgen
from mothership.api.mothership import v1alpha1
from mothership.webhooks import validate_datastore
from mothership.webhooks.validate import validate

FIX_PG = "use host:port, e.g. db.example.com:5432 (without a port: 5432 for postgresql)"
FIX_MYSQL = "use host:port, e.g. db.example.com:3306 (without a port: 3306 for mysql)"

SPEC: dict[str, Any] = {
    "driver": "postgresql",
    "endpoints": ["10.0.0.5:5432"],
    "adminSecretRef": {"name": "pg-admin", "namespace": "mothership-system"},
}


def datastore(spec: Any = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mothership.io/v1alpha1",
        "kind": "DataStore",
        "metadata": {"name": "shared-postgres", **meta},
        "spec": copy.deepcopy(SPEC) if spec is None else spec,
    }


def with_spec(**changes: Any) -> dict[str, Any]:
    return datastore({**copy.deepcopy(SPEC), **changes})


def errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [str(p) for p in validate(obj, old).errors]


# --- the model and its CRD ----------------------------------------------------------------------


def test_constants_the_controllers_use() -> None:
    assert (v1alpha1.GROUP, v1alpha1.VERSION, v1alpha1.PLURAL) == (
        "mothership.io",
        "v1alpha1",
        "datastores",
    )
    assert v1alpha1.CONDITION_REACHABLE == "Reachable"
    assert v1alpha1.IN_USE_FINALIZER == "mothership.io/datastore-in-use"
    assert v1alpha1.DATASTORE_SECRET_SUFFIX == "-datastore"
    assert v1alpha1.tenant_secret_name("demo") == "demo-datastore"


def test_the_issue_example_parses_with_its_defaults() -> None:
    obj = v1alpha1.DataStore.model_validate(
        {
            **datastore(),
            "status": {
                "tenants": ["ns-a/cluster-1", "ns-b/cluster-2"],
                "tenantCount": 2,
                "conditions": [
                    {
                        "type": "Reachable",
                        "status": "True",
                        "reason": "LoggedIn",
                        "lastTransitionTime": "2026-12-06T00:00:00Z",
                    }
                ],
                "observedGeneration": 1,
            },
        }
    )
    ref = obj.spec.admin_secret_ref
    assert (ref.username_key, ref.password_key) == ("username", "password")
    assert obj.spec.addresses() == [("10.0.0.5", 5432)]
    dumped = obj.to_api()
    assert dumped["spec"]["adminSecretRef"]["usernameKey"] == "username"
    assert dumped["status"]["tenantCount"] == 2


@pytest.mark.parametrize(
    "spec",
    [
        {**SPEC, "driver": "redis"},
        {**SPEC, "endpoints": []},
        {k: v for k, v in SPEC.items() if k != "adminSecretRef"},
        {k: v for k, v in SPEC.items() if k != "driver"},
    ],
)
def test_the_model_refuses_what_the_schema_refuses(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        v1alpha1.DataStore.model_validate(datastore(spec))


def _crd() -> dict[str, Any]:
    docs = {d["metadata"]["name"]: d for d in crdgen.all_crds()}
    return docs["datastores.mothership.io"]


def test_crd_is_cluster_scoped_with_one_version_and_status() -> None:
    spec = _crd()["spec"]
    assert spec["group"] == "mothership.io" and spec["scope"] == "Cluster"
    assert spec["names"]["plural"] == "datastores"
    assert spec["names"]["singular"] == "datastore"
    assert spec["names"]["kind"] == "DataStore"
    # Not "ds", DaemonSet's: kubectl would warn about the clash on every `kubectl get ds`.
    assert spec["names"]["shortNames"] == ["dstore"]
    assert spec["conversion"] == {"strategy": "None"}
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["storage"] is True
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert schema["required"] == ["driver", "endpoints", "adminSecretRef"]
    assert schema["properties"]["driver"]["enum"] == ["postgresql", "mysql", "etcd"]
    assert schema["properties"]["tls"]["properties"]["secretRef"]["required"] == [
        "name",
        "namespace",
    ]
    assert schema["properties"]["endpoints"]["minItems"] == 1
    ref = schema["properties"]["adminSecretRef"]
    assert ref["required"] == ["name", "namespace"]
    assert ref["properties"]["usernameKey"]["default"] == "username"
    assert ref["properties"]["passwordKey"]["default"] == "password"


def test_crd_printer_columns() -> None:
    (version,) = _crd()["spec"]["versions"]
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Driver", ".spec.driver"),
        ("Endpoint", ".spec.endpoints[0]"),
        ("Tenants", ".status.tenantCount"),
        ("Reachable", '.status.conditions[?(@.type=="Reachable")].status'),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_the_cluster_ref_is_mothership_s_own_with_retain_by_default() -> None:
    docs = {d["metadata"]["name"]: d for d in crdgen.all_crds()}
    (v2,) = [v for v in docs["clusters.k0smotron.io"]["spec"]["versions"] if v["name"] == "v1beta2"]
    kine = v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["storage"][
        "properties"
    ]["kine"]
    ref = kine["properties"]["dataStoreRef"]
    assert "not in k0smotron" in ref["description"]
    assert ref["required"] == ["name"]
    assert ref["properties"]["reclaimPolicy"]["enum"] == ["Retain", "Delete"]
    assert ref["properties"]["reclaimPolicy"]["default"] == "Retain"


# --- endpoints ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "driver", "address"),
    [
        ("10.0.0.5:5432", "postgresql", ("10.0.0.5", 5432)),
        ("10.0.0.5", "postgresql", ("10.0.0.5", 5432)),
        ("db.example.com", "mysql", ("db.example.com", 3306)),
        ("db.example.com:3307", "mysql", ("db.example.com", 3307)),
        ("postgres", "postgresql", ("postgres", 5432)),
        ("my_db", "mysql", ("my_db", 3306)),
        ("[fd00::5]:6432", "postgresql", ("fd00::5", 6432)),
        ("[fd00::5]", "postgresql", ("fd00::5", 5432)),
        ("fd00::5", "mysql", ("fd00::5", 3306)),
        ("db:65535", "postgresql", ("db", 65535)),
        ("db:1", "postgresql", ("db", 1)),
    ],
)
def test_endpoints_split_into_host_and_port(
    endpoint: str, driver: str, address: tuple[str, int]
) -> None:
    assert v1alpha1.split_endpoint(endpoint, driver) == address
    assert validate(with_spec(driver=driver, endpoints=[endpoint])).errors == []


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("postgres://db:5432", "has a scheme"),
        ("db :5432", "contains spaces"),
        (" db", "contains spaces"),
        ("", "is empty"),
        ("db:0", "has port 0, outside 1-65535"),
        ("db:65536", "has port 65536, outside 1-65535"),
        ("db:pg", 'has port "pg", which is not a number'),
        ("db:", 'has port "", which is not a number'),
        (":5432", "has no host"),
        ("db:5432/k0s", "is not a bare address (it has a path, query or user part)"),
        ("admin@db", "is not a bare address (it has a path, query or user part)"),
        ("[fd00::5", "has an unclosed ["),
        ("[db]:5432", "has something other than an IPv6 address in [ ]"),
        ("[fd00::5]5432", "has text after ]"),
        ("fd00::5:x", "is not a host:port (write IPv6 addresses as [address]:port)"),
        ("fe80::1%eth0", "has an IPv6 zone (%...), which only means something on one host"),
        ("-db-", 'has host "-db-", which is not a DNS name or an IP address'),
        ("db..example", 'has host "db..example", which is not a DNS name or an IP address'),
    ],
)
def test_bad_endpoints_say_what_is_wrong_and_the_fix(endpoint: str, why: str) -> None:
    with pytest.raises(ValueError) as raised:
        v1alpha1.split_endpoint(endpoint, "postgresql")
    assert str(raised.value) == why
    shown = validate_datastore.show(endpoint)
    assert errors(with_spec(endpoints=["db.example.com", endpoint])) == [
        f"spec.endpoints[1]: {shown} {why}; {FIX_PG}"
    ]


def test_the_fix_names_the_driver_s_port() -> None:
    assert errors(with_spec(driver="mysql", endpoints=["mysql://db"])) == [
        f'spec.endpoints[0]: "mysql://db" has a scheme; {FIX_MYSQL}'
    ]


@pytest.mark.parametrize("endpoints", [[], None, "db:5432"])
def test_endpoints_must_be_a_non_empty_list(endpoints: Any) -> None:
    assert errors(with_spec(endpoints=endpoints)) == [
        f"spec.endpoints: give at least one address of the server; {FIX_PG}"
    ]


def test_an_endpoint_that_is_not_a_string() -> None:
    assert errors(with_spec(endpoints=[5432])) == [
        f"spec.endpoints[0]: 5432 is not a string; {FIX_PG}"
    ]


def test_the_same_address_twice_warns() -> None:
    result = validate(with_spec(endpoints=["db", "db:5432", "db:5433"]))
    assert result.errors == []
    assert [str(w) for w in result.warnings] == [
        'spec.endpoints[1]: "db:5432" is listed twice; remove one'
    ]


# --- the rest of the spec -----------------------------------------------------------------------


def test_a_good_datastore_passes() -> None:
    assert validate(datastore()) == ([], [])
    keys = {**SPEC["adminSecretRef"], "usernameKey": "user.name", "passwordKey": "PG_PASSWORD"}
    assert validate(with_spec(adminSecretRef=keys)) == ([], [])


@pytest.mark.parametrize(
    ("driver", "message"),
    [
        ("postgres", '"postgres" is not valid; use postgresql'),
        ("PostgreSQL", '"PostgreSQL" is not valid; use postgresql'),
        ("mariadb", '"mariadb" is not valid; use mysql'),
        ("etcd3", '"etcd3" is not valid; use etcd'),
        ("redis", '"redis" is not valid; use one of postgresql, mysql, etcd'),
        (None, "required; use one of postgresql, mysql, etcd"),
    ],
)
def test_driver_is_postgresql_mysql_or_etcd(driver: Any, message: str) -> None:
    assert errors(with_spec(driver=driver)) == [f"spec.driver: {message}"]


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        (
            {"name": "PG_Admin", "namespace": "mothership-system"},
            [
                'spec.adminSecretRef.name: "PG_Admin" is not a valid name (a DNS-1123 '
                'subdomain); use lowercase letters, digits, "-" and "." (at most 253), '
                "starting and ending with a letter or digit"
            ],
        ),
        (
            {"name": "pg-admin", "namespace": "mothership.system"},
            [
                'spec.adminSecretRef.namespace: "mothership.system" is not a valid name (a '
                'DNS-1123 label); use lowercase letters, digits and "-" (at most 63), starting '
                "and ending with a letter or digit"
            ],
        ),
        (
            {"name": "pg-admin"},
            ["spec.adminSecretRef.namespace: required; give the Secret's namespace"],
        ),
        (
            {"namespace": "ns", "name": ""},
            ["spec.adminSecretRef.name: required; give the Secret"],
        ),
        (
            {"name": "pg-admin", "namespace": "ns", "passwordKey": "pass word"},
            [
                'spec.adminSecretRef.passwordKey: "pass word" is not a Secret key; keys are '
                "letters, digits, '-', '_' and '.', e.g. password"
            ],
        ),
        (
            None,
            [
                "spec.adminSecretRef: required; name the Secret with credentials that may "
                "create databases and users, e.g. {name: db-admin, namespace: mothership-system}"
            ],
        ),
    ],
)
def test_admin_secret_ref_names_a_secret(ref: Any, found: list[str]) -> None:
    assert errors(with_spec(adminSecretRef=ref)) == found


def test_names_the_api_server_accepts() -> None:
    assert validate_datastore.is_dns1123_subdomain("a.b-c.d")
    assert validate_datastore.is_dns1123_subdomain("a" * 253)
    assert not validate_datastore.is_dns1123_subdomain("a" * 254)
    assert not validate_datastore.is_dns1123_subdomain("a..b")
    assert not validate_datastore.is_dns1123_subdomain(None)
    assert validate_datastore.is_dns1123_label("a" * 63)
    assert not validate_datastore.is_dns1123_label("a" * 64)
    assert not validate_datastore.is_dns1123_label("a.b")


# --- updates ------------------------------------------------------------------------------------


def test_the_driver_cannot_change() -> None:
    assert errors(with_spec(driver="mysql"), datastore()) == [
        "spec.driver: cannot change from postgresql to mysql: the tenants' databases live in "
        "that postgresql server; keep postgresql, or create another DataStore for the other "
        "server"
    ]


def test_endpoints_and_credentials_may_change() -> None:
    moved = with_spec(
        endpoints=["db-2.example.com:5432"],
        adminSecretRef={"name": "pg-admin-2", "namespace": "mothership-system"},
    )
    assert validate(moved, datastore()) == ([], [])


def test_updates_that_leave_the_spec_alone_always_pass() -> None:
    """Ratcheting: a DataStore stored before a rule tightened keeps its finalizer editable."""
    stored = with_spec(endpoints=["postgres://db"])
    edited = copy.deepcopy(stored)
    edited["metadata"]["finalizers"] = [v1alpha1.IN_USE_FINALIZER]
    assert validate(edited, stored) == ([], [])


def test_a_datastore_being_deleted_always_passes() -> None:
    stored = with_spec(endpoints=["postgres://db"])
    leaving = with_spec(endpoints=["postgres://db2"])
    leaving["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    assert validate(leaving, stored) == ([], [])


def test_other_kinds_are_not_judged_here() -> None:
    with pytest.raises(ValueError, match="no DataStore rules"):
        validate_datastore.validate_datastore({"kind": "Cluster"})


# --- etcd DataStores and a Cluster's etcd reference ----------------------------------------------

ETCD_SPEC: dict[str, Any] = {
    "driver": "etcd",
    "endpoints": ["etcd-0.example.com", "[fd00::5]:2380"],
    "adminSecretRef": {"name": "etcd-root", "namespace": "mothership-system"},
    "tls": {"secretRef": {"name": "etcd-ca", "namespace": "mothership-system"}},
}


def test_an_etcd_datastore_passes_and_defaults_its_port() -> None:
    assert validate(datastore(copy.deepcopy(ETCD_SPEC))) == ([], [])
    model = v1alpha1.DataStoreSpec.model_validate(ETCD_SPEC)
    assert model.addresses() == [("etcd-0.example.com", 2379), ("fd00::5", 2380)]


def test_etcd_needs_its_ca_and_sql_may_have_one() -> None:
    no_tls = {k: v for k, v in ETCD_SPEC.items() if k != "tls"}
    assert errors(datastore(no_tls)) == [
        "spec.tls: required for driver etcd: name the Secret with ca.crt and ca.key of the CA "
        "etcd trusts for clients, e.g. {secretRef: {name: etcd-ca, namespace: "
        "mothership-system}}"
    ]
    assert errors(with_spec(tls=ETCD_SPEC["tls"])) == []
    assert errors(with_spec(tls={"secretRef": {"name": "pg-ca"}})) == [
        "spec.tls.secretRef.namespace: required; give a DNS-1123 label"
    ]
    bad = {**ETCD_SPEC, "tls": {"secretRef": {"name": "Etcd_CA", "namespace": "x"}}}
    assert [e.split(":")[0] for e in errors(datastore(bad))] == ["spec.tls.secretRef.name"]
    assert errors(datastore({**ETCD_SPEC, "tls": {}})) == [
        "spec.tls.secretRef: required; e.g. {name: etcd-ca, namespace: mothership-system}"
    ]


def etcd_cluster(ref: Any = None, **spec: Any) -> dict[str, Any]:
    storage: dict[str, Any] = {"type": "etcd", "etcd": {}}
    if ref is not None:
        storage["etcd"]["dataStoreRef"] = ref
    return {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": "team-a"},
        "spec": {"distribution": "kubernetes", "storage": storage, **spec},
    }


def test_a_cluster_on_an_etcd_datastore_passes() -> None:
    assert errors(etcd_cluster({"name": "shared-etcd", "reclaimPolicy": "Delete"})) == []


def test_the_etcd_reference_is_for_both_distributions() -> None:
    obj = etcd_cluster({"name": "shared-etcd"})
    del obj["spec"]["distribution"]
    assert errors(obj) == []


def test_the_etcd_reference_names_a_datastore() -> None:
    assert errors(etcd_cluster({"name": ""})) == [
        "spec.storage.etcd.dataStoreRef.name: required; give the name of an etcd DataStore "
        "(kubectl get datastores)"
    ]
    assert errors(etcd_cluster({"name": "x", "reclaimPolicy": "delete"})) == [
        'spec.storage.etcd.dataStoreRef.reclaimPolicy: "delete" is not valid; use Delete '
        "(values are case-sensitive)"
    ]


def test_the_etcd_reference_stays_and_a_new_name_moves_the_keys() -> None:
    on = etcd_cluster({"name": "a"})
    assert errors(etcd_cluster({"name": "a", "reclaimPolicy": "Delete"}), on) == []
    moved = validate(etcd_cluster({"name": "b"}), on)
    assert [str(e) for e in moved.errors] == []
    assert [str(w) for w in moved.warnings] == [
        'spec.storage.etcd.dataStoreRef.name: changed from "a" to "b": the operator moves this '
        'Cluster\'s keys to etcd DataStore "b": the control plane stops during the copy and '
        'restarts on the new one (resourceVersions start over there); the keys on "a" are kept'
    ]
    assert errors(etcd_cluster(), on) == [
        "spec.storage.etcd.dataStoreRef: cannot be removed: this Cluster's keys are on "
        'DataStore "a"; keep dataStoreRef (name: a)'
    ]
    assert errors(on, etcd_cluster()) == [
        "spec.storage.etcd.dataStoreRef: cannot be added to an existing Cluster: its data is "
        "in its own etcd, and the control plane would start empty on the DataStore; create a "
        "new Cluster instead"
    ]
