"""Two real-node motherships side by side on one host: the second one's node in a machine.

The session's real-node mothership holds the host's network (tests/conftest.py), or runs in
a machine itself when the user's local mothership holds it. A second one, started by the
same code as `mothership dev up --name ...`, finds the host's real node taken and runs its
node, and with it all its components, in a reachable machine of its own
(mothership/testenv/node_host.py), with a Service range of its own that the host routes to
it. The test uses it as a user would: a NodePort Cluster made
with the CLI, an edge machine of the second mothership joining with the printed one-line
command, a pod on the worker reached through Konnectivity. The first mothership keeps
serving throughout, and stopping the second leaves nothing behind: no process, machine,
route or cgroup.

    python -m pytest tests/integration/test_second_real_node.py
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import os
import subprocess

import pytest
from lightkube.resources.core_v1 import Namespace, Node

from mothership.testenv import clusterdns, kube, machines, netns, node_host, realnode
from mothership.testenv.config import MACHINE_SERVICE_RANGES, REACHABLE_LAN_CIDR
from mothership.testenv.local import LocalMothership
from mothership.testenv.pkiset import NODE_NAME
from tests.leftovers import drop_node_images, processes_mentioning
from tests.nodes import node_ready

BUSYBOX = "docker.io/library/busybox:1.35.0"


def _cli(ms: LocalMothership, *args: str, timeout: float = 360) -> str:
    done = subprocess.run(
        ["mothership", *args],
        env={**os.environ, "KUBECONFIG": str(ms.cfg.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"mothership {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def _internal_ip(ms: LocalMothership) -> str:
    node = kube.client(ms.cfg.kubeconfig).get(Node, NODE_NAME)
    addresses = (node.status.addresses if node.status else None) or []
    return next(a.address for a in addresses if a.type == "InternalIP")


def _first_still_serves(first: LocalMothership) -> None:
    unhealthy = [s for s in first.status() if not s.healthy]
    assert not unhealthy, f"the first mothership suffered: {unhealthy}"
    assert clusterdns.answers(first.cfg), "the first mothership's cluster DNS stopped answering"


def test_a_second_real_node_mothership_runs_in_a_machine_beside_the_first(
    mothership_real: LocalMothership, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = mothership_real
    # A short state dir: containerd's socket path must stay under 104 bytes.
    tmp_path = tmp_path_factory.mktemp("second")
    second = LocalMothership.configure(
        "test-second", state_dir=tmp_path / "ms", nodes="real", operator=True
    )
    said: list[str] = []
    second.up(report=said.append, timeout=240)
    cfg = second.cfg
    node_machine = machines.find(cfg.state_dir, node_host.NODE_MACHINE)
    kubeconfig = tmp_path / "edge.kubeconfig"
    try:
        assert cfg.node_machine == node_host.NODE_MACHINE
        assert any(f"runs in machine {node_host.NODE_MACHINE!r}" in line for line in said), said
        assert ipaddress.ip_address(cfg.node_ip) in ipaddress.ip_network(REACHABLE_LAN_CIDR)
        assert cfg.node_ip == node_machine.address and cfg.pod_cidr != first.cfg.pod_cidr
        assert _internal_ip(second) == cfg.node_ip and _internal_ip(first) == first.cfg.node_ip
        # Started fresh in a machine: Services of its own range, which the host reaches too.
        own = ipaddress.ip_network(cfg.service_cidr)
        assert own.subnet_of(ipaddress.ip_network(MACHINE_SERVICE_RANGES))
        assert own != ipaddress.ip_network(first.cfg.service_cidr)
        assert netns.call(cfg.node_netns, lambda: clusterdns.answers(cfg))
        assert clusterdns.answers(cfg), f"the host does not reach {cfg.dns_ip} of the second"
        _first_still_serves(first)

        # As a user: a NodePort Cluster and an edge machine joining it with the printed line.
        _cli(
            second, "cluster", "create", "edge", "--distribution", "kubernetes",
            "--service-type", "NodePort", "--api-port", "31443",
            "--konnectivity-port", "31132", "--wait",
        )  # fmt: skip
        # A ClusterIP Cluster (the default) answers the host through the routed range.
        _cli(second, "cluster", "create", "inside", "--distribution", "kubernetes", "--wait")
        inside = tmp_path / "inside.kubeconfig"
        inside.write_text(_cli(second, "cluster", "kubeconfig", "inside"))
        server = kube.client(inside).list(Namespace)
        assert "kube-system" in {n.metadata.name for n in server if n.metadata}
        edge = machines.create(cfg.state_dir, "edge-1", "edge")
        join = _cli(
            second, "token", "create", "edge", "--expiry", "1h", "--join-command",
            *machines.SHARED_DISK_JOIN_ARGS,
        ).strip()  # fmt: skip
        assert "\n" not in join and f"http://{cfg.node_ip}:" in _decoded(join), join[:200]
        machines.run(edge, ["sh", "-c", join], timeout=300, check=True)
        kubeconfig.write_text(_cli(second, "cluster", "kubeconfig", "edge"))
        tenant = kube.client(kubeconfig)
        kube.wait_until("edge-1 Ready in the tenant", lambda: node_ready(tenant, "edge-1"), 180)

        # The tenant's API server reaches the worker's pods only through Konnectivity.
        kubectl = [str(cfg.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig)]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*kubectl, *args], capture_output=True, text=True, timeout=120, check=False
            )

        made = run("run", "hello", f"--image={BUSYBOX}", "--restart=Never", "--command", "--",
                   "sleep", "3600")  # fmt: skip
        assert made.returncode == 0, made.stderr
        ready = run("wait", "--for=condition=Ready", "pod/hello", "--timeout=100s")
        assert ready.returncode == 0, ready.stderr + run("describe", "pod", "hello").stdout
        said_hi = run("exec", "hello", "--", "echo", "hi from edge-1")
        assert said_hi.stdout.strip() == "hi from edge-1", said_hi.stderr
        _first_still_serves(first)
    finally:
        second.down()

    left = processes_mentioning(cfg.state_dir)
    assert not left, f"processes left behind by `down`: {left}"
    drop_node_images(cfg.state_dir)
    assert machines.leftovers(node_machine) == [], "the node's machine left traces"
    assert machines.list_machines(cfg.state_dir) == []
    route = subprocess.run(["ip", "route", "show", cfg.pod_cidr], capture_output=True, text=True)
    assert route.stdout.strip() == "", f"route to the second node's pods left: {route.stdout}"
    assert not any(d.exists() for d in realnode.cgroup_dirs(cfg)), "its pods' cgroup is left"
    _first_still_serves(first)


def _decoded(join: str) -> str:
    """The script inside the one-line command (`echo <base64 gzip> | base64 -d | ...`)."""
    return gzip.decompress(base64.b64decode(join.split()[1])).decode()
