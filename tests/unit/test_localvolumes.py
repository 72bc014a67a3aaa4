"""Decisions of the local mothership's volume provisioner (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mothership.testenv import localvolumes as lv


def _pvc(**over: Any) -> dict[str, Any]:
    pvc: dict[str, Any] = {
        "metadata": {
            "name": "data",
            "namespace": "ns1",
            "uid": "1234-abcd",
            "annotations": {lv.ANN_SELECTED_NODE: "node-a"},
        },
        "spec": {
            "storageClassName": lv.STORAGE_CLASS,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
        "status": {"phase": "Pending"},
    }
    for key, value in over.items():
        section, field = key.split("__")
        if value is None:
            pvc[section].pop(field, None)
        else:
            pvc[section][field] = value
    return pvc


def test_storage_class_is_the_default_with_delete_and_expansion() -> None:
    sc = lv.storage_class()
    assert sc["metadata"]["annotations"][lv.ANN_DEFAULT_CLASS] == "true"
    assert (sc["provisioner"], sc["reclaimPolicy"]) == ("mothership.local/hostpath", "Delete")
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["allowVolumeExpansion"] is True


def test_a_pending_claim_of_the_class_wants_a_volume_once_its_node_is_chosen() -> None:
    assert lv.wants_volume(_pvc(), "WaitForFirstConsumer")
    no_node = _pvc(metadata__annotations={})
    assert not lv.wants_volume(no_node, "WaitForFirstConsumer")
    assert lv.wants_volume(no_node, "Immediate")


@pytest.mark.parametrize(
    "change",
    [
        {"spec__storageClassName": "other"},
        {"spec__storageClassName": None},
        {"spec__volumeName": "pvc-already"},
        {"status__phase": "Bound"},
        {"metadata__deletionTimestamp": "2025-01-01T00:00:00Z"},
    ],
)
def test_other_claims_are_left_alone(change: dict[str, Any]) -> None:
    assert not lv.wants_volume(_pvc(**change), "WaitForFirstConsumer")


def test_the_volume_is_a_local_directory_bound_to_the_claim_on_the_node() -> None:
    pv = lv.persistent_volume(_pvc(), Path("/state/volumes"), "node-a")
    assert pv["metadata"]["name"] == "pvc-1234-abcd"
    assert pv["metadata"]["annotations"] == {lv.ANN_PROVISIONED_BY: lv.PROVISIONER}
    assert pv["metadata"]["finalizers"] == [lv.FINALIZER]
    spec = pv["spec"]
    assert spec["local"] == {"path": "/state/volumes/pvc-1234-abcd"}
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "ns1",
        "name": "data",
        "uid": "1234-abcd",
    }
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"spec__volumeMode": "Block"}, "volumeMode: Filesystem"),
        ({"spec__dataSource": {"kind": "PersistentVolumeClaim", "name": "x"}}, "dataSource"),
        ({"spec__resources": {}}, "spec.resources.requests.storage"),
    ],
)
def test_unsupported_claims_get_a_reason_with_the_fix(change: dict[str, Any], words: str) -> None:
    problem = lv.claim_problem(_pvc(**change))
    assert problem is not None and words in problem
    assert lv.claim_problem(_pvc()) is None


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "pvc-x/.."])
def test_volume_dirs_cannot_leave_the_root(name: str) -> None:
    with pytest.raises(ValueError, match="not a safe directory name"):
        lv.volume_dir(Path("/root"), name)


def _pv(phase: str = "Bound", policy: str = "Delete", **meta: Any) -> dict[str, Any]:
    pv = lv.persistent_volume(_pvc(), Path("/v"), "node-a", policy)
    pv["metadata"].update(meta)
    pv["status"] = {"phase": phase}
    return pv


def test_only_our_released_delete_volumes_are_reclaimed() -> None:
    assert lv.should_reclaim(_pv("Released"))
    assert not lv.should_reclaim(_pv("Bound"))
    assert not lv.should_reclaim(_pv("Released", "Retain"))
    assert not lv.should_reclaim(_pv("Released", annotations={}))
    assert not lv.should_reclaim(_pv("Released", deletionTimestamp="2025-01-01T00:00:00Z"))


def test_finalizer_removes_data_only_under_the_delete_policy() -> None:
    deleting = "2025-01-01T00:00:00Z"
    assert lv.finalize_action(_pv("Released", deletionTimestamp=deleting)) == "delete-data"
    assert lv.finalize_action(_pv("Released", "Retain", deletionTimestamp=deleting)) == "keep-data"
    assert lv.finalize_action(_pv("Released")) is None
    assert lv.finalize_action(_pv("Released", deletionTimestamp=deleting, finalizers=[])) is None


def test_expansion_grows_to_the_request_and_completes_an_interrupted_one() -> None:
    pv = _pv()
    bigger = _pvc(spec__resources={"requests": {"storage": "2Gi"}})
    assert lv.expansion(bigger, pv) == "2Gi"
    assert lv.expansion(_pvc(), pv) is None
    assert lv.expansion(_pvc(spec__resources={"requests": {"storage": "512Mi"}}), pv) is None
    # PV already grown, claim status not yet: finish the claim side.
    pv["spec"]["capacity"]["storage"] = "2Gi"
    half_done = _pvc(status__capacity={"storage": "1Gi"})
    half_done["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert lv.expansion(half_done, pv) == "2Gi"
    # Another claim's volume is never touched.
    other = _pvc(spec__resources={"requests": {"storage": "5Gi"}})
    other["metadata"]["uid"] = "other"
    assert lv.expansion(other, pv) is None


def test_resize_status_patch_sets_capacity_and_clears_resize_state() -> None:
    pvc = _pvc(
        status__conditions=[{"type": "Resizing"}, {"type": "Other"}],
        status__allocatedResources={"storage": "2Gi"},
        status__allocatedResourceStatuses={"storage": "ControllerResizeInProgress"},
    )
    patch = lv.resize_status_patch(pvc, "2Gi")["status"]
    assert patch["capacity"] == {"storage": "2Gi"}
    assert patch["conditions"] == [{"type": "Other"}]
    assert patch["allocatedResourceStatuses"] is None
    assert patch["allocatedResources"] == {"storage": "2Gi"}
    assert lv.resize_status_patch(_pvc(), "2Gi")["status"]["conditions"] is None
