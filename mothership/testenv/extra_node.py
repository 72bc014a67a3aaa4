"""A second real node for a running real-node local mothership, in a machine of its own.

One node is all a developer needs, but what a platform does to a node (drain it for a
kernel update, lose it) can only be shown when pods have another node to go to. This
node is built as the first one is (testenv/realnode.py: containerd, the CNI bridge, a
kubelet and kube-proxy, the same images), only in a *reachable* machine's network
namespace (testenv/machines.py), so its iptables chains and pod bridge are its own:

- it joins the mothership's API server at its address, as `system:node:<name>` with a
  client certificate from the mothership's CA, and serves the kubelet API with a
  certificate naming the machine's address;
- its pods get `10.200.<machine index>.0/24`, routed from the host through the machine,
  so the first node's pods and the host reach them, and they reach the first node's pods:
  the host's rule that keeps machines away from pod ranges (machines.py) lets this
  machine's address through, since it is a node of the mothership, not a remote site
  (and the first node's, when that one runs in a machine too);
- everything it has (processes, containers, mounts, the machine, the route, the rule, its
  unpacked images, the Node object) goes when it is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Node

from mothership import pki
from mothership.testenv import health, kube, machines, netns, realnode
from mothership.testenv.config import POD_RANGES, MothershipConfig
from mothership.testenv.procs import Supervisor, start_time, terminate, wait_for

Report = Callable[[str], None]
COMPONENTS = ("containerd", "kubelet", "kube-proxy")


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class ExtraNode:
    """A started extra node: its name, its own config (the mothership's, moved into the
    machine) and the machine it runs in."""

    name: str
    cfg: MothershipConfig
    machine: machines.Machine
    # The first node's address when it runs in a machine itself (a mothership started
    # beside another, see node_host.py): its traffic to this node's pods must pass too.
    first_node_in_machine: str = ""

    @property
    def sup(self) -> Supervisor:
        return Supervisor(self.cfg.state_dir)


def nodes_dir(mothership: MothershipConfig) -> Path:
    return mothership.state_dir / "nodes"


def node_config(
    mothership: MothershipConfig, name: str, machine: machines.Machine
) -> MothershipConfig:
    """The mothership's config as the extra node sees it: its own state dir (node files,
    certificates, logs), the machine's network namespace and address, its pod range."""
    return dataclasses.replace(
        mothership,
        state_dir=nodes_dir(mothership) / name,
        node_machine=machine.name,
        node_netns=machine.netns,
        node_ip=machine.address,
        host_ip=machine.lan.gateway,
        pod_cidr=f"10.200.{machine.index}.0/24",
        network_policy=False,
    )


def write_pki(mothership: MothershipConfig, node: MothershipConfig, name: str) -> None:
    """The node's credentials, issued by the mothership's CA: a kubelet client certificate
    for `system:node:<name>` (the Node authorizer limits it to this node's objects), a
    serving certificate for the machine's address, kube-proxy's kubeconfig as is."""
    src, dst = mothership.pki_dir, node.pki_dir
    dst.mkdir(parents=True, exist_ok=True)
    ca = pki.CertKey((src / "ca.crt").read_bytes(), (src / "ca.key").read_bytes())
    shutil.copy(src / "ca.crt", dst / "ca.crt")
    shutil.copy(src / "kube-proxy.kubeconfig", dst / "kube-proxy.kubeconfig")
    serving = pki.issue_cert(
        ca,
        name,
        server=True,
        dns_names=(name, "localhost"),
        ip_addresses=sorted({"127.0.0.1", node.node_ip}),
        validity_days=365,
    )
    (dst / "kubelet-serving.crt").write_bytes(serving.cert_pem)
    (dst / "kubelet-serving.key").write_bytes(serving.key_pem)
    (dst / "kubelet-serving.key").chmod(0o600)
    client = pki.issue_cert(
        ca, f"system:node:{name}", organizations=("system:nodes",), client=True, validity_days=365
    )
    kubeconfig = pki.kubeconfig(
        cluster_name=f"mothership-{mothership.name}",
        server=mothership.api_url,
        ca_pem=ca.cert_pem,
        user=name,
        client_cert_pem=client.cert_pem,
        client_key_pem=client.key_pem,
    )
    (dst / "kubelet.kubeconfig").write_text(kubeconfig)
    (dst / "kubelet.kubeconfig").chmod(0o600)


def _pass_rules(node: ExtraNode) -> list[list[str]]:
    """The host's raw-table rules that let node-to-pod traffic between this node and the
    first one through (machines.py drops machine-to-pod traffic, which is right for remote
    sites, not for nodes of one mothership)."""
    rules = [["PREROUTING", "-s", f"{node.cfg.node_ip}/32", "-d", POD_RANGES, "-j", "ACCEPT"]]
    if node.first_node_in_machine:
        first = f"{node.first_node_in_machine}/32"
        rules.append(["PREROUTING", "-s", first, "-d", node.cfg.pod_cidr, "-j", "ACCEPT"])
    return rules


def _iptables(action: str, rule: list[str]) -> bool:
    done = subprocess.run(
        ["iptables", "-t", "raw", action, *rule], capture_output=True, text=True, check=False
    )
    return done.returncode == 0


def _route(node: MothershipConfig, machine: machines.Machine) -> None:
    subprocess.run(
        [
            "ip",
            "route",
            "replace",
            node.pod_cidr,
            "via",
            machine.address,
            "dev",
            machine.lan.bridge,
        ],
        capture_output=True,
        text=True,
        check=True,
    )


def start(
    mothership: MothershipConfig,
    name: str = "mothership-node-2",
    report: Report = _quiet,
    timeout: float = 240.0,
) -> ExtraNode:
    """Create the machine, start the node in it and wait until its Node is Ready."""
    if mothership.nodes != "real":
        raise ValueError("an extra node joins a real-node mothership (`dev up --nodes real`)")
    machines.validate_name(name)
    state_dir = nodes_dir(mothership) / name
    report(f"creating machine {name}")
    machine = machines.create(state_dir, name, "reachable", timeout=30)
    node = _node(mothership, name, machine)
    try:
        _start(mothership, node, report, timeout)
    except BaseException:
        stop(mothership, node)
        raise
    return node


def _start(mothership: MothershipConfig, node: ExtraNode, report: Report, timeout: float) -> None:
    cfg, sup = node.cfg, node.sup
    write_pki(mothership, cfg, node.name)
    _route(cfg, node.machine)
    for rule in _pass_rules(node):
        if not _iptables("-C", rule):
            _iptables("-I", rule)
    realnode.raise_host_limits()
    realnode.setup_network(cfg)
    realnode.write_configs(cfg, node.name)
    realnode.ensure_cgroup_root(cfg)
    report(f"starting containerd on {node.name}")
    sup.start("containerd", netns.argv(cfg.node_netns, realnode.containerd_argv(cfg)))
    sock = realnode.containerd_socket(cfg)
    wait_for(
        "containerd socket",
        lambda: sock.exists() and realnode.ctr(cfg, "version", check=False).returncode == 0,
        timeout=timeout,
        supervisor=sup,
        component="containerd",
    )
    realnode.prepare_images(cfg, report)
    report(f"starting kubelet and kube-proxy on {node.name}")
    sup.start("kubelet", netns.argv(cfg.node_netns, realnode.kubelet_argv(cfg, node.name)))
    sup.start("kube-proxy", netns.argv(cfg.node_netns, realnode.kube_proxy_argv(cfg)))
    kc = kube.client(mothership.kubeconfig)

    def ready() -> bool:
        try:
            kube.wait_nodes_ready(kc, [node.name], timeout=1.0)
        except TimeoutError:
            return False
        return True

    wait_for(f"node {node.name} Ready", ready, timeout=timeout, supervisor=sup, component="kubelet")
    url = f"http://127.0.0.1:{cfg.ports['kube-proxy-healthz']}/healthz"
    wait_for(
        "kube-proxy /healthz",
        lambda: netns.call(cfg.node_netns, lambda: health.http_ok(url)),
        timeout=timeout,
        supervisor=sup,
        component="kube-proxy",
    )


def find(mothership: MothershipConfig, name: str) -> ExtraNode | None:
    """The extra node of that name, if its machine exists (running or not)."""
    state_dir = nodes_dir(mothership) / name
    try:
        machine = machines.find(state_dir, name)
    except machines.MachineError:
        return None
    return _node(mothership, name, machine)


def _node(mothership: MothershipConfig, name: str, machine: machines.Machine) -> ExtraNode:
    first = mothership.node_ip if mothership.node_machine else ""
    return ExtraNode(name, node_config(mothership, name, machine), machine, first)


def stop(mothership: MothershipConfig, node: ExtraNode, report: Report = _quiet) -> None:
    """Stop the node and remove everything it made, down to its Node object and images.

    As `dev down` does for the first node: kubelet and kube-proxy first, the containers
    through containerd (their pod networks released), leftover shims and container
    processes, mounts, cgroups; then the machine with its network namespace, the host's
    route and rule."""
    cfg, sup = node.cfg, node.sup
    for name in ("kube-proxy", "kubelet"):
        sup.stop(name)
    report(f"stopping the containers of {node.name}")
    realnode.kill_all_tasks(cfg)
    sup.stop("containerd")
    for pid in sorted(realnode.shim_pids(cfg) | realnode.cgroup_pids(cfg)):
        started = start_time(pid)
        if started is not None:
            terminate(pid, started, timeout=5.0)
    with contextlib.suppress(machines.MachineError):
        machines.delete(cfg.state_dir, node.name)
    subprocess.run(["ip", "route", "del", cfg.pod_cidr], capture_output=True, check=False)
    for rule in _pass_rules(node):
        while _iptables("-D", rule):
            pass
    realnode.unmount_under(cfg.state_dir)
    realnode.remove_host_leftovers(cfg)
    with contextlib.suppress(ApiError):
        kube.client(mothership.kubeconfig).delete(Node, node.name)
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    report(f"removed node {node.name}")


def leftovers(node: ExtraNode) -> list[str]:
    """What of the node is still there after stop (empty when it cleaned up)."""
    found = [f"process {r.name} ({r.pid})" for r in node.sup.all() if r.alive()]
    found += [f"shim {pid}" for pid in realnode.shim_pids(node.cfg)]
    found += [f"cgroup {d}" for d in realnode.cgroup_dirs(node.cfg) if d.exists()]
    if node.cfg.state_dir.exists():
        found.append(f"state dir {node.cfg.state_dir}")
    found += [f"the host's rule {' '.join(r)}" for r in _pass_rules(node) if _iptables("-C", r)]
    shown = subprocess.run(
        ["ip", "route", "show", node.cfg.pod_cidr], capture_output=True, text=True, check=False
    )
    if shown.stdout.strip():
        found.append(f"route {shown.stdout.strip()}")
    return found


def wait_gone(node: ExtraNode, timeout: float = 30.0) -> list[str]:
    """leftovers(), polled until empty or the timeout (processes take a moment to exit)."""
    deadline = time.monotonic() + timeout
    while (found := leftovers(node)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def list_nodes(mothership: MothershipConfig) -> list[ExtraNode]:
    """The extra nodes this mothership has (their machines exist)."""
    base = nodes_dir(mothership)
    names = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []
    return [n for n in (find(mothership, name) for name in names) if n is not None]


def stop_all(mothership: MothershipConfig, report: Report = _quiet) -> list[str]:
    """Stop and remove every extra node (`dev down` does, before the API server stops);
    return their names. A node dir without a machine (a start that failed early) goes too."""
    stopped = []
    for node in list_nodes(mothership):
        stop(mothership, node, report)
        stopped.append(node.name)
    base = nodes_dir(mothership)
    if base.exists():
        realnode.unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
    return stopped
