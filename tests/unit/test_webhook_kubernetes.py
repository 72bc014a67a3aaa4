"""Admission rules of the kubernetes distribution: its version, skew, immutability, storage."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from mothership.api.k0smotron.v1beta2 import DEFAULT_KUBERNETES_VERSION
from mothership.testenv import pins
from mothership.webhooks.defaults import DEFAULT_K0S_VERSION, admission_patch
from mothership.webhooks.validate import validate, validate_scale

V1 = "k0smotron.io/v1beta1"
V2 = "k0smotron.io/v1beta2"


def cluster(spec: dict[str, Any], *, api: str = V2) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": spec,
    }


def kube(**spec: Any) -> dict[str, Any]:
    return cluster({"distribution": "kubernetes", **spec})


def errors(obj: dict, old: dict | None = None) -> list[str]:
    return [str(e) for e in validate(obj, old).errors]


def warnings(obj: dict, old: dict | None = None) -> list[str]:
    return [str(w) for w in validate(obj, old).warnings]


def defaulted(obj: dict, old: dict | None = None) -> dict:
    return jsonpatch.apply_patch(obj, admission_patch(obj, old))


def test_default_version_is_the_pinned_kubernetes_without_a_k0s_suffix() -> None:
    assert DEFAULT_KUBERNETES_VERSION == pins.KUBERNETES_VERSION == "v1.35.4"
    assert defaulted(kube())["spec"]["version"] == "v1.35.4"
    # k0s keeps its own default.
    assert defaulted(cluster({}))["spec"]["version"] == DEFAULT_K0S_VERSION


def test_update_keeps_the_old_version() -> None:
    old = defaulted(kube(version="v1.34.4"))
    assert defaulted(kube(replicas=1), old)["spec"]["version"] == "v1.34.4"


@pytest.mark.parametrize("value", ["v1.35.4", "v1.36.0-rc.1"])
def test_kubernetes_versions_are_accepted(value: str) -> None:
    assert validate(kube(version=value)) == ([], [])


def test_a_k0s_version_is_refused_with_the_fix() -> None:
    assert errors(kube(version="v1.35.4-k0s.0")) == [
        'spec.version: "v1.35.4-k0s.0" is a k0s version; with spec.distribution kubernetes '
        "write a Kubernetes version vX.Y.Z, e.g. v1.35.4"
    ]


@pytest.mark.parametrize("value", ["1.35", "latest", "v1.35"])
def test_malformed_kubernetes_versions(value: str) -> None:
    assert errors(kube(version=value)) == [
        f'spec.version: "{value}" is not a Kubernetes version; with spec.distribution '
        "kubernetes write a Kubernetes version vX.Y.Z, e.g. v1.35.4"
    ]


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("v1.35.4", "v1.34.4", "cannot downgrade from v1.35.4 to v1.34.4; Kubernetes does not"),
        ("v1.34.4", "v1.36.0", "go to v1.35.x first"),
        ("v1.34.4", "v2.0.0", "one minor version at a time"),
    ],
)
def test_skew_rules(old: str, new: str, fragment: str) -> None:
    found = errors(kube(version=new), kube(version=old))
    assert len(found) == 1 and found[0].startswith("spec.version: ") and fragment in found[0]


@pytest.mark.parametrize(("old", "new"), [("v1.34.4", "v1.35.4"), ("v1.35.1", "v1.35.4")])
def test_upgrades_by_one_minor_or_a_patch_pass(old: str, new: str) -> None:
    assert errors(kube(version=new), kube(version=old)) == []


def test_distribution_cannot_change() -> None:
    old = cluster({"version": "v1.35.4-k0s.0"})
    assert errors(kube(version="v1.35.4"), old) == [
        "spec.distribution: cannot change from k0s to kubernetes; the two keep different "
        "state in the data store, so keep k0s or create a new Cluster with distribution "
        "kubernetes"
    ]


def test_distribution_enum_is_enforced() -> None:
    assert errors(cluster({"distribution": "Kubernetes"})) == [
        'spec.distribution: "Kubernetes" is not valid; use kubernetes (values are case-sensitive)'
    ]


def test_several_replicas_on_sqlite_are_refused_with_the_reason() -> None:
    found = errors(kube(replicas=3, storage={"type": "kine"}))
    assert found == [
        "spec.replicas: 3 replicas need a data store they share, but spec.storage.type is "
        "kine with no data source (each pod would keep its own SQLite file); set "
        "spec.storage.kine.dataSourceURL, spec.storage.kine.dataSourceSecretName or "
        "spec.storage.kine.dataStoreRef, or use storage type etcd"
    ]
    assert errors(
        kube(replicas=3, storage={"type": "kine", "kine": {"dataSourceURL": "sqlite:///x.db"}})
    )
    assert not errors(
        kube(replicas=3, storage={"type": "kine", "kine": {"dataSourceURL": "postgres://db/x"}})
    )
    assert not errors(kube(replicas=3, storage={"type": "etcd"}))


def test_scaling_sqlite_through_the_scale_subresource_is_refused() -> None:
    spec = kube(replicas=1, storage={"type": "kine"})
    result = validate_scale(spec, 1, 2)
    assert [e.path for e in result.errors] == ["spec.replicas"]
    assert "SQLite" in result.errors[0].message
    shared = kube(replicas=1, storage={"type": "kine", "kine": {"dataSourceSecretName": "db"}})
    assert validate_scale(shared, 1, 3).errors == []


def test_ingress_is_refused_and_manifests_warned() -> None:
    ingress = {"apiHost": "api.example", "konnectivityHost": "k.example"}
    assert (
        "spec.ingress: not supported with spec.distribution kubernetes"
        in errors(kube(ingress=ingress))[0]
    )
    assert warnings(kube(manifests=[{"name": "x", "configMap": {"name": "x"}}])) == [
        "spec.manifests: ignored with spec.distribution kubernetes (k0s applies these); apply "
        "the manifests to the tenant with its kubeconfig instead"
    ]


def test_bad_network_ranges_name_the_field() -> None:
    network = {"serviceCIDR": "10.96.0.0/33", "podCIDR": "10.244.0.0/16"}
    found = errors(kube(k0sConfig={"spec": {"network": network}}))
    assert len(found) == 1
    assert found[0].startswith('spec.k0sConfig.spec.network.serviceCIDR: "10.96.0.0/33" is not')
    small = errors(kube(k0sConfig={"spec": {"network": {"serviceCIDR": "10.96.0.0/29"}}}))
    assert small and "use a /24 or larger" in small[0]


def test_v1beta1_reads_of_a_kubernetes_cluster_validate_through_the_stash() -> None:
    from mothership.api.k0smotron.convert import convert

    v1 = convert(kube(version="v1.35.4"), V1)
    assert errors(v1) == []
    v1["spec"]["version"] = "v1.35.4-k0s.0"
    assert errors(v1) and errors(v1)[0].startswith("spec.version:")


# --- the pod network provider -------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["flannel", "custom"])
def test_providers_that_can_be_deployed_are_accepted(provider: str) -> None:
    assert errors(kube(k0sConfig={"spec": {"network": {"provider": provider}}})) == []


@pytest.mark.parametrize(
    ("provider", "why"),
    [("kuberouter", "security flaws"), ("calico", "not built"), ("weave", "not a known")],
)
def test_providers_that_cannot_be_honoured_are_refused_naming_the_field(
    provider: str, why: str
) -> None:
    (message,) = errors(kube(k0sConfig={"spec": {"network": {"provider": provider}}}))
    assert "spec.k0sConfig.spec.network.provider" in message
    assert why in message and "flannel" in message and "custom" in message


def test_the_k0s_distribution_keeps_its_own_providers() -> None:
    spec = {
        "version": DEFAULT_K0S_VERSION,
        "k0sConfig": {"spec": {"network": {"provider": "calico"}}},
    }
    assert errors(cluster(spec)) == []
