"""How a Cluster reads to a person: its phase, its list row, its summary. Pure.

The phase is what a waiting command shows: the first thing, in the order a control plane
comes up, that is not done yet, in the words of the condition the operator wrote.
"""

from __future__ import annotations

from typing import Any

from mothership.api.k0smotron.v1beta2 import (
    CONDITION_AVAILABLE,
    CONDITION_CERTIFICATES_AVAILABLE,
    CONDITION_CONTROL_PLANE_EXPOSED,
    CONDITION_CONTROL_PLANE_FUNCTIONAL,
    CONDITION_CONTROL_PLANE_SCALING,
    CONDITION_DELETING,
    CONDITION_KUBECONFIG_SECRET_AVAILABLE,
    DEFAULT_API_PORT,
)

Obj = dict[str, Any]

# The order a control plane comes up in; ControlPlaneScaling is "in progress" when True.
BRING_UP = (
    (CONDITION_CERTIFICATES_AVAILABLE, "True", "certificates"),
    (CONDITION_CONTROL_PLANE_EXPOSED, "True", "exposing"),
    (CONDITION_CONTROL_PLANE_SCALING, "False", "starting replicas"),
    (CONDITION_KUBECONFIG_SECRET_AVAILABLE, "True", "kubeconfig"),
    (CONDITION_CONTROL_PLANE_FUNCTIONAL, "True", "waiting for the API"),
)
DEFAULT_DISTRIBUTION = "k0s"


def conditions(obj: Obj) -> list[Obj]:
    return list(((obj.get("status") or {}).get("conditions")) or [])


def condition(obj: Obj, kind: str) -> Obj | None:
    return next((c for c in conditions(obj) if c.get("type") == kind), None)


def is_available(obj: Obj) -> bool:
    cond = condition(obj, CONDITION_AVAILABLE)
    return bool(cond and cond.get("status") == "True")


def phase(obj: Obj) -> tuple[bool, str]:
    """(done, what is happening) for a Cluster being brought up."""
    if is_available(obj):
        return True, "Available"
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False, "being deleted"
    status = obj.get("status") or {}
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if not conditions(obj):
        return False, "waiting for the operator to pick it up"
    if generation is not None and observed is not None and observed < generation:
        return False, "waiting for the operator to reconcile the latest spec"
    for kind, good, label in BRING_UP:
        cond = condition(obj, kind)
        if cond is None or cond.get("status") != good:
            return False, _describe(label, cond)
    cond = condition(obj, CONDITION_AVAILABLE)
    return False, _describe("becoming available", cond)


# Container waiting reasons that do not fix themselves by waiting a little longer.
TROUBLE = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def pod_trouble(pods: list[Obj]) -> str:
    """Why control-plane pods are stuck, in a few words (empty when nothing is wrong).

    Conditions say "0 of 1 replicas ready"; the pods say why: an image that cannot be
    pulled, a container that keeps crashing, a pod that cannot be scheduled.
    """
    found = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        statuses = [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        for cs in statuses:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in TROUBLE:
                what = cs.get("image") if "Image" in waiting["reason"] else cs.get("name")
                found.append(f"{name}: {waiting['reason']} ({what})")
                break
        else:
            for cond in status.get("conditions") or []:
                if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    found.append(f"{name}: Unschedulable ({cond.get('message', '')[:120]})")
    return "; ".join(found)


def deletion_phase(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return "deletion requested"
    cond = condition(obj, CONDITION_DELETING)
    finalizers = meta.get("finalizers") or []
    detail = cond.get("message") if cond else ""
    waiting = f"waiting for finalizers {', '.join(finalizers)}" if finalizers else "removing"
    return f"{waiting}{': ' + detail if detail else ''}"


def _describe(label: str, cond: Obj | None) -> str:
    if cond is None:
        return label
    reason, message = cond.get("reason") or "", cond.get("message") or ""
    return f"{label}: {reason}{' - ' + message if message else ''}"


def distribution(obj: Obj) -> str:
    return str((obj.get("spec") or {}).get("distribution") or DEFAULT_DISTRIBUTION)


def version(obj: Obj) -> str:
    return str(
        (obj.get("status") or {}).get("version") or (obj.get("spec") or {}).get("version") or "-"
    )


def replicas(obj: Obj) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = spec.get("replicas", 1)
    return f"{status.get('readyReplicas') or 0}/{desired}"


def endpoint(obj: Obj) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ingress = spec.get("ingress")
    if isinstance(ingress, dict) and ingress.get("apiHost"):
        return f"https://{ingress['apiHost']}:{ingress.get('port', 443)}"
    address = status.get("externalAddress") or spec.get("externalAddress")
    if not address:
        return "-"
    port = (spec.get("service") or {}).get("apiPort", DEFAULT_API_PORT)
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def available_text(obj: Obj) -> str:
    cond = condition(obj, CONDITION_AVAILABLE)
    return str(cond.get("status")) if cond else "Unknown"


def summary(obj: Obj) -> list[tuple[str, str]]:
    """Key facts of the spec and status, as label/value pairs."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    storage = spec.get("storage") or {}
    kine = storage.get("kine") or {}
    store = str(storage.get("type") or "etcd")
    if store == "kine":
        if kine.get("dataSourceSecretName"):
            store += f" (URL from Secret {kine['dataSourceSecretName']})"
        elif kine.get("dataSourceURL"):
            store += f" ({_scheme(str(kine['dataSourceURL']))})"
        elif isinstance(kine.get("dataStoreRef"), dict):
            store += f" (its own database on DataStore {kine['dataStoreRef'].get('name', '?')})"
        else:
            store += " (SQLite on the data volume)"
    etcd_ref = (storage.get("etcd") or {}).get("dataStoreRef")
    if store == "etcd" and isinstance(etcd_ref, dict):
        store += f" (its own key prefix on DataStore {etcd_ref.get('name', '?')})"
    persistence = spec.get("persistence") or {}
    service = spec.get("service") or {}
    rows = [
        ("Name", str(meta.get("name", ""))),
        ("Namespace", str(meta.get("namespace", ""))),
        ("Distribution", distribution(obj)),
        ("Version", version(obj)),
        ("Replicas", f"{replicas(obj)} ready"),
        ("Storage", store),
        ("Persistence", str(persistence.get("type") or "emptyDir")),
        ("Hosted in", hosted_in(spec)),
        (
            "Service",
            f"{service.get('type', 'ClusterIP')} (api {service.get('apiPort', DEFAULT_API_PORT)}, "
            f"konnectivity {service.get('konnectivityPort', '-')})",
        ),
        ("Endpoint", endpoint(obj)),
        ("Available", available_text(obj)),
        ("Kubeconfig", f"Secret {meta.get('name', '')}-kubeconfig"),
        ("Created", str(meta.get("creationTimestamp", "-"))),
    ]
    return rows


def hosted_in(spec: Obj) -> str:
    """Where the control plane's pods run: this mothership, or the cluster a Secret names."""
    ref = (spec.get("remoteHostCluster") or {}).get("kubeconfigRef")
    if not isinstance(ref, dict) or not ref.get("name"):
        return "this mothership"
    return f"the cluster in Secret {ref.get('namespace', '')}/{ref['name']}"


def _scheme(url: str) -> str:
    """The kind of datastore a kine URL names, never its credentials."""
    return url.split("://", 1)[0] if "://" in url else url.split(":", 1)[0]
