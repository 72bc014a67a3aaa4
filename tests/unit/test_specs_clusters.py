"""Clusters from flags and manifests: what is sent, and what is refused before sending."""

from __future__ import annotations

import pytest

from mothership.errors import InvalidInput
from mothership.specs.clusters import (
    ClusterFlags,
    check_name,
    cluster_from_flags,
    load_manifests,
    spec_from_flags,
)


def test_only_given_flags_reach_the_spec() -> None:
    assert spec_from_flags(ClusterFlags()) == {}
    spec = spec_from_flags(ClusterFlags(distribution="kubernetes", replicas=3, storage="etcd"))
    assert spec == {"distribution": "kubernetes", "replicas": 3, "storage": {"type": "etcd"}}


def test_kine_source_implies_kine_storage() -> None:
    spec = spec_from_flags(ClusterFlags(kine_secret="pg-url"))
    assert spec["storage"] == {"type": "kine", "kine": {"dataSourceSecretName": "pg-url"}}


def test_a_datastore_implies_kine_and_excludes_a_url() -> None:
    spec = spec_from_flags(ClusterFlags(datastore="shared-pg"))
    assert spec["storage"] == {"type": "kine", "kine": {"dataStoreRef": {"name": "shared-pg"}}}
    with pytest.raises(InvalidInput, match="--datastore cannot be combined"):
        spec_from_flags(ClusterFlags(datastore="shared-pg", kine_secret="pg-url"))
    on_etcd = spec_from_flags(ClusterFlags(datastore="shared-etcd", storage="etcd"))
    assert on_etcd["storage"] == {"type": "etcd", "etcd": {"dataStoreRef": {"name": "shared-etcd"}}}
    with pytest.raises(
        InvalidInput, match=r"^--datastore need --storage kine \(or etcd\) \(got --storage nats\)$"
    ):
        spec_from_flags(ClusterFlags(datastore="shared", storage="nats"))


def test_kine_source_with_another_storage_is_refused() -> None:
    with pytest.raises(InvalidInput, match="--storage kine"):
        spec_from_flags(ClusterFlags(storage="etcd", kine_url="postgres://db/x"))


def test_pvc_persistence_gets_a_claim_template() -> None:
    spec = spec_from_flags(ClusterFlags(persistence_size="5Gi", storage_class="fast"))
    claim = spec["persistence"]["persistentVolumeClaim"]["spec"]
    assert spec["persistence"]["type"] == "pvc"
    assert claim["resources"]["requests"]["storage"] == "5Gi"
    assert claim["storageClassName"] == "fast"
    assert claim["accessModes"] == ["ReadWriteOnce"]


def test_size_without_pvc_is_refused() -> None:
    with pytest.raises(InvalidInput, match="--persistence pvc"):
        spec_from_flags(ClusterFlags(persistence="emptyDir", persistence_size="1Gi"))


def test_invalid_value_names_the_field_and_the_flag() -> None:
    with pytest.raises(InvalidInput) as caught:
        cluster_from_flags("demo", "default", ClusterFlags(replicas=-1))
    assert "spec.replicas (--replicas)" in str(caught.value)
    assert "got -1" in str(caught.value)


def test_webhook_rules_run_before_sending() -> None:
    # Two replicas on kine without a shared store: the webhook's rule, with the flag named.
    with pytest.raises(InvalidInput) as caught:
        cluster_from_flags("demo", "default", ClusterFlags(replicas=2, storage="kine"))
    assert "spec.replicas (--replicas)" in str(caught.value)
    assert "share" in str(caught.value)


def test_a_valid_cluster_is_v1beta2_with_name_and_namespace() -> None:
    checked = cluster_from_flags(
        "demo", "tenants", ClusterFlags(distribution="kubernetes", labels={"team": "a"})
    )
    (obj,) = checked.objects
    assert obj["apiVersion"] == "k0smotron.io/v1beta2"
    assert obj["metadata"] == {"name": "demo", "namespace": "tenants", "labels": {"team": "a"}}
    assert obj["spec"] == {"distribution": "kubernetes"}
    unplaced = cluster_from_flags("demo", None, ClusterFlags()).objects[0]
    assert unplaced["metadata"] == {"name": "demo"}


@pytest.mark.parametrize("name", ["Demo", "demo_1", "-demo", "a" * 64, ""])
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidInput, match="lowercase letters"):
        check_name(name)


MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: tenants}
---
apiVersion: k0smotron.io/v1beta1
kind: Cluster
metadata: {name: old, namespace: tenants}
spec: {replicas: 1}
---
apiVersion: k0smotron.io/v1beta2
kind: Cluster
metadata: {name: new}
spec: {replicas: 1}
"""


def test_manifest_documents_are_kept_in_order_and_checked() -> None:
    checked = load_manifests(MANIFEST, "m.yaml", "default", namespace_given=False)
    kinds = [(o["kind"], o["metadata"]["name"]) for o in checked.objects]
    assert kinds == [("Namespace", "tenants"), ("Cluster", "old"), ("Cluster", "new")]
    assert checked.objects[1]["metadata"]["namespace"] == "tenants"
    # No -n: the context's namespace is filled in when applying, not "default" here.
    assert "namespace" not in checked.objects[2]["metadata"]
    given = load_manifests(MANIFEST, "m.yaml", "tenants", namespace_given=True)
    assert given.objects[2]["metadata"]["namespace"] == "tenants"


def test_manifest_error_names_the_document_and_field() -> None:
    bad = "apiVersion: k0smotron.io/v1beta2\nkind: Cluster\nmetadata: {name: x}\n"
    bad += "spec: {service: {type: nodeport}}\n"
    with pytest.raises(InvalidInput) as caught:
        load_manifests(bad, "stdin", "default", namespace_given=False)
    text = str(caught.value)
    assert "stdin document 1 (Cluster x)" in text
    assert "spec.service.type" in text


def test_manifest_namespace_conflicting_with_flag_is_refused() -> None:
    with pytest.raises(InvalidInput, match="differs from -n other"):
        load_manifests(MANIFEST, "m.yaml", "other", namespace_given=True)


def test_a_list_counts_as_its_items() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, "
    text += "metadata: {name: a}}\n"
    checked = load_manifests(text, "list.yaml", "default", namespace_given=False)
    assert [o["kind"] for o in checked.objects] == ["ConfigMap"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no objects"),
        ("a: [", "not valid YAML"),
        ("kind: Cluster\n", "needs apiVersion and kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name is required"),
        ("apiVersion: k0smotron.io/v9\nkind: Cluster\nmetadata: {name: a}\n", "not served"),
    ],
)
def test_unusable_manifests_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_manifests(text, "f.yaml", "default", namespace_given=False)
