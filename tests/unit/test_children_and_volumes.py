"""What the operator remembers of its children, and how volumes are sized, offline.

The registry decides whether an apply is needed (drift, deletion, watch lag), so its
rules are tested here on the same object shapes the API server sends; the integration
tests (tests/integration/test_cluster_drift_and_volumes.py) show them against a real one.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from cryptography import x509

from mothership import pki
from mothership.api import quantity
from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.controllers import children, volumes
from mothership.controllers.children import BY_KIND, Registry, field_owners
from mothership.controllers.operator import serving_changed, wants_reconcile
from mothership.render import ingress_cert
from mothership.render.names import FIELD_MANAGER, HASH_ANNOTATION
from mothership.webhooks.validate import validate

V2 = "k0smotron.io/v1beta2"


def entry(manager: str, fields: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    out = {
        "manager": manager,
        "operation": "Apply" if manager == FIELD_MANAGER else "Update",
        "apiVersion": "v1",
        "time": "2026-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        out["subresource"] = subresource
    return out


def configmap(rv: int, managed: list[dict[str, Any]], digest: str = "h1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "kmc-a-config",
            "namespace": "ns",
            "resourceVersion": str(rv),
            "labels": {"cluster": "a", "app.kubernetes.io/managed-by": "mothership"},
            "annotations": {HASH_ANNOTATION: digest, "other": "x"},
            "managedFields": managed,
        },
    }


OURS = entry(FIELD_MANAGER, {"f:data": {"f:K": {}}})
KEY = ("ns", "a")
CM = BY_KIND["ConfigMap"]


# -- quantities ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", Decimal(2**30)),
        ("1536Mi", Decimal(1536 * 2**20)),
        ("1G", Decimal(10**9)),
        ("500m", Decimal("0.5")),
        ("1e3", Decimal(1000)),
        ("1.5Gi", Decimal(3 * 2**29)),
        (1073741824, Decimal(2**30)),
    ],
)
def test_quantities_parse_to_their_exact_value(text: Any, value: Decimal) -> None:
    assert quantity.parse(text) == value


def test_quantities_compare_across_suffixes() -> None:
    assert quantity.compare("1Gi", "1073741824") == 0
    assert quantity.compare("1Gi", "1G") == 1
    assert quantity.compare("900Mi", "1Gi") == -1


@pytest.mark.parametrize("text", ["", "Gi", "1 Gi", "1gi", "ten", "1Gib", True])
def test_malformed_quantities_are_refused_with_an_example(text: Any) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        quantity.parse(text)


# -- admission: volumes grow, never shrink ---------------------------------------------------


def pvc_cluster(size: str, etcd_size: str = "1Gi") -> dict[str, Any]:
    return {
        "apiVersion": V2,
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {
            "version": "v1.35.4-k0s.0",
            "persistence": {
                "type": "pvc",
                "persistentVolumeClaim": {
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": size}},
                    }
                },
            },
            "storage": {"type": "etcd", "etcd": {"persistence": {"size": etcd_size}}},
        },
    }


def test_shrinking_a_claim_is_refused_naming_the_field_and_the_fix() -> None:
    errors = validate(pvc_cluster("5Gi"), pvc_cluster("10Gi")).errors
    assert [str(e) for e in errors] == [
        "spec.persistence.persistentVolumeClaim.spec.resources.requests.storage: cannot shrink "
        "from 10Gi to 5Gi: volumes only grow; keep 10Gi or ask for more (to start smaller, "
        "recreate the Cluster on new volumes)"
    ]


def test_shrinking_etcd_storage_is_refused_and_growing_is_fine() -> None:
    errors = validate(pvc_cluster("1Gi", "512Mi"), pvc_cluster("1Gi", "1Gi")).errors
    assert [e.path for e in errors] == ["spec.storage.etcd.persistence.size"]
    assert validate(pvc_cluster("2Gi", "4Gi"), pvc_cluster("1Gi", "1Gi")).errors == []
    # The same size written another way is no change.
    assert validate(pvc_cluster("1024Mi"), pvc_cluster("1Gi")).errors == []


def test_a_size_that_is_not_a_quantity_is_refused() -> None:
    errors = validate(pvc_cluster("lots")).errors
    assert [str(e) for e in errors] == [
        'spec.persistence.persistentVolumeClaim.spec.resources.requests.storage: "lots" is '
        "not a size; write it like 10Gi or 500Mi"
    ]


# -- volume growth plan ---------------------------------------------------------------------


def sts(sizes: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "kmc-a", "namespace": "ns"},
        "spec": {
            "volumeClaimTemplates": [
                {"metadata": {"name": n}, "spec": {"resources": {"requests": {"storage": s}}}}
                for n, s in sizes.items()
            ]
        },
    }


def test_plan_grows_larger_templates_and_keeps_smaller_ones() -> None:
    desired = {"data": "2Gi", "nats": "512Mi", "same": "1Gi", "new": "1Gi"}
    observed = {"data": "1Gi", "nats": "1Gi", "same": "1024Mi"}
    assert volumes.plan(desired, observed) == ({"data": "2Gi"}, {"nats": "1Gi"})


def test_sizes_are_read_and_replaced_without_touching_the_render() -> None:
    rendered = sts({"data": "2Gi", "nats": "1Gi"})
    assert volumes.template_sizes(rendered) == {"data": "2Gi", "nats": "1Gi"}
    kept = volumes.with_sizes(rendered, {"data": "1Gi"})
    assert volumes.template_sizes(kept) == {"data": "1Gi", "nats": "1Gi"}
    assert volumes.template_sizes(rendered) == {"data": "2Gi", "nats": "1Gi"}


def test_the_registry_keeps_claim_sizes_of_a_statefulset() -> None:
    registry = Registry()
    obj = sts({"data": "1Gi"}) | {"apiVersion": "apps/v1"}
    obj["metadata"] |= {"labels": {"cluster": "a"}, "resourceVersion": "5"}
    obj["status"] = {"readyReplicas": 1, "replicas": 1}
    registry.observe(BY_KIND["StatefulSet"], obj, written=True)
    child = registry.get("StatefulSet", "ns", "kmc-a")
    assert child is not None
    assert child.status["claims"] == (("data", "1Gi"),)
    assert child.status["readyReplicas"] == 1


def test_the_registry_keeps_finalizers_and_whether_a_child_is_terminating() -> None:
    registry = Registry()
    meta = {"name": "a-ca", "namespace": "ns", "labels": {"cluster": "a"}, "resourceVersion": "7"}
    secret = {"kind": "Secret", "metadata": meta | {"finalizers": ["k0smotron.io/pki"]}}
    registry.observe(BY_KIND["Secret"], secret)
    child = registry.get("Secret", "ns", "a-ca")
    assert child is not None and child.finalizers == ("k0smotron.io/pki",)
    assert not child.deleting
    gone = {"kind": "Secret", "metadata": meta | {"resourceVersion": "8", "deletionTimestamp": "x"}}
    registry.observe(BY_KIND["Secret"], gone)
    child = registry.get("Secret", "ns", "a-ca")
    assert child is not None and child.deleting and child.finalizers == ()


# -- the registry: drift, deletion, watch lag -----------------------------------------------


def test_status_writes_by_others_are_not_drift() -> None:
    status = entry("kube-controller-manager", {"f:status": {}}, subresource="status")
    assert field_owners({"managedFields": [OURS]}) == (
        field_owners({"managedFields": [OURS, status]})[0],
        False,
    )
    scale = entry("kubectl", {"f:spec": {"f:replicas": {}}}, subresource="scale")
    fields, foreign = field_owners({"managedFields": [OURS, scale]})
    assert foreign and fields != field_owners({"managedFields": [OURS]})[0]


def test_our_own_write_is_in_place_and_a_foreign_edit_is_drift() -> None:
    registry = Registry()
    registry.observe(CM, configmap(10, [OURS]), written=True)
    mine = registry.get("ConfigMap", "ns", "kmc-a-config")
    assert mine is not None and not mine.drifted and mine.hash == "h1"
    assert dict(mine.annotations) == {}  # only mothership.io/* is kept, and not the hash
    edited = entry("kubectl-edit", {"f:data": {"f:K": {}}})
    registry.observe(CM, configmap(11, [edited]))  # kubectl edit took the field over
    child = registry.get("ConfigMap", "ns", "kmc-a-config")
    assert child is not None and child.drifted and child.hash == "h1"
    registry.observe(CM, configmap(12, [OURS, edited]), written=True)  # we applied again
    child = registry.get("ConfigMap", "ns", "kmc-a-config")
    assert child is not None and not child.drifted


def test_an_older_event_never_overwrites_a_newer_write() -> None:
    registry = Registry()
    registry.observe(CM, configmap(20, [OURS], digest="new"), written=True)
    registry.observe(CM, configmap(19, [OURS], digest="old"))  # the watch lagging behind
    child = registry.get("ConfigMap", "ns", "kmc-a-config")
    assert child is not None and child.hash == "new" and child.version == 20


def test_our_answer_arriving_after_later_status_updates_is_not_drift() -> None:
    registry = Registry()
    registry.observe(CM, configmap(10, [OURS]), written=True)
    ours_again = entry(FIELD_MANAGER, {"f:data": {"f:K": {}, "f:L": {}}})
    status = entry("kube-controller-manager", {"f:status": {}}, subresource="status")
    # The watch shows our second write (v11) and a status update after it (v12) first ...
    registry.observe(CM, configmap(11, [ours_again]))
    registry.observe(CM, configmap(12, [ours_again, status]))
    held = registry.get("ConfigMap", "ns", "kmc-a-config")
    assert held is not None and held.drifted
    # ... then the answer to that write arrives: the fields are still the ones it left.
    registry.observe(CM, configmap(11, [ours_again]), written=True)
    held = registry.get("ConfigMap", "ns", "kmc-a-config")
    assert held is not None and held.version == 12 and not held.drifted
    # An edit in between is still drift.
    other = Registry()
    other.observe(CM, configmap(10, [OURS]), written=True)
    edited = entry("kubectl-edit", {"f:data": {"f:K": {}}})
    other.observe(CM, configmap(12, [ours_again, edited]))
    other.observe(CM, configmap(11, [ours_again]), written=True)
    assert other.get("ConfigMap", "ns", "kmc-a-config").drifted  # type: ignore[union-attr]


def test_first_sight_is_clean_only_when_no_one_else_manages_fields() -> None:
    registry = Registry()
    registry.observe(CM, configmap(5, [OURS]))
    clean = registry.get("ConfigMap", "ns", "kmc-a-config")
    assert clean is not None and not clean.drifted
    other = Registry()
    other.observe(CM, configmap(5, [OURS, entry("kubectl-edit", {"f:data": {}})]))
    touched = other.get("ConfigMap", "ns", "kmc-a-config")
    assert touched is not None and touched.drifted


def test_a_deletion_removes_the_child_unless_we_recreated_it_since() -> None:
    seen: list[tuple[Any, Any]] = []
    registry = Registry()
    registry.listeners.append(lambda key, old, new: seen.append((old, new)))
    registry.observe(CM, configmap(30, [OURS]), written=True)
    registry.forget(CM, configmap(29, [OURS]))  # an older incarnation's DELETED
    assert registry.get("ConfigMap", "ns", "kmc-a-config") is not None
    registry.forget(CM, configmap(31, [OURS]))
    assert registry.get("ConfigMap", "ns", "kmc-a-config") is None
    assert registry.of(KEY) == {}
    assert seen[-1][1] is None and seen[-1][0] is not None


def test_a_relist_drops_what_vanished_but_not_what_was_written_after_it() -> None:
    registry = Registry()
    registry.observe(CM, configmap(40, [OURS]))
    late = configmap(60, [OURS])
    late["metadata"]["name"] = "kmc-a-endpoint"
    registry.observe(CM, late, written=True)
    registry.prune(CM, None, seen=set(), listed_at=50)
    assert registry.get("ConfigMap", "ns", "kmc-a-config") is None
    assert registry.get("ConfigMap", "ns", "kmc-a-endpoint") is not None


def test_removing_the_cluster_label_stops_tracking_the_object() -> None:
    registry = Registry()
    registry.observe(CM, configmap(1, [OURS]))
    unlabelled = configmap(2, [OURS])
    unlabelled["metadata"]["labels"] = {}
    registry.observe(CM, unlabelled)
    assert len(registry) == 0


def test_which_child_changes_reconcile_their_cluster() -> None:
    base = children.Child(
        "StatefulSet", "kmc-a", "h", {}, {"readyReplicas": 0}, fields="x", ours="x"
    )
    ready = children.Child(
        "StatefulSet", "kmc-a", "h", {}, {"readyReplicas": 1}, fields="x", ours="x"
    )
    assert wants_reconcile(base, ready)  # pods became ready
    assert not wants_reconcile(base, base)
    assert wants_reconcile(base, None)  # deleted
    cm = children.Child("ConfigMap", "kmc-a-config", "h", fields="x", ours="x")
    assert not wants_reconcile(None, cm)
    assert wants_reconcile(
        cm, children.Child("ConfigMap", "kmc-a-config", "h", fields="y", ours="x")
    )


def test_only_a_change_of_serving_skips_the_settle_time() -> None:
    def sts(ready: int, **status: int) -> children.Child:
        return children.Child(
            "StatefulSet", "kmc-a", "h", {}, {"readyReplicas": ready, **status}, fields="x",
            ours="x",
        )  # fmt: skip

    assert serving_changed(sts(0), sts(1))  # the first ready replica: Available at once
    assert serving_changed(sts(2), sts(0))  # the last one gone: not Available at once
    assert not serving_changed(sts(1), sts(2))  # scaling: settled with the burst
    assert not serving_changed(sts(1), sts(1, updatedReplicas=1))
    assert not serving_changed(None, sts(1))  # first sight (start-up, resync)
    cm = children.Child("ConfigMap", "kmc-a-config", "h", fields="x", ours="x")
    assert not serving_changed(cm, cm)


# -- ingress haproxy certificate ---------------------------------------------------------------


def test_haproxy_certificate_is_a_leaf_of_the_cluster_ca_for_the_kubernetes_names() -> None:
    ca = pki.new_ca("kubernetes-ca", key_type="rsa")
    cluster = Cluster.model_validate(
        {
            "apiVersion": V2,
            "kind": "Cluster",
            "metadata": {"name": "edge", "namespace": "ns"},
            "spec": {
                "ingress": {"apiHost": "api.example.com", "konnectivityHost": "k.example.com"},
                "k0sConfig": {
                    "spec": {"network": {"serviceCIDR": "10.100.0.0/16", "clusterDomain": "corp"}}
                },
            },
        }
    )
    secret = ingress_cert.haproxy_secret(cluster, "ns", ca)
    assert secret["metadata"]["name"] == "edge-ingress-haproxy"
    assert secret["type"] == "cluster.x-k8s.io/secret"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mothership"
    crt = base64.b64decode(secret["data"]["tls.crt"])
    key = base64.b64decode(secret["data"]["tls.key"])
    assert pki.cert_signed_by(crt, ca.cert_pem) and pki.key_matches_cert(crt, key)
    cert = x509.load_pem_x509_certificate(crt)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc.corp" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "10.100.0.1",
    ]
