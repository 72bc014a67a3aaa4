"""Pure pieces of the K0smotronControlPlane reconciler: the hosted Cluster it wants, the
endpoint it reports to Cluster API, and its status in the v1beta2 control-plane contract.

No I/O, so every field Cluster API reads is unit-tested.
"""

from __future__ import annotations

import copy
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


# Cluster API's network fields (path, as its messages name it) and where the hosted
# Cluster reads the same setting (spec.k0sConfig.spec.network.<key>).
_NETWORK_FIELDS = (
    (("pods", "cidrBlocks"), "pods.cidrBlocks[0]", "podCIDR"),
    (("services", "cidrBlocks"), "services.cidrBlocks[0]", "serviceCIDR"),
    (("serviceDomain",), "serviceDomain", "clusterDomain"),
)


class NetworkConflict(ValueError):
    """The control plane's k0s config and the Cluster API Cluster name different ranges."""


def _at(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def with_cluster_network(spec: Obj, cluster_network: Obj | None) -> Obj:
    """The control plane's spec with the Cluster API Cluster's ``spec.clusterNetwork`` (pod
    and Service ranges, DNS domain) in ``k0sConfig.spec.network``, where both distributions
    read them, so the tenant uses the ranges Cluster API users declare on the Cluster.

    A value the control plane's own k0s config sets is kept when equal; a different one is
    refused (NetworkConflict, naming both fields): which one is meant is the user's call.
    Only the first CIDR block is used (one range per family; dual-stack is not served).
    The input is never changed: the result is a new dict.
    """
    wanted: dict[str, tuple[str, str]] = {}
    for path, capi_field, key in _NETWORK_FIELDS:
        value = _at(cluster_network or {}, path)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value.strip():
            wanted[key] = (value.strip(), capi_field)
    if not wanted:
        return spec
    out = copy.deepcopy(spec)
    config = out.setdefault("k0sConfig", {})
    inner = config.setdefault("spec", {}) if isinstance(config, dict) else None
    network = inner.setdefault("network", {}) if isinstance(inner, dict) else None
    if not isinstance(network, dict):
        return spec  # not a mapping: the webhook refuses the spec with its own message
    for key, (value, capi_field) in wanted.items():
        own = network.get(key)
        if own not in (None, "") and str(own).strip() != value:
            raise NetworkConflict(
                f"spec.k0sConfig.spec.network.{key} {own!r} differs from the Cluster API "
                f"Cluster's spec.clusterNetwork.{capi_field} {value!r}; set it in one place "
                "(or the same value in both)"
            )
        network[key] = value
    return out


def hosted_cluster(cp: Obj, cluster_name: str, cluster_network: Obj | None = None) -> Obj:
    """The k0smotron.io Cluster that runs the control plane, named after the Cluster API
    Cluster (as k0smotron names it, so its Secrets get Cluster API's names: `<cluster>-ca`,
    `<cluster>-kubeconfig`), owned by the control plane and labelled with the cluster name;
    its spec is the control plane's with the Cluster's network (with_cluster_network)."""
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
        "spec": with_cluster_network(cp.get("spec") or {}, cluster_network),
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
