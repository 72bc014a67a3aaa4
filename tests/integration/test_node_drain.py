"""A node of the mothership drained under a three-replica control plane: the tenant serves on.

The session's real-node mothership gets a second node for this module, a kubelet with its
own containerd and kube-proxy in a machine (mothership/testenv/extra_node.py), joined with
a node certificate from the mothership's CA. A three-replica Cluster on PostgreSQL spreads
its pods over both nodes (the rendered anti-affinity); `kubectl drain` of the second node
evicts its replicas one at a time as the PodDisruptionBudget allows, they come back on the
first node, and a client asking the tenant's API every 100 ms throughout sees (almost) no
failure. Removing the node leaves nothing of it behind.

    python -m pytest tests/integration/test_node_drain.py
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node, Pod, Secret
from lightkube.resources.policy_v1 import PodDisruptionBudget

from mothership.render import names
from mothership.testenv import extra_node, kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.pkiset import NODE_NAME
from tests.integration.test_kubernetes_distribution import (
    AVAILABLE_WITHIN,
    RESTRICTED,
    _cluster,
    _diagnose,
    _tenant_client,
    _tenant_kubeconfig,
    _wait_condition,
)
from tests.operator_proc import Operator
from tests.poller import Poller

SECOND = "mothership-node-2"


@pytest.fixture(scope="module")
def second_node(mothership_real: LocalMothership) -> Iterator[extra_node.ExtraNode]:
    node = extra_node.start(mothership_real.cfg, SECOND, timeout=240)
    try:
        yield node
    finally:
        extra_node.stop(mothership_real.cfg, node)
        left = extra_node.wait_gone(node)
        assert not left, f"the second node left behind: {left}"


@pytest.fixture
def ns(kc: Client) -> Iterator[str]:
    name = f"drain-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name, labels=RESTRICTED)))
    yield name
    kc.delete(Namespace, name)


def _kubectl(ms: LocalMothership, *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [str(ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(ms.cfg.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def _placement(kc: Client, ns: str) -> dict[str, str]:
    """Pod name -> node, for the control plane's pods."""
    return {
        p.metadata.name: p.spec.nodeName or ""
        for p in kc.list(Pod, namespace=ns, labels=names.selector("drain"))
        if p.metadata.deletionTimestamp is None
    }


def _ready_replicas(kc: Client, ns: str) -> int:
    return kc.get(StatefulSet, "kmc-drain", namespace=ns).status.readyReplicas or 0


def test_draining_a_node_keeps_a_three_replica_control_plane_serving(
    mothership_real: LocalMothership,
    second_node: extra_node.ExtraNode,
    kc: Client,
    operator: Operator,
    ns: str,
    tmp_path: Path,
    postgres_server: Any,
) -> None:
    ms = mothership_real
    node = kc.get(Node, SECOND)
    assert kube.node_ready(node)
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == second_node.cfg.node_ip != ms.cfg.node_ip

    database = postgres_server.create_database(f"drain_{ns.replace('-', '_')}", ms.cfg.host_ip)
    kc.create(
        Secret(
            metadata=ObjectMeta(name="drain-db", namespace=ns),
            stringData={"K0SMOTRON_KINE_DATASOURCE_URL": database.pod_url},
        )
    )
    kc.create(
        _cluster(
            "drain",
            ns,
            replicas=3,
            storage={"type": "kine", "kine": {"dataSourceSecretName": "drain-db"}},
        )
    )
    _wait_condition(ms, kc, operator, "drain", ns, "Available", AVAILABLE_WITHIN)
    try:
        kube.wait_until("three ready replicas", lambda: _ready_replicas(kc, ns) == 3, 240)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(ms, ns, operator)}") from exc
    before = _placement(kc, ns)
    # The rendered anti-affinity prefers different nodes: both get a replica.
    assert set(before.values()) == {NODE_NAME, SECOND}, before
    on_second = sorted(p for p, n in before.items() if n == SECOND)

    kubeconfig = _tenant_kubeconfig(kc, "drain", ns, tmp_path / "drain.kubeconfig")
    tenant = _tenant_client(kubeconfig)
    tenant.create(
        ConfigMap(metadata=ObjectMeta(name="before-drain", namespace="default"), data={"a": "1"})
    )
    kube.wait_until(
        "the PodDisruptionBudget allowing one disruption",
        lambda: (
            kc.get(PodDisruptionBudget, "kmc-drain", namespace=ns).status.disruptionsAllowed == 1
        ),
        60,
    )
    with Poller(kubeconfig) as poller:
        started = time.monotonic()
        # What an operator of the mothership runs before a node's maintenance: cordon, then
        # evictions as the budget allows (kubectl retries those it refuses).
        out = _kubectl(
            ms, "drain", SECOND, "--ignore-daemonsets", "--delete-emptydir-data",
            "--timeout=300s", timeout=330,
        )  # fmt: skip
        drained = time.monotonic() - started
        try:
            kube.wait_until(
                "three ready replicas, all on the first node",
                lambda: (
                    _ready_replicas(kc, ns) == 3
                    and set(_placement(kc, ns).values()) == {NODE_NAME}
                    and len(_placement(kc, ns)) == 3
                ),
                300,
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{_diagnose(ms, ns, operator)}") from exc
        recovered = time.monotonic() - started
    for pod in on_second:
        assert f"pod/{pod} evicted" in out, out
    print(
        f"\ndrained {SECOND} ({len(on_second)} of 3 replicas on it) in {drained:.1f} s, three "
        f"ready on {NODE_NAME} {recovered:.1f} s after the drain began: "
        f"{len(poller.failures)} of {poller.requests} requests failed, "
        f"{len(poller.retried)} retried after Retry-After"
    )
    assert poller.requests > 20
    assert len(poller.failures) <= 0.02 * poller.requests, poller.errors
    assert tenant.get(ConfigMap, "before-drain", namespace="default").data == {"a": "1"}
    assert kc.get(Node, SECOND).spec.unschedulable
    _kubectl(ms, "uncordon", SECOND)
    assert not kc.get(Node, SECOND).spec.unschedulable
