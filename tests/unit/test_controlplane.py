"""K0smotronControlPlane: conversion between the contracts' versions, and the pure parts of
its reconciler (hosted Cluster, endpoint, status)."""

from __future__ import annotations

import copy

import pytest

from mothership.api.controlplane import convert as convert_cp
from mothership.api.conversion import convert as convert_any
from mothership.api.k0smotron.v1beta2 import ClusterSpec
from mothership.controllers import controlplane_status as cps
from mothership.render import network

V1 = "controlplane.cluster.x-k8s.io/v1beta1"
V2 = "controlplane.cluster.x-k8s.io/v1beta2"
NOW = "2026-12-04T00:00:00Z"


def _cp(status: dict | None = None, **spec: object) -> dict:
    obj = {
        "apiVersion": V2,
        "kind": "K0smotronControlPlane",
        "metadata": {
            "name": "cp",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 2,
            "ownerReferences": [
                {"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "name": "capi-a"}
            ],
        },
        "spec": {"version": "v1.35.4", "distribution": "kubernetes", **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def _hosted(available: bool, ready: int = 1, **status: object) -> dict:
    return {
        "metadata": {"name": "capi-a"},
        "spec": {"version": "v1.35.4"},
        "status": {
            "replicas": 1,
            "readyReplicas": ready,
            "updatedReplicas": 1,
            "selector": "app=k0smotron,cluster=capi-a,component=control-plane",
            "externalAddress": "10.0.0.5",
            "version": "v1.35.4",
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "ControlPlaneAvailable" if available else "WaitingForAPI",
                    "message": "m",
                }
            ],
            **status,
        },
    }


def test_status_round_trips_through_v1beta1_without_loss() -> None:
    v2 = _cp(
        {
            "initialization": {"controlPlaneInitialized": True},
            "externalManagedControlPlane": True,
            "replicas": 3,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "upToDateReplicas": 1,
            "version": "v1.35.4",
            "observedGeneration": 2,
        },
        storage={"type": "kine", "kine": {"dataSourceURL": "sqlite:///x"}},
    )
    v1 = convert_cp(v2, "v1beta1")
    assert v1["apiVersion"] == V1
    assert v1["status"]["ready"] is True and v1["status"]["initialized"] is True
    assert v1["status"]["updatedReplicas"] == 1
    assert v1["status"]["unavailableReplicas"] == 1
    assert v1["spec"]["kineDataSourceURL"] == "sqlite:///x"
    assert convert_any(v1, "v1beta2") == v2


def test_a_v1beta1_manifest_is_stored_as_v1beta2() -> None:
    v1 = {
        "apiVersion": V1,
        "kind": "K0smotronControlPlane",
        "metadata": {"name": "cp"},
        "spec": {"version": "v1.33.1-k0s.0", "kineDataSourceURL": "postgres://db"},
    }
    v2 = convert_cp(v1, V2)
    assert v2["spec"]["storage"] == {"type": "kine", "kine": {"dataSourceURL": "postgres://db"}}
    assert convert_cp(v2, "v1beta1") == v1


def test_template_spec_converts_like_a_control_plane_spec() -> None:
    v1 = {
        "apiVersion": V1,
        "kind": "K0smotronControlPlaneTemplate",
        "metadata": {"name": "t"},
        "spec": {"template": {"spec": {"controllerPlaneFlags": ["--a=b"]}}},
    }
    v2 = convert_cp(v1, "v1beta2")
    assert v2["spec"]["template"]["spec"] == {"controlPlaneFlags": ["--a=b"]}
    assert convert_cp(v2, "v1beta1") == v1


@pytest.mark.parametrize(
    ("obj", "target", "message"),
    [
        (
            {"apiVersion": "example.com/v1", "kind": "K0smotronControlPlane"},
            "v1beta2",
            "apiVersion",
        ),
        ({"apiVersion": V1, "kind": "Other"}, "v1beta2", "kind"),
        ({"apiVersion": V1, "kind": "K0smotronControlPlane"}, "v9", "v9"),
    ],
)
def test_unknown_versions_and_kinds_are_refused(obj: dict, target: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert_any(obj, target) if "example" in obj["apiVersion"] else convert_cp(obj, target)


def test_the_hosted_cluster_is_named_after_the_capi_cluster_and_owned_by_its_control_plane() -> (
    None
):
    cp = _cp()
    assert cps.owner_cluster(cp) == "capi-a"
    hosted = cps.hosted_cluster(cp, "capi-a")
    assert hosted["metadata"]["name"] == "capi-a"
    assert hosted["metadata"]["labels"] == {"cluster.x-k8s.io/cluster-name": "capi-a"}
    (ref,) = hosted["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("K0smotronControlPlane", "u-1", True)
    assert hosted["spec"] == cp["spec"]


def test_without_a_capi_owner_there_is_no_cluster_name() -> None:
    cp = _cp()
    cp["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Cluster", "name": "x"}]
    assert cps.owner_cluster(cp) is None


def test_endpoint_is_the_ingress_host_or_the_exposed_address_and_api_port() -> None:
    assert cps.endpoint(_cp(), None) is None
    assert cps.endpoint(_cp(service={"apiPort": 31000}), _hosted(True)) == ("10.0.0.5", 31000)
    assert cps.endpoint(_cp(ingress={"apiHost": "api.example.com"}), None) == (
        "api.example.com",
        443,
    )


def test_pause_comes_from_the_cluster_spec_or_either_annotation() -> None:
    cp, capi = _cp(), {"metadata": {}, "spec": {}}
    assert not cps.paused(cp, capi)
    assert cps.paused(cp, {"metadata": {}, "spec": {"paused": True}})
    assert cps.paused(cp, {"metadata": {"annotations": {cps.PAUSED_ANNOTATION: ""}}})
    cp["metadata"]["annotations"] = {cps.PAUSED_ANNOTATION: "true"}
    assert cps.paused(cp, capi)


def _cond(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_status_follows_the_hosted_cluster_and_initialized_sticks() -> None:
    waiting = cps.status(_cp(), _hosted(False, ready=0), paused_now=False, now=NOW)
    assert waiting["initialization"] == {"controlPlaneInitialized": False}
    assert _cond(waiting, "Available")["reason"] == "WaitingForAPI"
    assert "version" not in waiting
    up = cps.status(_cp(waiting), _hosted(True), paused_now=False, now=NOW)
    assert up["initialization"] == {"controlPlaneInitialized": True}
    assert up["externalManagedControlPlane"] is True
    assert (up["replicas"], up["readyReplicas"], up["availableReplicas"]) == (1, 1, 1)
    assert up["version"] == "v1.35.4" and up["observedGeneration"] == 2
    assert _cond(up, "Available")["status"] == "True"
    down = cps.status(_cp(up), _hosted(False, ready=0), paused_now=False, now=NOW)
    assert down["initialization"] == {"controlPlaneInitialized": True}
    assert _cond(down, "Available")["status"] == "False"
    assert down["version"] == "v1.35.4"  # last known, while no pod is ready


def test_a_refused_hosted_cluster_is_reported_with_the_refusal() -> None:
    out = cps.status(_cp(), None, paused_now=False, problem="spec.version: bad", now=NOW)
    assert _cond(out, "Available")["reason"] == "InvalidSpec"
    assert "spec.version: bad" in _cond(out, "HostedClusterReady")["message"]


def test_an_unchanged_world_gives_an_identical_status() -> None:
    first = cps.status(_cp(), _hosted(True), paused_now=False, now=NOW)
    again = cps.status(_cp(copy.deepcopy(first)), _hosted(True), paused_now=False, now="later")
    assert again == first
    paused = cps.status(_cp(first), _hosted(True), paused_now=True, now=NOW)
    assert _cond(paused, "Paused")["status"] == "True"


CAPI_NETWORK = {
    "pods": {"cidrBlocks": ["10.50.0.0/16"]},
    "services": {"cidrBlocks": ["10.60.0.0/16"]},
    "serviceDomain": "tenant.local",
}


def test_the_capi_clusters_network_goes_where_both_distributions_read_it() -> None:
    cp = _cp()
    before = copy.deepcopy(cp)
    hosted = cps.hosted_cluster(cp, "capi-a", CAPI_NETWORK)
    assert hosted["spec"]["k0sConfig"]["spec"]["network"] == {
        "podCIDR": "10.50.0.0/16",
        "serviceCIDR": "10.60.0.0/16",
        "clusterDomain": "tenant.local",
    }
    assert cp == before  # the user's control plane is never changed
    # Rendered, the kubernetes distribution uses those ranges.
    spec = ClusterSpec.model_validate(hosted["spec"])
    assert (network.pod_cidr(spec), network.service_cidr(spec)) == ("10.50.0.0/16", "10.60.0.0/16")
    assert network.cluster_domain(spec) == "tenant.local"


def test_the_control_planes_own_k0s_config_is_kept_and_an_equal_value_agrees() -> None:
    own = {"spec": {"network": {"serviceCIDR": "10.60.0.0/16", "provider": "custom"}}}
    hosted = cps.hosted_cluster(
        _cp(k0sConfig=own), "capi-a", {"services": CAPI_NETWORK["services"]}
    )
    assert hosted["spec"]["k0sConfig"]["spec"]["network"] == {
        "serviceCIDR": "10.60.0.0/16",
        "provider": "custom",
    }
    # No clusterNetwork (or an empty one): the spec is the control plane's, unchanged.
    assert cps.hosted_cluster(_cp(k0sConfig=own), "capi-a", None)["spec"]["k0sConfig"] == own
    assert (
        cps.hosted_cluster(_cp(), "capi-a", {"pods": {"cidrBlocks": []}})["spec"] == _cp()["spec"]
    )


def test_a_range_set_differently_in_both_places_is_refused_naming_both_fields() -> None:
    own = {"spec": {"network": {"podCIDR": "10.244.0.0/16"}}}
    with pytest.raises(cps.NetworkConflict) as exc:
        cps.hosted_cluster(_cp(k0sConfig=own), "capi-a", CAPI_NETWORK)
    message = str(exc.value)
    assert "spec.k0sConfig.spec.network.podCIDR '10.244.0.0/16'" in message
    assert "spec.clusterNetwork.pods.cidrBlocks[0] '10.50.0.0/16'" in message
