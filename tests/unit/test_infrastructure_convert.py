"""The infrastructure kinds between v1beta1 (k0smotron's documented spelling) and v1beta2."""

from __future__ import annotations

from typing import Any

import pytest

from mothership.api.infrastructure import convert, v1beta1, v1beta2

V1 = "infrastructure.cluster.x-k8s.io/v1beta1"
V2 = "infrastructure.cluster.x-k8s.io/v1beta2"
CLEAN_UP = ["systemctl stop custom-service", "rm -rf /opt/custom-data"]


def _obj(kind: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj = {"apiVersion": V1, "kind": kind, "metadata": {"name": "m"}, "spec": spec}
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("kind", "v1_spec", "v2_spec"),
    [
        (
            "RemoteMachine",
            {"address": "1.2.3.4", "sshKeyRef": {"name": "k"}, "customCleanUpCommands": CLEAN_UP},
            {"address": "1.2.3.4", "sshKeyRef": {"name": "k"}, "cleanUpCommands": CLEAN_UP},
        ),
        (
            "PooledRemoteMachine",
            {"pool": "p", "machine": {"address": "a", "customCleanUpCommands": CLEAN_UP}},
            {"pool": "p", "machine": {"address": "a", "cleanUpCommands": CLEAN_UP}},
        ),
        (
            "RemoteMachineTemplate",
            {"template": {"spec": {"pool": "p", "customCleanUpCommands": CLEAN_UP}}},
            {"template": {"spec": {"pool": "p", "cleanUpCommands": CLEAN_UP}}},
        ),
        (
            "RemoteClusterTemplate",
            {"template": {"spec": {"controlPlaneEndpoint": {"host": "h", "port": 6443}}}},
            {"template": {"spec": {"controlPlaneEndpoint": {"host": "h", "port": 6443}}}},
        ),
    ],
)
def test_clean_up_commands_are_renamed_both_ways(
    kind: str, v1_spec: dict[str, Any], v2_spec: dict[str, Any]
) -> None:
    v1 = _obj(kind, v1_spec)
    v2 = convert(v1, "v1beta2")
    assert v2["apiVersion"] == V2 and v2["spec"] == v2_spec
    assert "annotations" not in v2["metadata"], "a plain rename needs no stash"
    assert convert(v2, "v1beta1") == v1


def test_ready_is_initialization_provisioned() -> None:
    v1 = _obj("RemoteMachine", {"pool": "p"}, {"ready": True, "addresses": []})
    v2 = convert(v1, V2)
    assert v2["status"] == {"initialization": {"provisioned": True}, "addresses": []}
    assert convert(v2, V1) == v1
    cluster = _obj("RemoteCluster", {}, {"ready": False})
    assert convert(cluster, V2)["status"] == {"initialization": {"provisioned": False}}


def test_what_only_one_version_holds_survives_the_round_trip() -> None:
    v2 = {
        "apiVersion": V2,
        "kind": "RemoteMachine",
        "metadata": {"name": "m"},
        "spec": {"pool": "p"},
        "status": {
            "initialization": {"provisioned": True},
            "conditions": [{"type": "Ready", "status": "True"}],
            "observedGeneration": 3,
        },
    }
    v1 = convert(v2, V1)
    assert v1["status"] == {"ready": True}
    assert convert(v1, V2) == v2
    failed = _obj("RemoteMachine", {"pool": "p"}, {"failureReason": "x", "failureMessage": "y"})
    assert convert(convert(failed, V2), V1) == failed


@pytest.mark.parametrize(
    "v1_class",
    [
        v1beta1.RemoteCluster,
        v1beta1.RemoteClusterTemplate,
        v1beta1.RemoteMachine,
        v1beta1.RemoteMachineTemplate,
        v1beta1.PooledRemoteMachine,
    ],
)
def test_each_v1beta1_kind_shares_the_crd_of_its_v1beta2_kind(v1_class: Any) -> None:
    v2_class = getattr(v1beta2, v1_class.__name__)
    assert v1_class.CRD is v2_class.CRD
    assert v1_class.VERSION.deprecated and not v1_class.VERSION.storage


def test_other_groups_and_versions_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown apiVersion"):
        convert(_obj("RemoteMachine", {}), "v1alpha1")
    with pytest.raises(ValueError, match="unknown kind"):
        convert(_obj("Machine", {}), "v1beta2")
