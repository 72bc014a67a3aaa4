"""Conversion between v1beta1 and v1beta2 must map fields correctly and never lose anything.

The API server converts on every request made through the non-storage version, so a lossy
conversion would silently erase fields on a v1beta1 client's get-modify-put.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mothership.api.base import TopLevel
from mothership.api.k0smotron import v1beta1, v1beta2
from mothership.api.k0smotron.convert import CONVERSION_DATA_ANNOTATION, V1BETA1, V1BETA2, convert

DATA = Path(__file__).parent / "data" / "k0smotron"
EXAMPLES = sorted(DATA.glob("*.yaml"))
NS_ANNOTATION = v1beta2.CLUSTER_REF_NAMESPACE_ANNOTATION

MODELS: dict[tuple[str, str], type[TopLevel]] = {
    (V1BETA2, "Cluster"): v1beta2.Cluster,
    (V1BETA2, "JoinTokenRequest"): v1beta2.JoinTokenRequest,
    (V1BETA1, "Cluster"): v1beta1.Cluster,
    (V1BETA1, "JoinTokenRequest"): v1beta1.JoinTokenRequest,
}


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def other(version: str) -> str:
    return V1BETA1 if version == V1BETA2 else V1BETA2


def stash(obj: dict[str, Any]) -> list[dict[str, Any]] | None:
    raw = obj.get("metadata", {}).get("annotations", {}).get(CONVERSION_DATA_ANNOTATION)
    return None if raw is None else json.loads(raw)["restore"]


def defaulted(doc: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server would store it after defaulting."""
    return MODELS[doc["apiVersion"], doc["kind"]].model_validate(doc).to_api()


def v1_cluster(spec: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "apiVersion": V1BETA1,
        "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": spec,
        **top,
    }


def v2_cluster(spec: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "apiVersion": V1BETA2,
        "kind": "Cluster",
        "metadata": {"name": "c"},
        "spec": spec,
        **top,
    }


# --- lossless round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("as_stored", [False, True], ids=["as-written", "defaulted"])
def test_round_trip_through_the_other_version_is_lossless(path: Path, as_stored: bool) -> None:
    doc = load(path)
    if as_stored:
        doc = defaulted(doc)
    before = copy.deepcopy(doc)
    there = convert(doc, other(doc["apiVersion"]))
    assert doc == before, "convert must not modify its input"
    assert there["apiVersion"] == other(doc["apiVersion"])
    assert there["kind"] == doc["kind"]
    back = convert(there, doc["apiVersion"])
    assert back == doc


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_converted_object_is_valid_in_the_target_version(path: Path) -> None:
    doc = load(path)
    there = convert(doc, other(doc["apiVersion"]))
    MODELS[there["apiVersion"], there["kind"]].model_validate(there)


# JoinTokenRequest is left out: it also maps clusterRef.namespace to an annotation.
@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if "-jtr" not in p.stem], ids=lambda p: p.stem
)
def test_metadata_only_gains_the_conversion_annotation(path: Path) -> None:
    doc = load(path)
    there = convert(doc, other(doc["apiVersion"]))
    meta = copy.deepcopy(there["metadata"])
    notes = meta.get("annotations", {})
    notes.pop(CONVERSION_DATA_ANNOTATION, None)
    if not notes and "annotations" not in doc["metadata"]:
        meta.pop("annotations", None)
    assert meta == doc["metadata"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_several_round_trips_stay_put(path: Path) -> None:
    doc = load(path)
    obj = doc
    for _ in range(3):
        obj = convert(convert(obj, other(doc["apiVersion"])), doc["apiVersion"])
    assert obj == doc


def test_same_version_is_a_copy() -> None:
    doc = load(DATA / "v1beta2-cluster-etcd-ha.yaml")
    same = convert(doc, V1BETA2)
    assert same == doc and same is not doc
    same["spec"]["replicas"] = 9
    assert doc["spec"]["replicas"] == 3


def test_short_version_names_are_accepted() -> None:
    doc = load(DATA / "v1beta1-cluster-basic.yaml")
    assert convert(doc, "v1beta2") == convert(doc, V1BETA2)


@pytest.mark.parametrize(
    ("obj", "to", "named"),
    [
        (
            {"apiVersion": "k0smotron.io/v1alpha1", "kind": "Cluster"},
            V1BETA2,
            "k0smotron.io/v1alpha1",
        ),
        ({"apiVersion": "apps/v1", "kind": "Cluster"}, V1BETA1, "apps/v1"),
        ({"kind": "Cluster"}, V1BETA1, "None"),
        ({"apiVersion": V1BETA1, "kind": "Cluster"}, "k0smotron.io/v2", "k0smotron.io/v2"),
        ({"apiVersion": V1BETA1, "kind": "Cluster"}, "v1", "v1"),
        (
            {"apiVersion": V1BETA1, "kind": "K0smotronControlPlane"},
            V1BETA2,
            "K0smotronControlPlane",
        ),
    ],
)
def test_unknown_versions_and_kinds_are_refused(obj: dict[str, Any], to: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        convert(obj, to)


# --- Cluster field mapping --------------------------------------------------------------------


def test_kine_url_maps_to_storage_kine() -> None:
    v2 = convert(v1_cluster({"kineDataSourceURL": "postgres://x"}), V1BETA2)
    assert v2["spec"]["storage"] == {"type": "kine", "kine": {"dataSourceURL": "postgres://x"}}
    assert "kineDataSourceURL" not in v2["spec"]
    assert stash(v2) is None


def test_kine_secret_maps_to_storage_kine() -> None:
    v2 = convert(v1_cluster({"kineDataSourceSecretName": "db"}), V1BETA2)
    assert v2["spec"]["storage"] == {"type": "kine", "kine": {"dataSourceSecretName": "db"}}
    v1 = convert(v2, V1BETA1)
    assert v1["spec"] == {"kineDataSourceSecretName": "db"}


def test_etcd_maps_to_storage_etcd() -> None:
    etcd = {"image": "quay.io/k0sproject/etcd:v3.5.13", "args": ["--a"], "persistence": {}}
    v2 = convert(v1_cluster({"etcd": etcd}), V1BETA2)
    assert v2["spec"]["storage"] == {"type": "etcd", "etcd": etcd}
    assert stash(v2) is None


def test_etcd_and_kine_together_select_kine_and_keep_both() -> None:
    etcd = {"image": "e", "persistence": {}}
    v2 = convert(v1_cluster({"etcd": etcd, "kineDataSourceURL": "mysql://x"}), V1BETA2)
    assert v2["spec"]["storage"] == {
        "type": "kine",
        "etcd": etcd,
        "kine": {"dataSourceURL": "mysql://x"},
    }


def test_empty_kine_url_does_not_select_kine() -> None:
    src = v1_cluster({"kineDataSourceURL": ""})
    v2 = convert(src, V1BETA2)
    assert v2["spec"]["storage"]["type"] == "etcd"
    assert convert(v2, V1BETA1) == src


def test_no_storage_fields_means_no_storage() -> None:
    assert "storage" not in convert(v1_cluster({"replicas": 1}), V1BETA2)["spec"]


def test_renamed_fields() -> None:
    ref = {"name": "kc", "namespace": "default", "key": "value"}
    v2 = convert(v1_cluster({"controllerPlaneFlags": ["--x=y"], "kubeconfigRef": ref}), V1BETA2)
    assert v2["spec"] == {
        "controlPlaneFlags": ["--x=y"],
        "remoteHostCluster": {"kubeconfigRef": ref},
    }
    assert stash(v2) is None
    v1 = convert(
        v2_cluster({"controlPlaneFlags": ["--a"], "remoteHostCluster": {"kubeconfigRef": ref}}),
        V1BETA1,
    )
    assert v1["spec"] == {"controllerPlaneFlags": ["--a"], "kubeconfigRef": ref}


def test_shared_fields_are_copied_as_is() -> None:
    spec = load(DATA / "v1beta2-cluster-files.yaml")["spec"]
    spec.update(load(DATA / "v1beta2-cluster-etcd-ha.yaml")["spec"])
    spec.pop("storage")
    spec.pop("controlPlaneFlags")
    v1 = convert(v2_cluster(spec), V1BETA1)
    assert v1["spec"] == spec
    assert stash(v1) is None


def test_service_extras_move_into_v1beta2_spec() -> None:
    doc = load(DATA / "v1beta1-cluster-loadbalancer.yaml")
    v2 = convert(doc, V1BETA2)
    assert v2["spec"]["service"] == doc["spec"]["service"]
    assert stash(v2) is None
    service = v1beta2.Cluster.model_validate(v2).spec.service
    assert service.load_balancer_class == "service.k8s.aws/nlb"
    assert service.external_traffic_policy == "Local"
    assert service.labels == {"exposure": "public"}


def test_every_v1beta1_example_converts_without_a_stash() -> None:
    for path in EXAMPLES:
        doc = load(path)
        if doc["apiVersion"] == V1BETA1:
            assert stash(convert(doc, V1BETA2)) is None, path.stem


def test_v1beta2_only_fields_are_stashed_and_restored() -> None:
    doc = load(DATA / "v1beta2-cluster-nats.yaml")
    doc["spec"]["patches"] = load(DATA / "v1beta2-cluster-patches.yaml")["spec"]["patches"]
    v1 = convert(doc, V1BETA1)
    assert "storage" not in v1["spec"] and "patches" not in v1["spec"]
    assert "kineDataSourceURL" not in v1["spec"]
    paths = {tuple(e["path"]) for e in stash(v1) or []}
    assert ("spec", "storage") in paths and ("spec", "patches") in paths
    back = convert(v1, V1BETA2)
    assert back == doc
    assert CONVERSION_DATA_ANNOTATION not in back["metadata"].get("annotations", {})


def test_unselected_kine_source_does_not_leak_into_v1beta1() -> None:
    doc = v2_cluster({"storage": {"type": "etcd", "kine": {"dataSourceURL": "postgres://x"}}})
    v1 = convert(doc, V1BETA1)
    assert "kineDataSourceURL" not in v1["spec"]
    assert convert(v1, V1BETA2) == doc


def test_status_mapping() -> None:
    doc = load(DATA / "v1beta1-cluster-status.yaml")
    v2 = convert(doc, V1BETA2)
    assert v2["status"] == {
        "replicas": 1,
        "selector": "app=k0smotron,cluster=old-observed",
        "deprecated": {
            "v1beta1": {"reconciliationStatus": "Reconciliation successful", "ready": True}
        },
    }
    stored = load(DATA / "v1beta2-cluster-status.yaml")
    v1 = convert(stored, V1BETA1)
    assert v1["status"] == {
        "replicas": 2,
        "selector": "app=k0smotron,cluster=observed",
        "reconciliationStatus": "Reconciliation successful",
        "ready": True,
    }
    kept = {tuple(e["path"]) for e in stash(v1) or []}
    assert ("status", "conditions") in kept and ("status", "readyReplicas") in kept


# --- edits made through the other version win ---------------------------------------------------


def test_edit_through_v1beta1_wins_over_the_stash() -> None:
    doc = load(DATA / "v1beta2-cluster-nats.yaml")
    doc["spec"]["patches"] = load(DATA / "v1beta2-cluster-patches.yaml")["spec"]["patches"]
    v1 = convert(doc, V1BETA1)
    v1["spec"]["kineDataSourceURL"] = "postgres://new"
    v1["spec"]["replicas"] = 5
    v2 = convert(v1, V1BETA2)
    assert v2["spec"]["storage"]["type"] == "kine"
    assert v2["spec"]["storage"]["kine"] == {"dataSourceURL": "postgres://new"}
    assert v2["spec"]["replicas"] == 5
    assert v2["spec"]["patches"] == doc["spec"]["patches"], "untouched v1beta2-only field is kept"
    assert stash(v2) is None


def test_removing_a_shared_field_through_v1beta1_sticks() -> None:
    doc = v2_cluster({"storage": {"type": "kine", "kine": {"dataSourceURL": "x"}}, "patches": []})
    v1 = convert(doc, V1BETA1)
    del v1["spec"]["kineDataSourceURL"]
    v2 = convert(v1, V1BETA2)
    assert v2["spec"] == {"patches": []}


# --- metadata handling --------------------------------------------------------------------------


def test_existing_annotations_survive_and_ours_is_removed() -> None:
    doc = load(DATA / "v1beta2-cluster-nats.yaml")
    doc["metadata"]["annotations"] = {"a": "1"}
    v1 = convert(doc, V1BETA1)
    assert v1["metadata"]["annotations"]["a"] == "1"
    assert convert(v1, V1BETA2)["metadata"] == {"name": "nats", "annotations": {"a": "1"}}


@pytest.mark.parametrize(
    "metadata", [None, {}, {"name": "x", "annotations": {}}, {"annotations": None}]
)
def test_odd_metadata_shapes_round_trip(metadata: dict[str, Any] | None) -> None:
    doc: dict[str, Any] = {"apiVersion": V1BETA2, "kind": "Cluster", "spec": {"patches": []}}
    if metadata is not None:
        doc["metadata"] = metadata
    assert convert(convert(doc, V1BETA1), V1BETA2) == doc


def test_garbled_conversion_annotation_is_dropped_not_fatal() -> None:
    doc = v1_cluster({"replicas": 2})
    doc["metadata"]["annotations"] = {CONVERSION_DATA_ANNOTATION: "{not json"}
    v2 = convert(doc, V1BETA2)
    assert v2["spec"] == {"replicas": 2}
    assert v2["metadata"] == {"name": "c", "annotations": {}}


def test_junk_keys_round_trip_too() -> None:
    # The API server prunes these, but the conversion must not depend on that.
    v1 = v1_cluster({"storage": {"type": "nats"}, "patches": [1], "controlPlaneFlags": ["x"]})
    assert convert(convert(v1, V1BETA2), V1BETA1) == v1
    v2 = v2_cluster({"etcd": {}, "kineDataSourceURL": "u", "kubeconfigRef": {"name": "n"}})
    assert convert(convert(v2, V1BETA1), V1BETA2) == v2
    typed = v1_cluster({"replicas": True}, status={"replicas": 1.0})
    assert convert(convert(typed, V1BETA2), V1BETA1) == typed
    assert type(convert(convert(typed, V1BETA2), V1BETA1)["spec"]["replicas"]) is bool


# --- JoinTokenRequest ---------------------------------------------------------------------------


def test_join_token_request_to_v1beta2() -> None:
    doc = load(DATA / "v1beta1-jtr.yaml")
    v2 = convert(doc, V1BETA2)
    assert v2["spec"] == {"clusterName": "my-cluster", "expiry": "2h45m", "role": "controller"}
    assert v2["metadata"]["annotations"] == {NS_ANNOTATION: "clusters"}
    assert v2["status"] == {
        "tokenID": "abcdef",
        "deprecated": {
            "v1beta1": {
                "reconciliationStatus": "Reconciliation successful",
                "clusterUID": "0d7e2f44-9f6b-4a8c-9c39-0cbe7d2b0a11",
            }
        },
    }
    parsed = v1beta2.JoinTokenRequest.model_validate(v2)
    assert parsed.target_cluster() == ("clusters", "my-cluster")


def test_join_token_request_to_v1beta1() -> None:
    doc = load(DATA / "v1beta2-jtr.yaml")
    v1 = convert(doc, V1BETA1)
    # v1beta1 requires a namespace; v1beta2 means the request's own.
    assert v1["spec"]["clusterRef"] == {"name": "my-cluster", "namespace": "default"}
    assert v1["status"] == {"tokenID": "abcdef"}
    assert [e["path"] for e in stash(v1) or []] == [["status", "conditions"]]
    annotated = copy.deepcopy(doc)
    annotated["metadata"]["annotations"] = {NS_ANNOTATION: "elsewhere", "keep": "me"}
    v1 = convert(annotated, V1BETA1)
    assert v1["spec"]["clusterRef"] == {"name": "my-cluster", "namespace": "elsewhere"}
    assert NS_ANNOTATION not in v1["metadata"]["annotations"]
    assert v1["metadata"]["annotations"]["keep"] == "me"
    assert convert(v1, V1BETA2) == annotated


def test_join_token_request_docs_form_converts_to_a_valid_v1beta1_object() -> None:
    doc = load(DATA / "v1beta2-jtr-docs.yaml")
    v1 = convert(doc, V1BETA1)
    assert v1["spec"]["clusterRef"] == {"name": "my-cluster", "namespace": "default"}
    v1beta1.JoinTokenRequest.model_validate(v1)


@pytest.mark.parametrize("namespace", ["tokens", ""])
def test_join_token_request_in_its_own_namespace_needs_no_annotation(namespace: str) -> None:
    doc = load(DATA / "v1beta1-jtr.yaml")
    doc["spec"]["clusterRef"]["namespace"] = namespace
    v2 = convert(doc, V1BETA2)
    assert "annotations" not in v2["metadata"] or NS_ANNOTATION not in v2["metadata"]["annotations"]
    assert v1beta2.JoinTokenRequest.model_validate(v2).target_cluster() == ("tokens", "my-cluster")
    assert convert(v2, V1BETA1) == doc


def test_distribution_and_kubernetes_images_survive_a_v1beta1_round_trip() -> None:
    images = {"apiServer": "mirror.example/kube-apiserver:v1.35.4", "kine": "mirror.example/k"}
    doc = v2_cluster(
        {"distribution": "kubernetes", "version": "v1.35.4", "kubernetes": {"images": images}}
    )
    v1 = convert(doc, V1BETA1)
    assert "distribution" not in v1["spec"] and "kubernetes" not in v1["spec"]
    paths = {tuple(e["path"]) for e in stash(v1) or []}
    assert {("spec", "distribution"), ("spec", "kubernetes")} <= paths
    # What v1beta1 cannot express validates against its model (the API server would prune
    # anything else) and comes back unchanged.
    v1beta1.Cluster.model_validate(v1)
    assert convert(v1, V1BETA2) == doc


def test_distribution_edited_through_v1beta1_keeps_the_v1beta1_edit() -> None:
    doc = v2_cluster({"distribution": "kubernetes", "replicas": 1})
    v1 = convert(doc, V1BETA1)
    v1["spec"]["replicas"] = 3
    back = convert(v1, V1BETA2)
    assert back["spec"] == {"distribution": "kubernetes", "replicas": 3}


@pytest.mark.parametrize("etcd", [None, {"persistence": {"size": "1Gi"}}], ids=["bare", "stored"])
def test_data_store_ref_survives_a_v1beta1_round_trip(etcd: dict[str, Any] | None) -> None:
    """mothership's own dataStoreRef has no v1beta1 field: the stash keeps it, storage type
    included (v1beta1 readers see no kine source, so the mapping alone would say etcd)."""
    ref = {"name": "shared-postgres", "reclaimPolicy": "Delete"}
    storage: dict[str, Any] = {"type": "kine", "kine": {"dataStoreRef": ref}}
    if etcd is not None:  # as the API server stores it: the etcd section defaulted
        storage["etcd"] = etcd
    doc = v2_cluster({"replicas": 3, "storage": storage})
    v1 = convert(doc, V1BETA1)
    assert "kineDataSourceURL" not in v1["spec"] and "kineDataSourceSecretName" not in v1["spec"]
    paths = {tuple(e["path"]) for e in stash(v1) or []}
    expected = (
        {("spec", "storage")}
        if etcd is None
        else {
            ("spec", "storage", "type"),
            ("spec", "storage", "kine"),
        }
    )
    assert paths == expected
    v1beta1.Cluster.model_validate(v1)
    assert convert(v1, V1BETA2) == doc
    # A v1beta1 client's unrelated edit keeps the ref.
    v1["spec"]["replicas"] = 5
    back = convert(v1, V1BETA2)
    assert back["spec"]["storage"] == doc["spec"]["storage"]
    assert back["spec"]["replicas"] == 5
    kine_ref = v1beta2.Cluster.model_validate(back).spec.storage.kine.data_store_ref
    assert kine_ref is not None
    assert (kine_ref.name, kine_ref.reclaim_policy) == ("shared-postgres", "Delete")
