"""Pure status of a Cluster, computed from what its children report.

No I/O: everything comes in as arguments, so every condition and reason is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mothership.api.k0smotron.v1beta2 import CONDITION_DELETING
from mothership.controllers.children import Child
from mothership.controllers.conditions import Condition, merge
from mothership.render import names


@dataclass(frozen=True)
class Observed:
    """Facts gathered by the controller for one reconcile."""

    statefulset: Child | None
    objects_missing: list[str]
    certificates_ready: bool
    kubeconfig_ready: bool
    external_address: str | None
    functional: bool | None  # None: not checked (no ready replica yet)
    functional_error: str = ""
    deleting: bool = False
    version: str = ""
    # The kubernetes distribution's TenantBootstrapped condition; None for k0s.
    tenant_bootstrap: Condition | None = None
    # AuthenticationLoaded, when the Cluster trusts an identity provider (kubernetes only).
    authentication: Condition | None = None


def conditions(desired_replicas: int, obs: Observed) -> list[Condition]:
    sts = obs.statefulset.status if obs.statefulset else {}
    ready = sts.get("readyReplicas") or 0
    updated = sts.get("updatedReplicas") or 0
    current = sts.get("replicas") or 0
    out = [
        Condition(
            "CertificatesAvailable",
            obs.certificates_ready,
            "CertificatesReady" if obs.certificates_ready else "CertificatesPending",
            "CA, front-proxy, service-account and etcd secrets exist"
            if obs.certificates_ready
            else "generating the cluster PKI",
        ),
        Condition(
            "KubeconfigSecretAvailable",
            obs.kubeconfig_ready,
            "KubeconfigReady" if obs.kubeconfig_ready else "KubeconfigPending",
            "admin kubeconfig is in the -kubeconfig secret"
            if obs.kubeconfig_ready
            else "waiting for the cluster CA",
        ),
        Condition(
            "ControlPlaneExposed",
            obs.external_address is not None,
            "AddressKnown" if obs.external_address else "WaitingForAddress",
            f"reachable at {obs.external_address}"
            if obs.external_address
            else "waiting for the Service to get an address (LoadBalancer status or node IP)",
        ),
    ]
    scaling = current != desired_replicas or ready != desired_replicas
    out.append(
        Condition(
            "ControlPlaneScaling",
            scaling,
            "Scaling" if scaling else "ReplicasReady",
            f"{ready} of {desired_replicas} replicas ready"
            if scaling
            else f"all {desired_replicas} replicas ready",
        )
    )
    up_to_date = obs.statefulset is not None and (
        updated == desired_replicas
        and sts.get("currentRevision") == sts.get("updateRevision")
        and not obs.objects_missing
    )
    out.append(
        Condition(
            "ControlPlaneUpToDate",
            up_to_date,
            "UpToDate" if up_to_date else "RollingOut",
            "every replica runs the current spec"
            if up_to_date
            else (
                f"applying {', '.join(obs.objects_missing)}"
                if obs.objects_missing
                else f"{updated} of {desired_replicas} replicas updated"
            ),
        )
    )
    if obs.functional is None:
        functional = Condition(
            "ControlPlaneFunctional",
            None,
            "NoReadyReplica",
            "no control-plane replica is ready yet",
        )
    elif obs.functional:
        functional = Condition(
            "ControlPlaneFunctional", True, "APIServing", "GET kube-system through the kubeconfig"
        )
    else:
        functional = Condition(
            "ControlPlaneFunctional",
            False,
            "APINotAnswering",
            f"the tenant API does not answer: {obs.functional_error}",
        )
    out.append(functional)
    available = bool(obs.functional) and ready >= 1 and obs.kubeconfig_ready
    out.append(
        Condition(
            "Available",
            available,
            "ControlPlaneAvailable" if available else _unavailable_reason(obs, ready),
            "the control plane serves its API"
            if available
            else "the control plane does not serve its API yet",
        )
    )
    if obs.tenant_bootstrap is not None:
        out.append(obs.tenant_bootstrap)
    if obs.authentication is not None:
        out.append(obs.authentication)
    if obs.deleting:
        out.append(deleting_condition("the cluster is being deleted"))
    return out


def deleting_condition(message: str) -> Condition:
    return Condition(CONDITION_DELETING, True, "Deleting", message)


def deleting_status(
    previous: dict[str, Any] | None, message: str, generation: int | None, now: str | None = None
) -> dict[str, Any] | None:
    """The status with Deleting=True added, the other conditions as they were; None if it is
    already there, so a finalizer that runs again writes nothing."""
    prior = list((previous or {}).get("conditions") or [])
    if any(c.get("type") == CONDITION_DELETING and c.get("status") == "True" for c in prior):
        return None
    entry = merge(prior, [deleting_condition(message)], generation, now)
    kept = [c for c in prior if c.get("type") != CONDITION_DELETING]
    return {**(previous or {}), "conditions": [*kept, *entry]}


def _unavailable_reason(obs: Observed, ready: int) -> str:
    if not obs.certificates_ready:
        return "WaitingForCertificates"
    if ready < 1:
        return "WaitingForReplicas"
    if not obs.kubeconfig_ready:
        return "WaitingForKubeconfig"
    return "WaitingForAPI"


def status(
    previous: dict[str, Any] | None,
    cluster: str,
    desired_replicas: int,
    generation: int | None,
    obs: Observed,
) -> dict[str, Any]:
    """The whole v1beta2 status; equal input gives an equal dict (no write on resync)."""
    sts = obs.statefulset.status if obs.statefulset else {}
    conds = merge((previous or {}).get("conditions"), conditions(desired_replicas, obs), generation)
    available = next(c for c in conds if c["type"] == "Available")["status"] == "True"
    selector = ",".join(f"{k}={v}" for k, v in sorted(names.selector(cluster).items()))
    out: dict[str, Any] = {
        "replicas": sts.get("replicas") or 0,
        "readyReplicas": sts.get("readyReplicas") or 0,
        "updatedReplicas": sts.get("updatedReplicas") or 0,
        "selector": selector,
        "conditions": conds,
        # What v1beta1 clients read (k0smotron keeps these for them too).
        "deprecated": {
            "v1beta1": {
                "ready": available,
                "reconciliationStatus": "Reconciliation successful"
                if not obs.objects_missing
                else "Reconciling",
            }
        },
    }
    if obs.external_address:
        out["externalAddress"] = obs.external_address
    if obs.version:
        out["version"] = obs.version
    if generation is not None:
        out["observedGeneration"] = generation
    return out
