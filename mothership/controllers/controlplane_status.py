"""Pure pieces of the K0smotronControlPlane reconciler: the hosted Cluster it wants, the
endpoint it reports to Cluster API, and its status in the v1beta2 control-plane contract.

No I/O, so every field Cluster API reads is unit-tested.
"""

from __future__ import annotations

from typing import Any

from mothership.api.controlplane.v1beta2 import CONDITION_AVAILABLE
from mothership.controllers.apply import owner_name
from mothership.controllers.conditions import Condition, merge
from mothership.render.names import CAPI_CLUSTER_NAME_LABEL

Obj = dict[str, Any]
PAUSED_ANNOTATION = "cluster.x-k8s.io/paused"
CONDITION_PAUSED = "Paused"
CONDITION_HOSTED = "HostedClusterReady"
"""Ours: whether the k0smotron.io Cluster behind the control plane was accepted and runs."""


def owner_cluster(cp: Obj) -> str | None:
    """Name of the Cluster API Cluster that owns the control plane (set by Cluster API)."""
    return owner_name(cp, "Cluster", "cluster.x-k8s.io")


def paused(cp: Obj, capi_cluster: Obj) -> bool:
    """Cluster API's pause: the Cluster's spec.paused, or the annotation on either object."""
    if (capi_cluster.get("spec") or {}).get("paused"):
        return True
    return any(
        PAUSED_ANNOTATION in (o["metadata"].get("annotations") or {}) for o in (cp, capi_cluster)
    )


def hosted_cluster(cp: Obj, cluster_name: str) -> Obj:
    """The k0smotron.io Cluster that runs the control plane, named after the Cluster API
    Cluster (as k0smotron names it, so its Secrets get Cluster API's names: `<cluster>-ca`,
    `<cluster>-kubeconfig`), owned by the control plane and labelled with the cluster name."""
    meta = cp["metadata"]
    return {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {
            "name": cluster_name,
            "namespace": meta["namespace"],
            "labels": {CAPI_CLUSTER_NAME_LABEL: cluster_name},
            "ownerReferences": [
                {
                    "apiVersion": cp["apiVersion"],
                    "kind": cp["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": cp.get("spec") or {},
    }


def endpoint(cp: Obj, hosted: Obj | None) -> tuple[str, int] | None:
    """(host, port) workers and Cluster API dial: the ingress host, else the address the
    hosted Cluster is exposed on and its API port; None until that is known."""
    spec = cp.get("spec") or {}
    ingress = spec.get("ingress") or {}
    if ingress.get("apiHost"):
        return str(ingress["apiHost"]), int(ingress.get("port") or 443)
    address = ((hosted or {}).get("status") or {}).get("externalAddress")
    if not address:
        return None
    return str(address), int((spec.get("service") or {}).get("apiPort") or 30443)


def _condition(conds: list[Obj], kind: str) -> Obj | None:
    return next((c for c in conds if c.get("type") == kind), None)


def status(
    cp: Obj, hosted: Obj | None, *, paused_now: bool, problem: str = "", now: str | None = None
) -> Obj:
    """The whole v1beta2 status; equal input gives an equal dict (no write on resync).

    `problem` is why the hosted Cluster could not be written (the webhook's refusal);
    `controlPlaneInitialized` never goes back to false once set.
    """
    previous = cp.get("status") or {}
    meta = cp["metadata"]
    hosted_status = (hosted or {}).get("status") or {}
    hosted_conds = hosted_status.get("conditions") or []
    available = _condition(hosted_conds, "Available")
    is_available = bool(available and available.get("status") == "True")
    if problem:
        wanted_available = Condition(CONDITION_AVAILABLE, False, "InvalidSpec", problem)
        hosted_cond = Condition(CONDITION_HOSTED, False, "Refused", problem)
    elif hosted is None:
        wanted_available = Condition(
            CONDITION_AVAILABLE, False, "WaitingForHostedCluster", "creating the hosted Cluster"
        )
        hosted_cond = Condition(CONDITION_HOSTED, False, "Creating", "creating the hosted Cluster")
    else:
        wanted_available = Condition(
            CONDITION_AVAILABLE,
            is_available,
            str((available or {}).get("reason") or "WaitingForHostedCluster"),
            str((available or {}).get("message") or "the hosted Cluster reports no status yet"),
        )
        name = hosted["metadata"]["name"]
        hosted_cond = Condition(
            CONDITION_HOSTED,
            is_available,
            "Available" if is_available else "NotAvailable",
            f"k0smotron.io Cluster {name}" + ("" if is_available else " is not available yet"),
        )
    wanted = [
        wanted_available,
        hosted_cond,
        Condition(
            CONDITION_PAUSED,
            paused_now,
            "Paused" if paused_now else "NotPaused",
            "reconciliation is paused" if paused_now else "",
        ),
    ]
    generation = meta.get("generation")
    out: Obj = {
        "externalManagedControlPlane": True,
        "conditions": merge(previous.get("conditions"), wanted, generation, now),
    }
    initialized = is_available or bool(
        (previous.get("initialization") or {}).get("controlPlaneInitialized")
    )
    out["initialization"] = {"controlPlaneInitialized": initialized}
    if hosted is not None:
        ready = int(hosted_status.get("readyReplicas") or 0)
        out["replicas"] = int(hosted_status.get("replicas") or 0)
        out["readyReplicas"] = ready
        out["availableReplicas"] = ready
        out["upToDateReplicas"] = int(hosted_status.get("updatedReplicas") or 0)
        if hosted_status.get("selector"):
            out["selector"] = hosted_status["selector"]
        version = hosted_status.get("version") or (hosted.get("spec") or {}).get("version")
        if ready and version:
            out["version"] = version
        elif previous.get("version"):
            out["version"] = previous["version"]
    if generation is not None:
        out["observedGeneration"] = generation
    return out
