"""Status and conditions computed from observed children (pure)."""

from __future__ import annotations

from mothership.controllers.children import Child
from mothership.controllers.cluster_status import Observed, deleting_status, status
from mothership.controllers.conditions import Condition, merge


def _sts(replicas: int, ready: int, updated: int, same_revision: bool = True) -> Child:
    return Child(
        "StatefulSet",
        "kmc-demo",
        "h",
        {},
        {
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "currentRevision": "r1",
            "updateRevision": "r1" if same_revision else "r2",
        },
    )


def _obs(**kw: object) -> Observed:
    base = dict(
        statefulset=_sts(1, 1, 1),
        objects_missing=[],
        certificates_ready=True,
        kubeconfig_ready=True,
        external_address="10.0.0.5",
        functional=True,
    )
    base.update(kw)
    return Observed(**base)  # type: ignore[arg-type]


def _cond(st: dict, kind: str) -> dict:
    return next(c for c in st["conditions"] if c["type"] == kind)


def test_serving_cluster_is_available_and_ready() -> None:
    st = status(None, "demo", 1, 3, _obs())
    assert _cond(st, "Available")["status"] == "True"
    assert _cond(st, "ControlPlaneFunctional")["reason"] == "APIServing"
    assert st["deprecated"]["v1beta1"]["ready"] is True
    assert st["externalAddress"] == "10.0.0.5"
    assert st["selector"] == "app=k0smotron,cluster=demo,component=control-plane"
    assert all(c["observedGeneration"] == 3 for c in st["conditions"])


def test_unreachable_api_says_why() -> None:
    st = status(None, "demo", 1, 1, _obs(functional=False, functional_error="connection refused"))
    available = _cond(st, "Available")
    assert available["status"] == "False"
    assert available["reason"] == "WaitingForAPI"
    assert "connection refused" in _cond(st, "ControlPlaneFunctional")["message"]


def test_no_ready_replica_leaves_functional_unknown() -> None:
    st = status(None, "demo", 3, 1, _obs(statefulset=_sts(1, 0, 1), functional=None))
    assert _cond(st, "ControlPlaneFunctional")["status"] == "Unknown"
    assert _cond(st, "Available")["reason"] == "WaitingForReplicas"
    assert _cond(st, "ControlPlaneScaling")["status"] == "True"
    assert _cond(st, "ControlPlaneScaling")["message"] == "0 of 3 replicas ready"


def test_rollout_in_progress_is_not_up_to_date() -> None:
    st = status(None, "demo", 2, 1, _obs(statefulset=_sts(2, 2, 1, same_revision=False)))
    up = _cond(st, "ControlPlaneUpToDate")
    assert up["status"] == "False"
    assert up["message"] == "1 of 2 replicas updated"


def test_no_address_yet() -> None:
    st = status(None, "demo", 1, 1, _obs(external_address=None, kubeconfig_ready=False))
    assert _cond(st, "ControlPlaneExposed")["reason"] == "WaitingForAddress"
    assert "externalAddress" not in st


def test_resync_with_nothing_new_gives_an_identical_status() -> None:
    first = status(None, "demo", 1, 1, _obs())
    again = status(first, "demo", 1, 1, _obs())
    assert again == first


def test_transition_time_moves_only_when_status_flips() -> None:
    old = merge(None, [Condition("Available", False, "A")], 1, now="2026-01-01T00:00:00Z")
    same = merge(old, [Condition("Available", False, "B", "x")], 2, now="2026-02-01T00:00:00Z")
    flipped = merge(old, [Condition("Available", True, "C")], 2, now="2026-03-01T00:00:00Z")
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["reason"] == "B"
    assert flipped[0]["lastTransitionTime"] == "2026-03-01T00:00:00Z"


def test_status_holds_only_fields_the_crd_keeps() -> None:
    """The API server prunes unknown status fields; a pruned field would differ from the
    computed status on every resync and cause a write each time."""
    from mothership.api.k0smotron.v1beta2 import ClusterStatus

    for obs in (_obs(), _obs(external_address=None, functional=None, statefulset=None)):
        st = status(None, "demo", 1, 3, obs)
        assert ClusterStatus.model_validate(st).to_api() == st


def test_deleting_is_added_once_and_keeps_the_other_conditions() -> None:
    before = status(None, "demo", 1, 3, _obs())
    after = deleting_status(before, "removing the control plane", 3, now="2026-01-01T00:00:00Z")
    assert after is not None
    deleting = _cond(after, "Deleting")
    assert (deleting["status"], deleting["reason"]) == ("True", "Deleting")
    assert deleting["message"] == "removing the control plane"
    assert deleting["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert after["conditions"][:-1] == before["conditions"]
    assert {k: v for k, v in after.items() if k != "conditions"} == {
        k: v for k, v in before.items() if k != "conditions"
    }
    # the finalizer runs again on its own write's event: nothing more to write
    assert deleting_status(after, "removing the control plane", 3) is None


def test_deleting_on_a_cluster_without_status() -> None:
    after = deleting_status(None, "removing", None, now="2026-01-01T00:00:00Z")
    assert after == {
        "conditions": [
            {
                "type": "Deleting",
                "status": "True",
                "reason": "Deleting",
                "message": "removing",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    }
