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
host reaches them as it reaches the host node's pods. A mothership whose very first start
is in a machine also gets a Service range of its own (a free /24 of MACHINE_SERVICE_RANGES),
routed the same way, so the host reaches its ClusterIPs too; one that started on the host
keeps `10.96.0.0/16` for life (its Services hold addresses from it), and when it later runs
in a machine, its ClusterIPs are reachable only inside that machine. Edge machines reach
such a node at its address like any other, never its pods or Services (machines.py drops
POD_RANGES and SERVICE_RANGES).
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess

from mothership.testenv import machines
from mothership.testenv.config import (
    MACHINE_SERVICE_RANGES,
    REAL_BRIDGE_CIDR,
    REAL_HOST_IP,
    SERVICE_CIDR,
    MothershipConfig,
)

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
    if not (cfg.pki_dir / "apiserver.crt").exists():  # never started: no Service exists yet
        cfg.service_cidr = _free_service_range()
    for cidr in _routed(cfg):
        _route(cidr, machine)
    return machine


def release(cfg: MothershipConfig) -> None:
    """Remove the node's machine and the host's route to its pods (its network namespace,
    with every rule and interface the node made in it, goes with the machine)."""
    if not cfg.node_machine:
        return
    for cidr in _routed(cfg):
        subprocess.run(["ip", "route", "del", cidr], capture_output=True, check=False)
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


def _routed(cfg: MothershipConfig) -> list[str]:
    """What the host routes through the node's machine: its pods, and its Services when
    they have a range of their own."""
    return [cfg.pod_cidr] + ([cfg.service_cidr] if cfg.service_cidr != SERVICE_CIDR else [])


def _free_service_range() -> str:
    """The first /24 of MACHINE_SERVICE_RANGES the host routes nowhere yet."""
    for net in ipaddress.ip_network(MACHINE_SERVICE_RANGES).subnets(new_prefix=24):
        if not _route_of(str(net)):
            return str(net)
    raise machines.MachineError(
        f"every Service range in {MACHINE_SERVICE_RANGES} is routed to a node; stop a "
        "mothership first (`mothership dev down --name NAME`)"
    )


def _route_of(cidr: str) -> str:
    shown = subprocess.run(
        ["ip", "route", "show", cidr], capture_output=True, text=True, check=False
    )
    return shown.stdout.strip()


def _route(cidr: str, machine: machines.Machine) -> None:
    """Route `cidr` to the machine; refused if it leads to another mothership's node (a
    stopped mothership's saved range, taken meanwhile by one started fresh)."""
    current = _route_of(cidr)
    if current and f"via {machine.address} " not in f"{current} ":
        raise machines.MachineError(
            f"{cidr} is routed to another local mothership's node ({current}); stop that "
            "mothership first (`mothership dev down --name NAME`)"
        )
    subprocess.run(
        ["ip", "route", "replace", cidr, "via", machine.address, "dev", machine.lan.bridge],
        capture_output=True,
        text=True,
        check=True,
    )
