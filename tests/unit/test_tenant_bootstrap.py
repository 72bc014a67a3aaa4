"""The TenantBootstrapped condition and when the operator looks at a tenant again (pure)."""

from __future__ import annotations

import time

from mothership.controllers.children import Child
from mothership.controllers.cluster_status import Observed, status
from mothership.controllers.conditions import Condition
from mothership.controllers.tenant_bootstrap import CONDITION, Bootstraps, waiting

STS = Child(
    "StatefulSet",
    "kmc-demo",
    "h",
    {},
    {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1},
)


def _status(bootstrap: Condition | None) -> dict:
    obs = Observed(
        statefulset=STS,
        objects_missing=[],
        certificates_ready=True,
        kubeconfig_ready=True,
        external_address="10.0.0.5",
        functional=True,
        tenant_bootstrap=bootstrap,
    )
    return status(None, "demo", 1, 1, obs)


def test_condition_only_for_the_kubernetes_distribution() -> None:
    assert CONDITION not in {c["type"] for c in _status(None)["conditions"]}
    done = Condition(CONDITION, True, "Bootstrapped", "in place")
    cond = next(c for c in _status(done)["conditions"] if c["type"] == CONDITION)
    assert (cond["status"], cond["reason"]) == ("True", "Bootstrapped")
    waiting_cond = next(c for c in _status(waiting())["conditions"] if c["type"] == CONDITION)
    assert (waiting_cond["status"], waiting_cond["reason"]) == ("False", "WaitingForAPI")


def test_outcomes_are_reused_until_due_and_failures_back_off() -> None:
    bootstraps = Bootstraps(healthy_every=60, first_retry=5, longest=20)
    key = ("ns", "demo")
    ok = Condition(CONDITION, True, "Bootstrapped")
    bootstraps.record(key, "d1", ok)
    assert bootstraps.cached(key, "d1") == ok and not bootstraps.due(key)
    # New objects to apply (the spec or the address changed): look now.
    assert bootstraps.cached(key, "d2") is None
    failed = Condition(CONDITION, False, "ApplyFailed")
    pauses = []
    for _ in range(4):
        bootstraps.record(key, "d2", failed)
        pauses.append(bootstraps.seen[key][3])
    assert pauses == [5, 10, 20, 20]
    bootstraps.seen[key] = ("d2", failed, time.monotonic() - 1, 20)
    assert bootstraps.due(key) and bootstraps.cached(key, "d2") is None
    bootstraps.forget(key)
    assert not bootstraps.due(key)
