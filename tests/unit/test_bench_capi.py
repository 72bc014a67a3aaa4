"""`mothership bench capi`: option checks and the figures it prints (pure parts)."""

from __future__ import annotations

import pytest
import yaml

from mothership.bench.capi import CapiResult, Options, Step, check_options
from mothership.errors import UserError
from mothership.testenv import capi_pool


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        (Options(machines=2, steps=(2, 3)), "--machines"),
        (Options(steps=()), "--steps"),
        (Options(steps=(1, -1)), "negative"),
    ],
)
def test_steps_the_pool_cannot_serve_are_refused(opts: Options, named: str) -> None:
    with pytest.raises(UserError, match=named):
        check_options(opts)


def test_p50_and_max_are_over_every_node_a_scale_up_brought() -> None:
    result = CapiResult(
        control_plane_initialized=40.0,
        steps=[
            Step(0, 2, settled=25.0, nodes_ready={"a": 20.0, "b": 24.0}),
            Step(2, 3, settled=16.0, nodes_ready={"c": 15.0}),
            Step(3, 1, settled=30.0),
        ],
    )
    assert result.p50 == 20.0 and result.max == 24.0
    lines = result.lines()
    assert lines[0] == "control plane initialized in 40.0s"
    assert "MachineDeployment 3 -> 1: settled in 30.0s" in lines
    assert lines[-1] == "replicas change -> Node Ready over 3 nodes: p50 20.0s, max 24.0s"
    assert result.as_dict()["p50"] == 20.0


def test_the_pool_manifests_name_every_machine_and_start_at_zero() -> None:
    docs = list(yaml.safe_load_all(capi_pool.machine_pool("ns", "c", [("m0", "10.0.0.2")], "KEY")))
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "Secret",
        "RemoteMachineTemplate",
        "K0sWorkerConfigTemplate",
        "MachineDeployment",
        "PooledRemoteMachine",
    ]
    assert docs[3]["spec"]["replicas"] == 0 and docs[3]["spec"]["clusterName"] == "c"
    assert docs[4]["spec"]["machine"]["address"] == "10.0.0.2"
    cluster = list(yaml.safe_load_all(capi_pool.hosted_cluster("ns", "c", infra=True)))
    assert [d["kind"] for d in cluster] == ["RemoteCluster", "Cluster", "K0smotronControlPlane"]
