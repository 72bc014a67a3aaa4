"""NetworkPolicies enforced for real on the local mothership (`dev up --network-policy`).

The enforcer (mothership/testenv/netpol.py) is turned on for this module on the session's
real-node mothership. A Cluster with managed etcd is created under enforcement, so every
connection its control plane and etcd member make is checked against the policies the
operator rendered for it, and it must still become Available. A pod of another tenant then
dials the etcd member's client port (refused) and the API server's port (open to anyone);
a pod of the same namespace without the control-plane labels is refused too, and one that
wears them gets in as soon as it runs. A plain user policy closes a pod's egress. Stopping
the enforcer opens everything again and leaves no chain behind.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.resources.networking_v1 import NetworkPolicy

from mothership.api.k0smotron.v1beta2 import DEFAULT_API_PORT
from mothership.render import names
from mothership.testenv import kube, netns, netpol
from mothership.testenv.local import LocalMothership
from mothership.testenv.realnode import CONTROL_PLANE_IMAGE
from tests.integration.test_kubernetes_distribution import (
    AVAILABLE_WITHIN,
    _cluster,
    _exists,
    _wait_condition,
)
from tests.operator_proc import Operator

API_PORT = DEFAULT_API_PORT  # where the tenant's API server listens in its pod
ETCD_CLIENT_PORT = 2379


def _namespace(kc: Client, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name)))
    return name


@pytest.fixture
def enforced(mothership_real: LocalMothership) -> Iterator[LocalMothership]:
    ms = mothership_real
    ms.start_network_policy()
    try:
        yield ms
    finally:
        ms.stop_network_policy()


@pytest.fixture
def namespaces(kc: Client) -> Iterator[tuple[str, str]]:
    made = (_namespace(kc, "np-tenant"), _namespace(kc, "np-other"))
    yield made
    for name in made:
        kc.delete(Namespace, name)
    for name in made:  # gone before the next module's operator starts
        kube.wait_until(f"{name} gone", lambda n=name: not _exists(kc, Namespace, n), 180)


def _probe_pod(
    kc: Client, ns: str, name: str, labels: dict[str, str], *, serves: bool = True
) -> None:
    """A pod to dial from. ``serves=False``: never Ready, so a Service whose selector its
    labels match does not send it clients."""
    container: dict[str, Any] = {
        "name": "probe",
        "image": CONTROL_PLANE_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["/bin/sh", "-c", "exec sleep 3600"],
    }
    if not serves:
        container["readinessProbe"] = {"exec": {"command": ["false"]}, "periodSeconds": 60}
    kc.create(
        Pod.from_dict(
            {
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [container],
                },
            }
        )
    )


def _running(kc: Client, ns: str, name: str) -> None:
    def ready() -> bool:
        status = kc.get(Pod, name, namespace=ns).status
        return bool(status and status.phase == "Running" and status.podIP)

    kube.wait_until(f"pod {ns}/{name} running", ready, 90)


def _ip(kc: Client, ns: str, name: str) -> str:
    status = kc.get(Pod, name, namespace=ns).status
    assert status is not None and status.podIP, f"{ns}/{name} has no IP"
    return str(status.podIP)


def _dials(ms: LocalMothership, ns: str, pod: str, ip: str, port: int) -> bool:
    """Whether a TCP connection from the pod to ip:port is accepted (busybox nc)."""
    done = subprocess.run(
        [str(ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(ms.cfg.kubeconfig),
         "-n", ns, "exec", pod, "--", "sh", "-c",
         f"nc -w 3 {ip} {port} </dev/null >/dev/null 2>&1; echo rc=$?"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "rc=" in done.stdout, f"kubectl exec failed: {done.stdout}{done.stderr}"
    return "rc=0" in done.stdout


def _chains(ms: LocalMothership) -> list[str]:
    return netns.call(ms.cfg.node_netns, netpol.our_chains)


def test_a_tenants_etcd_is_closed_to_other_tenants_and_open_to_its_control_plane(
    enforced: LocalMothership,
    kc: Client,
    operator: Operator,
    namespaces: tuple[str, str],
) -> None:
    ms = enforced
    tenant, other = namespaces
    assert netpol.COMPONENT in [s.name for s in ms.status() if s.healthy]
    _probe_pod(kc, other, "intruder", {"app": "probe"})
    kc.create(_cluster("iso", tenant, storage={"type": "etcd", "etcd": {"autoDeletePVCs": True}}))
    # Created under enforcement: the control plane reached its etcd member on new
    # connections all along, through the rendered policy.
    _wait_condition(ms, kc, operator, "iso", tenant, "Available", AVAILABLE_WITHIN)
    _running(kc, other, "intruder")
    etcd_ip = _ip(kc, tenant, "kmc-iso-etcd-0")
    api_ip = _ip(kc, tenant, "kmc-iso-0")

    assert not _dials(ms, other, "intruder", etcd_ip, ETCD_CLIENT_PORT), "etcd open to a stranger"
    assert _dials(ms, other, "intruder", api_ip, API_PORT), "the API port is public"

    # Same namespace: labels decide. A pod without the control plane's labels is refused;
    # one wearing them is let in once it runs (its new address joins the rule).
    _probe_pod(kc, tenant, "neighbour", {"app": "probe"})
    # Not Ready, or the tenant's Service would send it the operator's API calls.
    _probe_pod(kc, tenant, "lookalike", names.selector("iso", "control-plane"), serves=False)
    _running(kc, tenant, "neighbour")
    _running(kc, tenant, "lookalike")
    assert not _dials(ms, tenant, "neighbour", etcd_ip, ETCD_CLIENT_PORT)
    kube.wait_until(
        "the control plane's labels let a new pod into etcd",
        lambda: _dials(ms, tenant, "lookalike", etcd_ip, ETCD_CLIENT_PORT),
        30,
        interval=1,
    )

    # Any NetworkPolicy, not only the operator's: egress closed for the intruder.
    deny: dict[str, Any] = {
        "metadata": {"name": "no-egress", "namespace": other},
        "spec": {"podSelector": {"matchLabels": {"app": "probe"}}, "policyTypes": ["Egress"]},
    }
    kc.create(NetworkPolicy.from_dict(deny))
    kube.wait_until(
        "egress closed by a user's policy",
        lambda: not _dials(ms, other, "intruder", api_ip, API_PORT),
        30,
        interval=1,
    )
    kc.delete(NetworkPolicy, "no-egress", namespace=other)
    kube.wait_until(
        "egress open again",
        lambda: _dials(ms, other, "intruder", api_ip, API_PORT),
        30,
        interval=1,
    )

    # Stopped: the network is open again and no chain of the enforcer is left.
    assert _chains(ms)
    ms.stop_network_policy()
    assert _chains(ms) == []
    assert _dials(ms, other, "intruder", etcd_ip, ETCD_CLIENT_PORT), (
        "etcd stayed closed without the enforcer: the refusal above was not its doing"
    )
    assert netpol.COMPONENT not in ms.components()
