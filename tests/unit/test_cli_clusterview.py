"""What a waiting command shows, and how a Cluster reads in a list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mothership.cli import clusterview
from mothership.cli.output import age


def _cluster(*conditions: tuple[str, str, str, str], **status: Any) -> dict[str, Any]:
    conds = [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions]
    return {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "demo", "namespace": "default", "generation": 1},
        "spec": {"replicas": 3, "service": {"apiPort": 30443}},
        "status": {"conditions": conds, "observedGeneration": 1, **status},
    }


UP = [
    ("CertificatesAvailable", "True", "CertificatesReady", ""),
    ("ControlPlaneExposed", "True", "AddressKnown", ""),
    ("ControlPlaneScaling", "False", "ReplicasReady", ""),
    ("KubeconfigSecretAvailable", "True", "KubeconfigReady", ""),
    ("ControlPlaneFunctional", "True", "APIServing", ""),
]


def test_no_status_means_no_operator_yet() -> None:
    obj = _cluster()
    assert clusterview.phase(obj) == (False, "waiting for the operator to pick it up")


def test_phase_is_the_first_step_not_done() -> None:
    scaling = ("ControlPlaneScaling", "True", "Scaling", "1 of 3 replicas ready")
    obj = _cluster(UP[0], UP[1], scaling, UP[3])
    assert clusterview.phase(obj) == (False, "starting replicas: Scaling - 1 of 3 replicas ready")


def test_available_is_done() -> None:
    obj = _cluster(*UP, ("Available", "True", "ControlPlaneAvailable", ""))
    assert clusterview.phase(obj) == (True, "Available")


def test_all_steps_done_but_not_available_says_so() -> None:
    obj = _cluster(*UP, ("Available", "False", "WaitingForAPI", "not yet"))
    assert clusterview.phase(obj) == (False, "becoming available: WaitingForAPI - not yet")


def test_stale_status_waits_for_the_new_generation() -> None:
    obj = _cluster(*UP)
    obj["metadata"]["generation"] = 2
    assert "latest spec" in clusterview.phase(obj)[1]


def test_list_row_values() -> None:
    obj = _cluster(
        ("Available", "True", "ControlPlaneAvailable", ""),
        readyReplicas=2,
        externalAddress="10.0.0.5",
        version="v1.35.4",
    )
    obj["spec"]["distribution"] = "kubernetes"
    assert clusterview.distribution(obj) == "kubernetes"
    assert clusterview.replicas(obj) == "2/3"
    assert clusterview.endpoint(obj) == "https://10.0.0.5:30443"
    assert clusterview.version(obj) == "v1.35.4"
    assert clusterview.available_text(obj) == "True"


def test_defaults_when_fields_are_missing() -> None:
    obj = {"metadata": {"name": "x"}, "spec": {}}
    assert clusterview.distribution(obj) == "k0s"
    assert clusterview.endpoint(obj) == "-"
    assert clusterview.available_text(obj) == "Unknown"
    assert clusterview.replicas(obj) == "0/1"


def test_ingress_endpoint_and_ipv6() -> None:
    obj = {"spec": {"ingress": {"apiHost": "api.example.com", "port": 8443}}}
    assert clusterview.endpoint(obj) == "https://api.example.com:8443"
    assert clusterview.endpoint({"status": {"externalAddress": "fd00::1"}}) == (
        "https://[fd00::1]:30443"
    )


def test_summary_never_shows_kine_credentials() -> None:
    obj = {
        "metadata": {"name": "pg"},
        "spec": {"storage": {"type": "kine", "kine": {"dataSourceURL": "postgres://u:pw@db/x"}}},
    }
    text = repr(clusterview.summary(obj))
    assert "pw" not in text
    assert "kine (postgres)" in text


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5, "5s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (3 * 86400, "3d")],
)
def test_age_like_kubectl(seconds: int, expected: str) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    then = datetime.fromtimestamp(now.timestamp() - seconds, UTC)
    assert age(then.strftime("%Y-%m-%dT%H:%M:%SZ"), now) == expected
    assert age(None) == "-"


def test_pod_trouble_names_the_pod_the_reason_and_the_image() -> None:
    pulling = {
        "metadata": {"name": "kmc-demo-etcd-0"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "dns-check",
                    "image": "quay.io/k0sproject/etcd:v3.7.1",
                    "state": {"waiting": {"reason": "ImagePullBackOff"}},
                }
            ]
        },
    }
    crashing = {
        "metadata": {"name": "kmc-demo-0"},
        "status": {
            "containerStatuses": [
                {"name": "kube-apiserver", "image": "x", "state": {"running": {}}},
                {
                    "name": "kube-scheduler",
                    "image": "y",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ]
        },
    }
    pending = {
        "metadata": {"name": "kmc-demo-1"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "reason": "Unschedulable", "message": "0/1 nodes"}
            ]
        },
    }
    starting = {
        "metadata": {"name": "kmc-demo-2"},
        "status": {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]},
    }
    assert clusterview.pod_trouble([pulling, crashing, pending, starting]) == (
        "kmc-demo-etcd-0: ImagePullBackOff (quay.io/k0sproject/etcd:v3.7.1); "
        "kmc-demo-0: CrashLoopBackOff (kube-scheduler); "
        "kmc-demo-1: Unschedulable (0/1 nodes)"
    )
    assert clusterview.pod_trouble([starting]) == ""


def test_summary_names_the_datastore_and_the_hosting_cluster() -> None:
    obj = {
        "metadata": {"name": "far"},
        "spec": {
            "storage": {"type": "kine", "kine": {"dataStoreRef": {"name": "shared-pg"}}},
            "remoteHostCluster": {"kubeconfigRef": {"name": "hosting", "namespace": "team-a"}},
        },
    }
    rows = dict(clusterview.summary(obj))
    assert rows["Storage"] == "kine (its own database on DataStore shared-pg)"
    assert rows["Hosted in"] == "the cluster in Secret team-a/hosting"
    assert dict(clusterview.summary({"metadata": {"name": "x"}}))["Hosted in"] == "this mothership"
    on_etcd = {"storage": {"type": "etcd", "etcd": {"dataStoreRef": {"name": "shared-etcd"}}}}
    rows = dict(clusterview.summary({"metadata": {"name": "e"}, "spec": on_etcd}))
    assert rows["Storage"] == "etcd (its own key prefix on DataStore shared-etcd)"
    assert dict(clusterview.summary({"metadata": {"name": "x"}}))["Storage"] == "etcd"
