"""Pure decisions of the local mothership's volume provisioner: which claims get a volume,
what that volume looks like, when it grows and when it goes.

The local mothership has one real node and no cloud disks, so a claim's volume is a
directory under the state dir, exposed as a `local` PersistentVolume pinned to the node.
`local` rather than `hostPath` because the kubelet applies a pod's fsGroup to `local`
volumes, and control-plane pods (etcd) run as non-root relying on it.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from lightkube.utils.quantity import parse_quantity

PROVISIONER = "mothership.local/hostpath"
STORAGE_CLASS = "mothership-local"
FIELD_MANAGER = "mothership-local-provisioner"
# Holds a PV until its directory is removed, so deleting the PV object directly does not
# strand the data on disk (its reclaim policy still decides whether the data goes).
FINALIZER = "mothership.local/volume-cleanup"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
HOSTNAME_LABEL = "kubernetes.io/hostname"

Obj = dict[str, Any]
_PV_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def storage_class(binding_mode: str = "WaitForFirstConsumer") -> Obj:
    """The default StorageClass: claims without a class land here."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {ANN_DEFAULT_CLASS: "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        # The scheduler picks the node first, as for any node-local storage.
        "volumeBindingMode": binding_mode,
        "allowVolumeExpansion": True,
    }


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def requested_storage(pvc: Obj) -> str | None:
    return ((_spec(pvc).get("resources") or {}).get("requests") or {}).get("storage")


def pv_name(pvc: Obj) -> str:
    """The name upstream provisioners use, so one claim can never get two volumes."""
    return f"pvc-{_meta(pvc)['uid']}"


def volume_dir(root: Path, name: str) -> Path:
    """The directory of a PV, refusing names that could point outside the volumes root."""
    if not _PV_NAME.match(name) or ".." in name:
        raise ValueError(f"PersistentVolume name {name!r} is not a safe directory name")
    return root / name


def claim_problem(pvc: Obj) -> str | None:
    """Why a claim of our class cannot be provisioned, as an event message; None if it can."""
    spec = _spec(pvc)
    if spec.get("volumeMode", "Filesystem") != "Filesystem":
        return (
            f"volumeMode {spec.get('volumeMode')} is not supported by {STORAGE_CLASS}: its "
            "volumes are directories; set spec.volumeMode: Filesystem"
        )
    if spec.get("dataSource") or spec.get("dataSourceRef"):
        return (
            f"{STORAGE_CLASS} cannot populate a volume from a data source; remove "
            "spec.dataSource/spec.dataSourceRef or use another StorageClass"
        )
    if not requested_storage(pvc):
        return "spec.resources.requests.storage is required"
    return None


def wants_volume(pvc: Obj, binding_mode: str) -> bool:
    """A pending claim of our class with no volume yet, whose node is chosen if that matters."""
    meta, spec = _meta(pvc), _spec(pvc)
    if meta.get("deletionTimestamp") or spec.get("volumeName"):
        return False
    if spec.get("storageClassName") != STORAGE_CLASS:
        return False
    if (pvc.get("status") or {}).get("phase", "Pending") != "Pending":
        return False
    if binding_mode == "WaitForFirstConsumer":
        return bool((meta.get("annotations") or {}).get(ANN_SELECTED_NODE))
    return True


def persistent_volume(pvc: Obj, root: Path, node: str, reclaim_policy: str = "Delete") -> Obj:
    """The PV for a claim: bound to it by claimRef, a directory on the node."""
    meta, spec = _meta(pvc), _spec(pvc)
    name = pv_name(pvc)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {ANN_PROVISIONED_BY: PROVISIONER},
            "finalizers": [FINALIZER],
        },
        "spec": {
            "capacity": {"storage": requested_storage(pvc)},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": reclaim_policy,
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "local": {"path": str(volume_dir(root, name))},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}
                            ]
                        }
                    ]
                }
            },
        },
    }


def is_ours(pv: Obj) -> bool:
    return (_meta(pv).get("annotations") or {}).get(ANN_PROVISIONED_BY) == PROVISIONER


def should_reclaim(pv: Obj) -> bool:
    """A released volume of ours whose policy says its data goes with the claim."""
    return (
        is_ours(pv)
        and (pv.get("status") or {}).get("phase") == "Released"
        and _spec(pv).get("persistentVolumeReclaimPolicy") == "Delete"
        and not _meta(pv).get("deletionTimestamp")
    )


def finalize_action(pv: Obj) -> str | None:
    """For a PV of ours being deleted: "delete-data", "keep-data", or None when not ours to do.

    Data goes only under the Delete policy; a Retain volume keeps its directory for the
    user to recover.
    """
    meta = _meta(pv)
    if not meta.get("deletionTimestamp") or FINALIZER not in (meta.get("finalizers") or []):
        return None
    if _spec(pv).get("persistentVolumeReclaimPolicy") == "Delete":
        return "delete-data"
    return "keep-data"


def _size(quantity: str) -> Decimal:
    value = parse_quantity(quantity)
    if value is None:
        raise ValueError(f"not a storage size: {quantity!r}")
    return value


def expansion(pvc: Obj, pv: Obj) -> str | None:
    """The new size when a bound claim asks for more than its volume has, else None.

    A directory has no size to grow, so expansion is only bookkeeping: the PV's capacity
    and the claim's status take the new size.
    """
    want = requested_storage(pvc)
    have = (_spec(pv).get("capacity") or {}).get("storage")
    if not want or not have or not is_ours(pv):
        return None
    if _spec(pv).get("claimRef", {}).get("uid") != _meta(pvc).get("uid"):
        return None
    if _size(want) > _size(have):
        return want
    status_cap = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    if status_cap and _size(status_cap) < _size(have):
        # The PV grew but the claim's status was not updated yet (a crash in between).
        return have
    return None


def resize_status_patch(pvc: Obj, size: str) -> Obj:
    """A merge patch of the claim status once a resize is done: the new capacity, and no
    resize conditions or per-resource resize states left."""
    status = pvc.get("status") or {}
    conditions = [
        c
        for c in status.get("conditions") or []
        if c.get("type") not in ("Resizing", "FileSystemResizePending", "ControllerResizeError")
    ]
    patch: Obj = {
        "capacity": {"storage": size},
        "conditions": conditions or None,
        "allocatedResourceStatuses": None,
    }
    if status.get("allocatedResources"):
        patch["allocatedResources"] = {"storage": size}
    return {"status": patch}
