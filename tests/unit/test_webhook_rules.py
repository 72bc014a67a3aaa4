"""The webhook rule sets (defaults and validation) and the server's review handling, offline.

Rules are pure functions, so every rule gets a good and a bad input here; messages are
compared exactly because they are the user interface of the webhook. The handlers are
driven through aiohttp's in-process test client (no TLS, no API server).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mothership import pki
from mothership.api.k0smotron.convert import convert
from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import names
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts
from mothership.testenv import pins
from mothership.webhooks import defaults, registration, server, tls
from mothership.webhooks.defaults import (
    DEFAULT_ETCD_IMAGE_ENV,
    DEFAULT_K0S_VERSION,
    admission_patch,
)
from mothership.webhooks.validate import Problem, validate, validate_scale

V1 = "k0smotron.io/v1beta1"
V2 = "k0smotron.io/v1beta2"
ETCD_IMAGE = "quay.io/k0sproject/etcd:v3.7.1"


def cluster(spec: Any = None, *, version: str = V2, name: str = "c", ns: str = "ns") -> dict:
    obj: dict[str, Any] = {
        "apiVersion": version,
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": ns},
    }
    if spec is not None:
        obj["spec"] = spec
    return obj


def jtr(spec: Any, *, version: str = V2) -> dict:
    return {
        "apiVersion": version,
        "kind": "JoinTokenRequest",
        "metadata": {"name": "t", "namespace": "ns"},
        "spec": spec,
    }


def defaulted(obj: dict, old: dict | None = None) -> dict:
    return jsonpatch.apply_patch(obj, admission_patch(obj, old))


def errors(obj: dict, old: dict | None = None, others: list[dict] | None = None) -> list[str]:
    return [str(e) for e in validate(obj, old, others or []).errors]


def warnings(obj: dict, old: dict | None = None) -> list[str]:
    return [str(w) for w in validate(obj, old).warnings]


def paths(obj: dict, old: dict | None = None, others: list[dict] | None = None) -> list[str]:
    return [e.path for e in validate(obj, old, others or []).errors]


# --- defaults ---------------------------------------------------------------------------------


def test_default_version_is_the_pinned_kubernetes() -> None:
    assert f"{pins.KUBERNETES_VERSION}-k0s.0" == DEFAULT_K0S_VERSION


def test_defaults_fill_an_empty_cluster() -> None:
    assert defaulted(cluster({}))["spec"] == {
        "replicas": 1,
        "version": DEFAULT_K0S_VERSION,
        "service": {"type": "ClusterIP", "apiPort": 30443, "konnectivityPort": 30132},
        "storage": {"etcd": {"image": ETCD_IMAGE}},
    }


@pytest.mark.parametrize("spec", [None, "null"])
def test_defaults_create_a_missing_or_null_spec(spec: Any) -> None:
    obj = cluster() if spec is None else {**cluster(), "spec": None}
    assert defaulted(obj)["spec"]["version"] == DEFAULT_K0S_VERSION


def test_defaults_never_overwrite_user_values() -> None:
    spec = {
        "replicas": 0,
        "version": "v1.33.1-k0s.0",
        "service": {"type": "NodePort", "apiPort": 31000, "konnectivityPort": 31001},
        "storage": {"type": "etcd", "etcd": {"image": "my/etcd:1"}},
        "ingress": {"apiHost": "a", "konnectivityHost": "k", "deploy": False},
    }
    obj = cluster(copy.deepcopy(spec))
    assert admission_patch(obj) == []
    assert defaulted(obj)["spec"] == spec


def test_defaults_fill_only_the_missing_parts_of_a_section() -> None:
    obj = cluster({"service": {"type": "NodePort"}, "ingress": {"apiHost": "a"}})
    spec = defaulted(obj)["spec"]
    assert spec["service"] == {"type": "NodePort", "apiPort": 30443, "konnectivityPort": 30132}
    assert spec["ingress"] == {"apiHost": "a", "deploy": True}


def test_defaults_are_json_patch_ops() -> None:
    ops = admission_patch(cluster({"replicas": 2}))
    assert all(op["op"] == "add" and op["path"].startswith("/spec/") for op in ops)
    assert {"op": "add", "path": "/spec/version", "value": DEFAULT_K0S_VERSION} in ops


def test_empty_version_counts_as_missing() -> None:
    assert defaulted(cluster({"version": ""}))["spec"]["version"] == DEFAULT_K0S_VERSION


def test_update_keeps_the_old_version_instead_of_the_default() -> None:
    old = defaulted(cluster({"version": "v1.33.1-k0s.0"}))
    new = cluster({"replicas": 3})  # e.g. a server-side re-apply that dropped the version
    assert defaulted(new, old)["spec"]["version"] == "v1.33.1-k0s.0"


def test_update_of_an_unversioned_cluster_adds_no_version() -> None:
    old = cluster({"replicas": 1})  # stored before the webhook existed
    assert "version" not in defaulted(cluster({"replicas": 2}), old)["spec"]


LOCAL_ETCD = "localhost/mothership/control-plane:v1.35.4"


def test_operator_setting_names_the_default_etcd_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEFAULT_ETCD_IMAGE_ENV, LOCAL_ETCD)
    assert defaulted(cluster({}))["spec"]["storage"]["etcd"] == {"image": LOCAL_ETCD}
    v1 = defaulted(cluster({"replicas": 1}, version=V1))
    assert v1["spec"]["etcd"] == {"image": LOCAL_ETCD}


def test_operator_setting_never_replaces_a_chosen_etcd_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DEFAULT_ETCD_IMAGE_ENV, LOCAL_ETCD)
    chosen = cluster({"storage": {"etcd": {"image": ETCD_IMAGE}}})  # even the upstream default
    assert defaulted(chosen)["spec"]["storage"]["etcd"]["image"] == ETCD_IMAGE


def test_update_keeps_the_old_etcd_image_when_the_default_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = defaulted(cluster({}))  # created under the upstream default
    monkeypatch.setenv(DEFAULT_ETCD_IMAGE_ENV, LOCAL_ETCD)
    new = cluster({"replicas": 1})  # a re-apply that dropped the defaulted image
    assert defaulted(new, old)["spec"]["storage"]["etcd"]["image"] == ETCD_IMAGE


def test_defaults_for_v1beta1_patch_v1beta1_fields() -> None:
    obj = cluster({"kineDataSourceURL": "postgres://db", "replicas": 2}, version=V1)
    result = defaulted(obj)
    assert result["apiVersion"] == V1
    assert result["metadata"] == obj["metadata"]  # no conversion bookkeeping leaks in
    assert result["spec"] == {
        "kineDataSourceURL": "postgres://db",
        "replicas": 2,
        "version": DEFAULT_K0S_VERSION,
        "service": {"type": "ClusterIP", "apiPort": 30443, "konnectivityPort": 30132},
        "etcd": {"image": ETCD_IMAGE},
    }


def test_defaults_for_v1beta1_without_spec() -> None:
    ops = admission_patch(cluster(version=V1))
    assert [op["path"] for op in ops] == ["/spec"]
    assert ops[0]["value"]["version"] == DEFAULT_K0S_VERSION


@pytest.mark.parametrize("version", [V1, V2])
def test_join_token_request_defaults(version: str) -> None:
    ref = {"clusterRef": {"name": "c", "namespace": "ns"}} if version == V1 else {}
    spec = {**ref, "clusterName": "c"} if version == V2 else ref
    result = defaulted(jtr(spec, version=version))
    assert result["spec"]["expiry"] == "0s"
    assert result["spec"]["role"] == "worker"
    kept = defaulted(jtr({**spec, "expiry": "1h", "role": "controller"}, version=version))
    assert (kept["spec"]["expiry"], kept["spec"]["role"]) == ("1h", "controller")


def test_defaults_refuse_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="Widget"):
        admission_patch({"apiVersion": V2, "kind": "Widget"})


# --- Cluster validation -----------------------------------------------------------------------


def test_a_defaulted_cluster_is_valid() -> None:
    assert validate(defaulted(cluster({}))) == ([], [])


@pytest.mark.parametrize("value", ["1.30", "v1.30", "1.30.1", "v1.30.1-k0s", "latest", 1.3])
def test_malformed_version(value: Any) -> None:
    shown = json.dumps(value)
    assert errors(cluster({"version": value})) == [
        f"spec.version: {shown} is not a k0s version; use vX.Y.Z-k0s.N, e.g. v1.35.4-k0s.0"
    ]


@pytest.mark.parametrize(
    "value", ["v1.30.1-k0s.0", "v1.30.1+k0s.2", "v1.30.0-rc.1+k0s.0", "v1.30.0-rc.1-k0s.0"]
)
def test_well_formed_versions(value: str) -> None:
    assert validate(cluster({"version": value})) == ([], [])


def test_version_without_suffix_warns() -> None:
    assert errors(cluster({"version": "v1.30.1"})) == []
    assert warnings(cluster({"version": "v1.30.1"})) == [
        'spec.version: "v1.30.1" has no k0s suffix, so image tag v1.30.1-k0s.0 is used; '
        "write v1.30.1-k0s.N to pick the build"
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("v1.30.1-k0s.0", "v1.31.0-k0s.0"),
        ("v1.30.1-k0s.0", "v1.30.2+k0s.0"),
        ("v1.30.1-k0s.0", "v1.30.1-k0s.1"),
        ("v1.30.1", "v1.30.1-k0s.0"),  # same version, spelt differently
        ("v1.30.0-rc.1+k0s.0", "v1.30.0-k0s.0"),
        ("1.29", "v1.35.4-k0s.0"),  # a broken old version must be fixable
    ],
)
def test_allowed_version_changes(old: str, new: str) -> None:
    assert errors(cluster({"version": new}), cluster({"version": old})) == []


def test_upgrade_by_two_minors_is_refused() -> None:
    old, new = cluster({"version": "v1.30.1-k0s.0"}), cluster({"version": "v1.32.0-k0s.0"})
    assert errors(new, old) == [
        "spec.version: cannot upgrade from v1.30.1-k0s.0 to v1.32.0-k0s.0 in one step; "
        "Kubernetes upgrades one minor version at a time, so go to v1.31.x first"
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("v1.31.2-k0s.0", "v1.30.1-k0s.0"),
        ("v1.31.2-k0s.0", "v1.31.1-k0s.0"),
        ("v1.31.2-k0s.1", "v1.31.2-k0s.0"),
        ("v1.31.0-k0s.0", "v1.31.0-rc.1+k0s.0"),
    ],
)
def test_downgrades_are_refused(old: str, new: str) -> None:
    assert errors(cluster({"version": new}), cluster({"version": old})) == [
        f"spec.version: cannot downgrade from {old} to {new}; k0s does not support "
        f"downgrades, so keep {old} or pick a newer version"
    ]


def test_major_version_change_is_refused() -> None:
    old, new = cluster({"version": "v1.35.0-k0s.0"}), cluster({"version": "v2.0.0-k0s.0"})
    assert paths(new, old) == ["spec.version"]


@pytest.mark.parametrize(
    ("path", "spec", "message"),
    [
        (
            "spec.service.type",
            {"service": {"type": "Nodeport"}},
            '"Nodeport" is not valid; use NodePort (values are case-sensitive)',
        ),
        (
            "spec.service.type",
            {"service": {"type": "External"}},
            '"External" is not valid; use one of ClusterIP, NodePort, LoadBalancer',
        ),
        (
            "spec.persistence.type",
            {"persistence": {"type": "disk"}},
            '"disk" is not valid; use one of emptyDir, hostPath, pvc',
        ),
        (
            "spec.storage.type",
            {"storage": {"type": "postgres"}},
            '"postgres" is not valid; use one of etcd, kine, nats',
        ),
        (
            "spec.patches[1].patch.type",
            {
                "patches": [
                    {"target": {"kind": "Service", "component": "x"}, "patch": {"type": "json"}},
                    {
                        "target": {"kind": "Service", "component": "x"},
                        "patch": {"type": "jsonpatch"},
                    },
                ]
            },
            '"jsonpatch" is not valid; use one of json, merge, strategic',
        ),
        (
            "spec.certificateRefs[0].type",
            {"certificateRefs": [{"type": "CA"}]},
            '"CA" is not valid; use ca (values are case-sensitive)',
        ),
    ],
)
def test_bad_enums(path: str, spec: dict, message: str) -> None:
    assert errors(cluster(spec)) == [f"{path}: {message}"]


def test_good_enums() -> None:
    spec = {
        "service": {"type": "LoadBalancer"},
        "persistence": {"type": "emptyDir"},
        "storage": {"type": "etcd"},
        "patches": [{"target": {"kind": "S", "component": "c"}, "patch": {"type": "strategic"}}],
        "certificateRefs": [{"type": "etcd-peer"}],
    }
    assert errors(cluster(spec)) == []


def test_ports_must_differ() -> None:
    spec = {"service": {"type": "ClusterIP", "apiPort": 30443, "konnectivityPort": 30443}}
    assert errors(cluster(spec)) == [
        "spec.service.konnectivityPort: 30443 is also spec.service.apiPort; the Service "
        "needs two different ports, so change one of them"
    ]


def test_ports_must_be_ports() -> None:
    assert errors(cluster({"service": {"apiPort": 70000}})) == [
        "spec.service.apiPort: 70000 is not a port; use 1-65535"
    ]


def test_node_ports_must_be_in_the_node_port_range() -> None:
    spec = {"service": {"type": "NodePort", "apiPort": 6443, "konnectivityPort": 30132}}
    assert errors(cluster(spec)) == [
        "spec.service.apiPort: 6443 is outside the node port range 30000-32767; with service "
        "type NodePort it is also the node port, so pick one in that range"
    ]
    # Other service types may use any port.
    assert errors(cluster({"service": {"type": "ClusterIP", "apiPort": 6443}})) == []


def node_port_cluster(name: str, ns: str, api: int | None, konn: int | None) -> dict:
    service: dict[str, Any] = {"type": "NodePort"}
    if api is not None:
        service["apiPort"] = api
    if konn is not None:
        service["konnectivityPort"] = konn
    return cluster({"service": service}, name=name, ns=ns)


def test_node_port_clash_names_the_other_cluster() -> None:
    other = node_port_cluster("alpha", "team-a", 31000, 31001)
    mine = node_port_cluster("beta", "team-b", 31001, 31002)
    assert errors(mine, others=[other]) == [
        "spec.service.apiPort: node port 31001 is already used by Cluster team-a/alpha (its "
        "spec.service.konnectivityPort); pick a free port in 30000-32767"
    ]


def test_node_port_clash_with_default_ports() -> None:
    other = node_port_cluster("alpha", "a", None, None)  # 30443/30132 by default
    mine = node_port_cluster("beta", "b", None, None)
    assert paths(mine, others=[other]) == ["spec.service.apiPort", "spec.service.konnectivityPort"]


def test_no_node_port_clash() -> None:
    clusterip = cluster({"service": {"type": "ClusterIP"}}, name="other")
    mine = node_port_cluster("beta", "b", None, None)
    itself = node_port_cluster("beta", "b", None, None)
    assert errors(mine, others=[clusterip, itself]) == []
    # A ClusterIP Cluster does not take node ports, whatever its port numbers.
    assert errors(cluster({"service": {"type": "ClusterIP"}}), others=[itself]) == []


def test_node_port_clash_is_only_checked_when_the_service_changes() -> None:
    other = node_port_cluster("alpha", "a", None, None)
    old = node_port_cluster("beta", "b", None, None)
    edited = copy.deepcopy(old)
    edited["spec"]["replicas"] = 2
    assert errors(edited, old, others=[other]) == []
    moved = copy.deepcopy(old)
    moved["spec"]["service"]["apiPort"] = 30444
    assert paths(moved, old, others=[other]) == ["spec.service.konnectivityPort"]


def test_ingress_needs_both_hosts() -> None:
    assert errors(cluster({"ingress": {"annotations": {"a": "b"}}})) == [
        "spec.ingress.apiHost: required when spec.ingress is set; give the host name the "
        "ingress routes to the API server",
        "spec.ingress.konnectivityHost: required when spec.ingress is set; give the host "
        "name the ingress routes to konnectivity",
    ]


def test_ingress_hosts_must_differ() -> None:
    spec = {"ingress": {"apiHost": "k.example", "konnectivityHost": "k.example", "deploy": False}}
    assert paths(cluster(spec)) == ["spec.ingress.konnectivityHost"]


def test_ingress_without_annotations_warns() -> None:
    spec = {"ingress": {"apiHost": "a.example", "konnectivityHost": "k.example"}}
    assert errors(cluster(spec)) == []
    assert warnings(cluster(spec)) == [
        "spec.ingress.annotations: none set; make sure the ingress controller passes TLS "
        'through, e.g. nginx.ingress.kubernetes.io/ssl-passthrough: "true"'
    ]
    annotated = {"ingress": {**spec["ingress"], "annotations": {"x": "y"}}}
    not_deployed = {"ingress": {**spec["ingress"], "deploy": False}}
    assert warnings(cluster(annotated)) == warnings(cluster(not_deployed)) == []


def test_ingress_needs_a_recent_enough_k0s() -> None:
    ingress = {"apiHost": "a.example", "konnectivityHost": "k.example", "annotations": {"x": "y"}}
    assert errors(cluster({"version": "v1.34.0-k0s.0", "ingress": ingress})) == [
        "spec.version: v1.34.0-k0s.0 cannot serve spec.ingress; ingress needs v1.34.1-k0s.0 "
        "or newer on the v1.34 line, so upgrade or remove spec.ingress"
    ]
    assert errors(cluster({"version": "v1.34.1-k0s.0", "ingress": ingress})) == []


KINE_BOTH = (
    "cannot be combined with {url}; keep one of them (the Secret keeps database credentials "
    "out of the Cluster)"
)


def test_kine_with_url_and_secret() -> None:
    kine = {"dataSourceURL": "postgres://db", "dataSourceSecretName": "db"}
    assert errors(cluster({"storage": {"type": "kine", "kine": kine}})) == [
        "spec.storage.kine.dataSourceSecretName: "
        + KINE_BOTH.format(url="spec.storage.kine.dataSourceURL")
    ]
    one = {"storage": {"type": "kine", "kine": {"dataSourceSecretName": "db"}}}
    assert errors(cluster(one)) == []


def test_kine_source_ignored_by_another_storage_type_warns() -> None:
    spec = {"storage": {"type": "etcd", "kine": {"dataSourceURL": "postgres://db"}}}
    assert warnings(cluster(spec)) == [
        "spec.storage.kine: ignored because spec.storage.type is etcd; set the type to kine "
        "to use this data source"
    ]


def test_replicas_need_a_shared_store() -> None:
    spec = {"replicas": 3, "storage": {"type": "kine"}}
    assert errors(cluster(spec)) == [
        "spec.replicas: 3 replicas need a data store they share, but spec.storage.type is kine "
        "with no data source (each pod would keep its own SQLite file); set "
        "spec.storage.kine.dataSourceURL, spec.storage.kine.dataSourceSecretName or "
        "spec.storage.kine.dataStoreRef, or use storage type etcd"
    ]
    sqlite = {"replicas": 2, "storage": {"type": "kine", "kine": {"dataSourceURL": "sqlite:///x"}}}
    assert errors(cluster(sqlite)) == [
        "spec.replicas: 2 replicas need a data store they share, but "
        "spec.storage.kine.dataSourceURL is a SQLite file local to each pod; use a database "
        "server (postgres://, mysql://, nats://) or storage type etcd"
    ]


@pytest.mark.parametrize(
    "storage",
    [
        {"type": "etcd"},
        {"type": "nats"},
        {"type": "kine", "kine": {"dataSourceURL": "postgres://db"}},
        {"type": "kine", "kine": {"dataSourceSecretName": "db"}},
    ],
)
def test_replicas_with_a_shared_store(storage: dict) -> None:
    assert errors(cluster({"replicas": 3, "storage": storage})) == []


def test_single_replica_kine_may_use_local_sqlite() -> None:
    assert errors(cluster({"replicas": 1, "storage": {"type": "kine"}})) == []


def test_nats_replicas_cannot_change() -> None:
    old = cluster({"replicas": 1, "storage": {"type": "nats"}})
    new = cluster({"replicas": 3, "storage": {"type": "nats"}})
    assert errors(new, old) == [
        "spec.replicas: cannot change from 1 to 3 with spec.storage.type nats; the embedded "
        "NATS cluster cannot be resized, so back up the data and recreate the Cluster with "
        "the new replica count"
    ]
    etcd_old = cluster({"replicas": 1, "storage": {"type": "etcd"}})
    etcd_new = cluster({"replicas": 3, "storage": {"type": "etcd"}})
    assert errors(etcd_new, etcd_old) == []


def test_nats_replicas_cannot_change_through_scale() -> None:
    nats = cluster({"replicas": 1, "storage": {"type": "nats"}})
    assert [str(e) for e in validate_scale(nats, 1, 3).errors] == [
        "spec.replicas: cannot change from 1 to 3 (also through kubectl scale) with "
        "spec.storage.type nats; the embedded NATS cluster cannot be resized, so back up the "
        "data and recreate the Cluster with the new replica count"
    ]
    assert validate_scale(cluster({"storage": {"type": "etcd"}}), 1, 3).errors == []


def test_storage_type_change_warns() -> None:
    old = cluster({"storage": {"type": "etcd"}})
    new = cluster({"storage": {"type": "kine", "kine": {"dataSourceURL": "postgres://db"}}})
    assert warnings(new, old) == [
        "spec.storage.type: changed from etcd to kine: the control plane starts on the new, "
        "empty data store; existing cluster state is not migrated"
    ]


# --- storage on a shared DataStore (spec.storage.kine.dataStoreRef) ---------------------------

REF = "spec.storage.kine.dataStoreRef"


def on_store(name: str = "shared-postgres", **extra: Any) -> dict:
    return {"type": "kine", "kine": {"dataStoreRef": {"name": name}, **extra}}


def test_a_datastore_ref_is_a_store_every_replica_shares() -> None:
    assert validate(cluster({"replicas": 3, "storage": on_store()})) == ([], [])
    with_policy = on_store()
    with_policy["kine"]["dataStoreRef"]["reclaimPolicy"] = "Delete"
    assert validate(cluster({"storage": with_policy})) == ([], [])
    assert validate_scale(cluster({"replicas": 1, "storage": on_store()}), 1, 3).errors == []


@pytest.mark.parametrize(
    "source",
    [
        {"dataSourceURL": "postgres://db"},
        {"dataSourceSecretName": "db"},
    ],
)
def test_a_datastore_ref_excludes_the_data_source_fields(source: dict) -> None:
    assert errors(cluster({"storage": on_store(**source)})) == [
        f"{REF}: cannot be combined with spec.storage.kine.dataSourceURL or "
        "spec.storage.kine.dataSourceSecretName; remove those (the operator makes the database "
        "and its credentials on the DataStore) or remove dataStoreRef"
    ]


@pytest.mark.parametrize("storage_type", ["etcd", "nats", None])
def test_a_datastore_ref_needs_storage_type_kine(storage_type: str | None) -> None:
    storage = on_store()
    if storage_type is None:
        del storage["type"]  # etcd, the default
    else:
        storage["type"] = storage_type
    assert errors(cluster({"storage": storage})) == [
        f"{REF}: needs spec.storage.type kine (it is {storage_type or 'etcd'}); set "
        "spec.storage.type: kine, or remove dataStoreRef"
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Shared_Postgres",
            '"Shared_Postgres" is not a valid name (a DNS-1123 subdomain); use lowercase letters, '
            'digits, "-" and "." (at most 253), starting and ending with a letter or digit',
        ),
        ("", "required; give the name of a DataStore (kubectl get datastores)"),
        ("x" * 254, None),
        ("-pg", None),
    ],
)
def test_a_datastore_ref_names_a_datastore(name: str, message: str | None) -> None:
    found = validate(cluster({"storage": on_store(name)})).errors
    assert [p.path for p in found] == [f"{REF}.name"]
    if message is not None:
        assert found[0].message == message
    assert validate(cluster({"storage": on_store("pg.db-1")})).errors == []


def test_a_datastore_ref_reclaim_policy_is_retain_or_delete() -> None:
    storage = on_store()
    storage["kine"]["dataStoreRef"]["reclaimPolicy"] = "delete"
    assert errors(cluster({"storage": storage})) == [
        f'{REF}.reclaimPolicy: "delete" is not valid; use Delete (values are case-sensitive)'
    ]


def test_a_new_datastore_name_moves_the_tenant_with_a_warning() -> None:
    old = cluster({"storage": on_store("shared-postgres")})
    new = cluster({"storage": on_store("other-postgres")})
    assert errors(new, old) == []
    assert warnings(new, old) == [
        f'{REF}.name: changed from "shared-postgres" to "other-postgres": the operator moves '
        'this Cluster\'s database to DataStore "other-postgres" (same driver): '
        "writes stop during the copy and the control plane restarts on the new one; the "
        'database on "shared-postgres" is kept with its login disabled'
    ]


@pytest.mark.parametrize(
    "storage",
    [
        {"type": "kine", "kine": {"dataSourceURL": "postgres://db"}},
        {"type": "kine"},
        {"type": "etcd"},
    ],
)
def test_the_datastore_ref_of_an_existing_cluster_cannot_be_removed(storage: dict) -> None:
    old = cluster({"storage": on_store()})
    assert errors(cluster({"storage": storage}), old) == [
        f'{REF}: cannot be removed: this Cluster\'s data is on DataStore "shared-postgres"; '
        "moving a tenant off a DataStore is a separate operation, not a spec edit, so keep "
        "dataStoreRef (name: shared-postgres) and storage type kine"
    ]


def test_the_reclaim_policy_of_an_existing_cluster_may_change() -> None:
    old = cluster({"storage": on_store()})
    new_storage = on_store()
    new_storage["kine"]["dataStoreRef"]["reclaimPolicy"] = "Delete"
    assert validate(cluster({"storage": new_storage}), old) == ([], [])
    assert validate(cluster({"replicas": 3, "storage": on_store()}), old) == ([], [])


def test_moving_an_existing_cluster_onto_a_datastore_warns_of_the_empty_database() -> None:
    old = cluster({"storage": {"type": "kine", "kine": {"dataSourceURL": "postgres://db"}}})
    assert validate(cluster({"storage": on_store()}), old) == (
        [],
        [
            Problem(
                REF,
                "set on an existing Cluster: the control plane starts on a new, empty database "
                'on DataStore "shared-postgres"; existing cluster state is not migrated',
            )
        ],
    )
    # From etcd the storage type changes, which has its own warning (one, not two).
    assert [w.path for w in validate(cluster({"storage": on_store()}), cluster({})).warnings] == [
        "spec.storage.type"
    ]


def test_a_ref_not_in_effect_before_may_change() -> None:
    """Left behind under another storage type (stored before this rule), it held no tenant."""
    old = cluster({"storage": {"type": "etcd", "kine": {"dataStoreRef": {"name": "a"}}}})
    assert errors(cluster({"storage": on_store("b")}), old) == []


def test_the_control_plane_kind_gets_the_same_datastore_rules() -> None:
    from mothership.webhooks import validate_capi

    def kcp(storage: dict) -> dict:
        return {
            "apiVersion": "controlplane.cluster.x-k8s.io/v1beta2",
            "kind": "K0smotronControlPlane",
            "metadata": {"name": "cp", "namespace": "ns"},
            "spec": {"version": "v1.35.4-k0s.0", "storage": storage},
        }

    old = kcp(on_store("a"))
    moved = validate_capi.validate(kcp(on_store("b")), old)
    assert moved.errors == [] and [p.path for p in moved.warnings] == [f"{REF}.name"]
    removed = validate_capi.validate(kcp({"type": "etcd"}), old).errors
    assert [p.path for p in removed] == [REF]
    assert validate_capi.validate(kcp(on_store("a", dataSourceURL="postgres://x"))).errors


def test_pvc_persistence_needs_a_claim_template() -> None:
    assert errors(cluster({"persistence": {"type": "pvc"}})) == [
        "spec.persistence.persistentVolumeClaim: required when spec.persistence.type is pvc; "
        "give a claim template, e.g. {spec: {accessModes: [ReadWriteOnce], resources: "
        "{requests: {storage: 10Gi}}}}"
    ]
    claim = {"spec": {"resources": {"requests": {"storage": "1Gi"}}}}
    # Without an access mode the StatefulSet could never be made: refused, naming the field.
    assert errors(cluster({"persistence": {"type": "pvc", "persistentVolumeClaim": claim}})) == [
        "spec.persistence.persistentVolumeClaim.spec.accessModes: give at least one access "
        "mode, e.g. [ReadWriteOnce]"
    ]
    claim["spec"]["accessModes"] = ["ReadWriteOnce"]
    assert errors(cluster({"persistence": {"type": "pvc", "persistentVolumeClaim": claim}})) == []


def test_host_path_persistence_needs_a_path() -> None:
    assert errors(cluster({"persistence": {"type": "hostPath"}})) == [
        "spec.persistence.hostPath: required when spec.persistence.type is hostPath; give an "
        "absolute directory on the node, e.g. /var/lib/mothership/<cluster>"
    ]
    assert errors(cluster({"persistence": {"type": "hostPath", "hostPath": "data"}})) == [
        'spec.persistence.hostPath: "data" is not an absolute path; start it with /'
    ]
    assert errors(cluster({"persistence": {"type": "hostPath", "hostPath": "/srv/k0s"}})) == []


def test_errors_are_problems_with_paths() -> None:
    result = validate(cluster({"version": "x", "persistence": {"type": "pvc"}}))
    assert all(isinstance(e, Problem) for e in result.errors)
    assert [e.path for e in result.errors] == [
        "spec.version",
        "spec.persistence.persistentVolumeClaim",
    ]


def test_updates_that_leave_the_spec_alone_always_pass() -> None:
    broken = cluster({"version": "1.30", "persistence": {"type": "pvc"}})
    relabelled = copy.deepcopy(broken)
    relabelled["metadata"]["labels"] = {"team": "a"}
    assert validate(relabelled, broken) == ([], [])


def test_objects_being_deleted_always_pass() -> None:
    broken = cluster({"version": "1.30"})
    deleting = copy.deepcopy(broken)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    deleting["spec"]["replicas"] = 2
    assert validate(deleting, broken) == ([], [])


# --- the same rules through v1beta1 ------------------------------------------------------------


def test_v1beta1_kine_with_url_and_secret_uses_v1beta1_paths() -> None:
    spec = {"kineDataSourceURL": "postgres://db", "kineDataSourceSecretName": "db"}
    assert errors(cluster(spec, version=V1)) == [
        "spec.kineDataSourceSecretName: " + KINE_BOTH.format(url="spec.kineDataSourceURL")
    ]


@pytest.mark.parametrize(
    "spec",
    [
        {"version": "1.30"},
        {"service": {"type": "Nodeport"}},
        {"persistence": {"type": "pvc"}},
        {"persistence": {"type": "hostPath"}},
        {"ingress": {"apiHost": "a.example"}},
        {"service": {"type": "NodePort", "apiPort": 80}},
        {"service": {"apiPort": 30500, "konnectivityPort": 30500}},
    ],
)
def test_v1beta1_is_validated_like_v1beta2(spec: dict) -> None:
    v2 = validate(cluster(copy.deepcopy(spec)))
    v1 = validate(cluster(copy.deepcopy(spec), version=V1))
    assert v1 == v2
    assert v2.errors


def test_v1beta1_sqlite_replicas_use_v1beta1_paths() -> None:
    spec = {"replicas": 3, "kineDataSourceURL": "sqlite:///db"}
    (problem,) = validate(cluster(spec, version=V1)).errors
    assert problem.path == "spec.replicas"
    assert "spec.kineDataSourceURL is a SQLite file" in problem.message


def test_v1beta1_version_skew_and_node_port_clash() -> None:
    old = cluster({"version": "v1.30.1-k0s.0"}, version=V1)
    assert paths(cluster({"version": "v1.33.0-k0s.0"}, version=V1), old) == ["spec.version"]
    other = node_port_cluster("alpha", "a", None, None)
    mine = cluster({"service": {"type": "NodePort"}}, version=V1, name="b", ns="b")
    assert paths(mine, others=[other]) == ["spec.service.apiPort", "spec.service.konnectivityPort"]


def test_v1beta1_storage_change_names_the_kine_field() -> None:
    old = cluster({}, version=V1)
    new = cluster({"kineDataSourceSecretName": "db"}, version=V1)
    assert [w.path for w in validate(new, old).warnings] == ["spec.kineDataSourceSecretName"]


# --- JoinTokenRequest validation --------------------------------------------------------------


def test_join_token_request_role() -> None:
    assert errors(jtr({"clusterName": "c", "role": "master"})) == [
        'spec.role: "master" is not valid; use one of worker, controller'
    ]
    assert errors(jtr({"clusterName": "c", "role": "controller"})) == []


@pytest.mark.parametrize("expiry", ["0s", "0", "1.5h", "2h45m", "300ms", "1h0m0s", ".5s", "10µs"])
def test_join_token_request_good_expiry(expiry: str) -> None:
    assert errors(jtr({"clusterName": "c", "expiry": expiry})) == []


@pytest.mark.parametrize("expiry", ["2d", "1 h", "h", "10", "1.5", "", "1hour", 3600])
def test_join_token_request_bad_expiry(expiry: Any) -> None:
    assert errors(jtr({"clusterName": "c", "expiry": expiry})) == [
        f"spec.expiry: {json.dumps(expiry)} is not a duration; use Go syntax such as 1.5h, "
        "2h45m or 300ms (0s: the token never expires)"
    ]


def test_join_token_request_negative_expiry() -> None:
    assert errors(jtr({"clusterName": "c", "expiry": "-1h"})) == [
        'spec.expiry: "-1h" is negative; use a positive duration, or 0s for a token that never '
        "expires"
    ]


def test_join_token_request_names_a_cluster() -> None:
    assert errors(jtr({"role": "worker"})) == [
        "spec.clusterName: required; name the Cluster the token is for"
    ]
    assert errors(jtr({"clusterRef": {"namespace": "x"}})) == [
        "spec.clusterRef.name: required; name the Cluster the token is for"
    ]
    assert errors(jtr({"clusterRef": {"name": "c"}})) == []


def test_join_token_request_v1beta1() -> None:
    assert errors(jtr({"clusterRef": {"namespace": "ns"}, "role": "worker"}, version=V1)) == [
        "spec.clusterRef.name: required; name the Cluster the token is for"
    ]
    bad_role = jtr({"clusterRef": {"name": "c", "namespace": "ns"}, "role": "Worker"}, version=V1)
    assert errors(bad_role) == [
        'spec.role: "Worker" is not valid; use worker (values are case-sensitive)'
    ]


# --- the server's reviews ---------------------------------------------------------------------


def admission_review(path_kind_obj: dict, old: dict | None = None, **request: Any) -> dict:
    req = {
        "uid": "u-1",
        "operation": "UPDATE" if old is not None else "CREATE",
        "namespace": path_kind_obj["metadata"].get("namespace"),
        "name": path_kind_obj["metadata"].get("name"),
        "object": path_kind_obj,
        "oldObject": old,
        **request,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


def post(path: str, body: dict, clusters: list[dict] | None = None) -> dict:
    async def list_clusters() -> list[dict]:
        return clusters or []

    async def run() -> dict:
        async with TestClient(TestServer(server.make_app(list_clusters))) as client:
            response = await client.post(path, json=body)
            assert response.status == 200, await response.text()
            return await response.json()

    return asyncio.run(run())


def test_mutate_answers_with_a_base64_json_patch() -> None:
    review = post("/mutate-cluster", admission_review(cluster({"replicas": 2})))
    response = review["response"]
    assert review["kind"] == "AdmissionReview"
    assert response["uid"] == "u-1" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert {"op": "add", "path": "/spec/version", "value": DEFAULT_K0S_VERSION} in ops


def test_mutate_refuses_what_the_schema_would_refuse_less_helpfully() -> None:
    review = post("/mutate-jtr", admission_review(jtr({"clusterName": "c", "role": "master"})))
    assert review["response"]["allowed"] is False
    status = review["response"]["status"]
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["message"] == 'spec.role: "master" is not valid; use one of worker, controller'
    assert status["details"]["causes"][0]["field"] == "spec.role"


def test_validate_returns_warnings() -> None:
    spec = {"version": "v1.33.1", "replicas": 1}
    response = post("/validate-cluster", admission_review(cluster(spec)))["response"]
    assert response["allowed"] is True
    assert response["warnings"] == [str(w) for w in validate(cluster(spec)).warnings]


def test_validate_lists_other_clusters_for_node_ports() -> None:
    other = node_port_cluster("alpha", "a", None, None)
    mine = node_port_cluster("beta", "b", None, None)
    response = post("/validate-cluster", admission_review(mine), [other])["response"]
    assert response["allowed"] is False
    assert "already used by Cluster a/alpha" in response["status"]["message"]


def test_validate_scale_of_a_nats_cluster() -> None:
    nats = defaulted(cluster({"replicas": 1, "storage": {"type": "nats"}}))
    scale = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "c", "namespace": "ns"},
    }
    review = admission_review(
        {**scale, "spec": {"replicas": 3}},
        {**scale, "spec": {"replicas": 1}},
        subResource="scale",
    )
    response = post("/validate-cluster", review, [nats])["response"]
    assert response["allowed"] is False
    assert response["status"]["message"].startswith("spec.replicas: cannot change from 1 to 3")


def datastore(spec: dict, name: str = "shared-postgres") -> dict:
    return {
        "apiVersion": "mothership.io/v1alpha1",
        "kind": "DataStore",
        "metadata": {"name": name},
        "spec": spec,
    }


DATASTORE_SPEC = {
    "driver": "postgresql",
    "endpoints": ["10.0.0.5:5432"],
    "adminSecretRef": {"name": "pg-admin", "namespace": "mothership-system"},
}


def test_validate_datastore_refuses_a_bad_endpoint_naming_the_field() -> None:
    bad = datastore({**DATASTORE_SPEC, "endpoints": ["postgres://10.0.0.5:5432"]})
    response = post("/validate-datastore", admission_review(bad))["response"]
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "DataStore"
    assert status["details"]["causes"][0]["field"] == "spec.endpoints[0]"
    assert status["message"].startswith('spec.endpoints[0]: "postgres://10.0.0.5:5432" has a ')


def test_validate_datastore_refuses_a_driver_change_and_admits_the_rest() -> None:
    good = datastore(DATASTORE_SPEC)
    review = post("/validate-datastore", admission_review(good))
    assert review["response"] == {"uid": "u-1", "allowed": True}
    moved = datastore({**DATASTORE_SPEC, "driver": "mysql"})
    response = post("/validate-datastore", admission_review(moved, good))["response"]
    assert response["allowed"] is False
    assert response["status"]["details"]["causes"][0]["field"] == "spec.driver"
    wrong = post("/validate-datastore", admission_review(cluster({})))["response"]
    assert wrong["allowed"] is False and "handles DataStore" in wrong["status"]["message"]


def test_delete_is_allowed_untouched() -> None:
    review = admission_review(cluster({"version": "bad"}), operation="DELETE")
    assert post("/validate-cluster", review)["response"] == {"uid": "u-1", "allowed": True}


def test_wrong_kind_for_endpoint_is_refused() -> None:
    response = post("/validate-jtr", admission_review(cluster({})))["response"]
    assert response["allowed"] is False
    assert "handles JoinTokenRequest" in response["status"]["message"]


def conversion_review(desired: str, objects: list[dict]) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c-1", "desiredAPIVersion": desired, "objects": objects},
    }


def test_convert_each_object() -> None:
    objects = [
        cluster({"kineDataSourceURL": "postgres://db"}, version=V1),
        jtr({"clusterRef": {"name": "c", "namespace": "ns"}}, version=V1),
    ]
    review = post("/convert", conversion_review(V2, objects))
    response = review["response"]
    assert review["kind"] == "ConversionReview" and response["uid"] == "c-1"
    assert response["result"] == {"status": "Success"}
    assert response["convertedObjects"] == [convert(o, V2) for o in objects]
    assert response["convertedObjects"][0]["spec"]["storage"]["kine"] == {
        "dataSourceURL": "postgres://db"
    }


def test_convert_failure_is_reported_not_raised() -> None:
    bad = {"apiVersion": "k0smotron.io/v9", "kind": "Cluster", "metadata": {"name": "x"}}
    response = post("/convert", conversion_review(V2, [bad]))["response"]
    assert response["result"]["status"] == "Failure"
    assert "k0smotron.io/v9" in response["result"]["message"]
    assert "convertedObjects" not in response


# --- TLS material and registration -------------------------------------------------------------


def test_webhook_tls_is_reused_while_valid(tmp_path: Path) -> None:
    first = tls.webhook_tls(tmp_path)
    cert = first.cert_path.read_bytes()
    again = tls.webhook_tls(tmp_path)
    assert again == first and again.cert_path.read_bytes() == cert
    assert pki.cert_signed_by(cert, first.ca_pem)
    assert oct(first.key_path.stat().st_mode & 0o777) == "0o600"


def test_webhook_tls_reissues_the_leaf_for_new_names_with_the_same_ca(tmp_path: Path) -> None:
    first = tls.webhook_tls(tmp_path)
    cert = first.cert_path.read_bytes()
    wider = tls.webhook_tls(tmp_path, dns_names=("localhost", "webhook.ns.svc"))
    assert wider.ca_pem == first.ca_pem
    assert wider.cert_path.read_bytes() != cert
    assert pki.cert_signed_by(wider.cert_path.read_bytes(), wider.ca_pem)


def test_webhook_tls_replaces_a_mismatched_pair(tmp_path: Path) -> None:
    first = tls.webhook_tls(tmp_path)
    other = pki.new_ca("someone-else")
    first.key_path.write_bytes(other.key_pem)
    again = tls.webhook_tls(tmp_path)
    assert pki.key_matches_cert(again.cert_path.read_bytes(), again.key_path.read_bytes())


async def _no_clusters() -> list[dict]:
    return []


def test_serve_over_tls_on_a_free_port(tmp_path: Path) -> None:
    material = tls.webhook_tls(tmp_path)

    async def run() -> tuple[int, str, int]:
        runner = await server.serve("127.0.0.1", 0, tmp_path, _no_clusters)
        try:
            trust = ssl.create_default_context(cadata=material.ca_pem.decode())
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{runner.url_base}/healthz", ssl=trust) as response,
            ):
                return response.status, await response.text(), runner.port
        finally:
            await runner.stop()

    status, body, port = asyncio.run(run())
    assert (status, body) == (200, "ok")
    assert port > 0


def test_serve_needs_the_tls_material(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="webhook_tls"):
        asyncio.run(server.serve("127.0.0.1", 0, tmp_path, _no_clusters))


def test_registration_by_url() -> None:
    ca = pki.new_ca("t").cert_pem
    mutating, validating = registration.webhook_configurations(
        url_base="https://127.0.0.1:9443", ca_pem=ca
    )
    assert mutating["metadata"]["name"] == validating["metadata"]["name"] == "mothership-k0smotron"
    urls = [h["clientConfig"]["url"] for h in (*mutating["webhooks"], *validating["webhooks"])]
    assert urls == [
        "https://127.0.0.1:9443/mutate-cluster",
        "https://127.0.0.1:9443/mutate-jtr",
        "https://127.0.0.1:9443/validate-cluster",
        "https://127.0.0.1:9443/validate-jtr",
        *["https://127.0.0.1:9443/validate-capi"] * 3,
        "https://127.0.0.1:9443/validate-datastore",
    ]
    groups = [h["rules"][0]["apiGroups"] for h in validating["webhooks"]]
    assert groups[2:] == [
        ["controlplane.cluster.x-k8s.io"],
        ["bootstrap.cluster.x-k8s.io"],
        ["infrastructure.cluster.x-k8s.io"],
        ["mothership.io"],
    ]
    *k0smotron_and_capi, datastores = validating["webhooks"]
    for hook in (*mutating["webhooks"], *validating["webhooks"]):
        assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
        assert hook["matchPolicy"] == "Equivalent" and hook["timeoutSeconds"] == 10
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca
    for hook in (*mutating["webhooks"], *k0smotron_and_capi):
        assert hook["rules"][0]["apiVersions"] == ["v1beta2", "v1beta1"]
        assert hook["rules"][0]["scope"] == "Namespaced"
    assert datastores["rules"] == [
        {
            "apiGroups": ["mothership.io"],
            "apiVersions": ["v1alpha1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["datastores"],
            "scope": "Cluster",
        }
    ]


def test_registration_by_service() -> None:
    ca = pki.new_ca("t").cert_pem
    ref = registration.ServiceRef("mothership-system", "mothership-webhook", 443)
    conversion = registration.conversion_spec(service=ref, ca_pem=ca)
    assert conversion["strategy"] == "Webhook"
    assert conversion["webhook"]["conversionReviewVersions"] == ["v1"]
    assert conversion["webhook"]["clientConfig"]["service"] == {
        "namespace": "mothership-system",
        "name": "mothership-webhook",
        "port": 443,
        "path": "/convert",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"url_base": "https://x", "service": registration.ServiceRef("a", "b")},
        {"url_base": "http://127.0.0.1:1"},
    ],
)
def test_registration_needs_one_https_endpoint(kwargs: dict) -> None:
    ca = pki.new_ca("t").cert_pem
    with pytest.raises(ValueError):
        registration.webhook_configurations(ca_pem=ca, **kwargs)


def test_defaults_module_applies_without_mutating_its_input() -> None:
    obj = cluster({})
    before = copy.deepcopy(obj)
    defaults.apply(obj, admission_patch(obj))
    assert obj == before


# --- generated names --------------------------------------------------------------------------


def test_the_longest_name_that_fits_is_accepted_and_one_more_refused() -> None:
    longest = names.max_cluster_name_length()
    assert longest == 35  # kmc-prometheus-<name>-config-nginx is a volume name (<= 63)
    assert validate(cluster({}, name="a" * longest)) == ([], [])
    [problem] = validate(cluster({}, name="a" * (longest + 1))).errors
    assert problem.path == "metadata.name"
    assert problem.message == (
        f'"{"a" * 36}" (36 characters) is too long: the generated name '
        f'"kmc-prometheus-{"a" * 36}-config-nginx" (64 characters, the monitoring volume name, '
        "a label) may have at most 63; use a name of at most 35 characters"
    )


def test_a_dotted_name_is_refused_and_an_update_is_not() -> None:
    [problem] = validate(cluster({}, name="a.b")).errors
    assert problem.path == "metadata.name" and '"kmc-a.b"' in problem.message
    old = cluster({"replicas": 1}, name="a" * 40)
    new = cluster({"replicas": 2}, name="a" * 40)
    assert validate(new, old).errors == []  # stored before the rule; a name cannot change


def test_every_length_limited_name_in_a_render_is_listed() -> None:
    """Render with every optional part on and the longest allowed name: what Kubernetes limits
    fits, and each such name is one names.length_limited knows."""
    name = "a" * names.max_cluster_name_length()
    spec = {
        "service": {"type": "NodePort"},
        "monitoring": {"enabled": True},
        "storage": {"type": "etcd"},
    }
    obj = Cluster.model_validate(cluster(spec, name=name))
    listed = {n for n, _, _ in names.length_limited(name)}
    seen = []
    for o in render_cluster(obj, Facts(external_address="192.0.2.1")):
        kind, meta = o["kind"], o["metadata"]
        if kind in ("Service", "StatefulSet", "CronJob"):
            seen.append(meta["name"])
            limit = 63 if kind == "Service" else 52
            assert len(meta["name"]) <= limit, meta["name"]
        if kind == "StatefulSet":
            for v in o["spec"]["template"]["spec"].get("volumes", []):
                assert len(v["name"]) <= 63, v["name"]
                if name in v["name"]:
                    seen.append(v["name"])
    assert seen and set(seen) <= listed, set(seen) - listed
