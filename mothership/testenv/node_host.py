"""Where a local mothership's real node runs: the host's own network, or a machine.

A real node owns its network namespace's iptables (kube-proxy's chains are global to it),
its pod bridge and its pod range, so one fits in the host's network. A second real-node
mothership (the tests while the user's `dev up` runs, or two of the user's) gets its node
in a *reachable* machine of its own (testenv/machines.py), as a real platform would give
each mothership its own host: containerd, kubelet, kube-proxy and every other component
of that mothership run in the machine's network namespace (testenv/netns.py; mounts and
processes stay the host's). The node's address, where the API server, NodePorts and the
registry and download mirrors listen, is the machine's address on the reachable LAN; its
pods get `10.200.<machine index>.0/24`, routed from the host through the machine so the
host reaches them as it reaches the host node's pods. Edge machines reach such a node at
its address like any other, and never its pods (machines.py drops POD_RANGES).
"""

from __future__ import annotations

import contextlib
import subprocess

from mothership.testenv import machines
from mothership.testenv.config import REAL_BRIDGE_CIDR, REAL_HOST_IP, MothershipConfig

NODE_MACHINE = "mothership-node"


def use_host(cfg: MothershipConfig) -> None:
    """The node in the host's own network, at the fixed addresses."""
    cfg.node_machine = cfg.node_netns = ""
    cfg.node_ip = cfg.host_ip = REAL_HOST_IP
    cfg.pod_cidr = REAL_BRIDGE_CIDR


def use_machine(cfg: MothershipConfig, timeout: float = 30.0) -> machines.Machine:
    """The node in this mothership's reachable machine, created (again) if not running."""
    machine = _running_machine(cfg)
    if machine is None:
        machine = machines.create(cfg.state_dir, NODE_MACHINE, "reachable", timeout=timeout)
    cfg.node_machine = machine.name
    cfg.node_netns = machine.netns
    cfg.node_ip = machine.address
    cfg.host_ip = machine.lan.gateway
    cfg.pod_cidr = f"10.200.{machine.index}.0/24"
    _route(cfg, machine)
    return machine


def release(cfg: MothershipConfig) -> None:
    """Remove the node's machine and the host's route to its pods (its network namespace,
    with every rule and interface the node made in it, goes with the machine)."""
    if not cfg.node_machine:
        return
    subprocess.run(["ip", "route", "del", cfg.pod_cidr], capture_output=True, check=False)
    with contextlib.suppress(machines.MachineError):
        machines.delete(cfg.state_dir, cfg.node_machine)


def _running_machine(cfg: MothershipConfig) -> machines.Machine | None:
    try:
        machine = machines.find(cfg.state_dir, NODE_MACHINE)
    except machines.MachineError:
        return None
    if machine.running():
        return machine
    machines.delete(cfg.state_dir, NODE_MACHINE)
    return None


def _route(cfg: MothershipConfig, machine: machines.Machine) -> None:
    subprocess.run(
        ["ip", "route", "replace", cfg.pod_cidr, "via", machine.address, "dev", machine.lan.bridge],
        capture_output=True,
        text=True,
        check=True,
    )
