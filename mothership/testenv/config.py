"""The persisted description of one local mothership.

Written at `dev up` into the state dir, so `dev status`, `dev env` and `dev down` run in
other processes (or after a reboot) know the ports, paths and mode without guessing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Datastore = Literal["etcd", "kine"]
NodeMode = Literal["none", "kwok", "real"]

CONFIG_FILE = "mothership.json"
# Real nodes share host-wide state (iptables chains of kube-proxy, the CNI bridge), so
# they use fixed addresses; API-only and kwok motherships are loopback-only and can run
# side by side. The range is outside k0s's default pod network (10.244.0.0/16): a tenant's
# worker machines route that range to their pods, and must still reach the mothership.
REAL_BRIDGE = "mship0"
REAL_BRIDGE_CIDR = "10.200.0.0/24"
REAL_HOST_IP = "10.200.0.1"
SERVICE_CIDR = "10.96.0.0/16"
# Every real node's pod range lies in here: the host's node has 10.200.0.0/24, a node
# hosted in a machine 10.200.<machine index>.0/24 (see testenv/node_host.py).
POD_RANGES = "10.200.0.0/16"
# A mothership whose node runs in a machine from its first start gets a Service range of
# its own in here, routed from the host through its machine, so the host reaches its
# ClusterIPs as it reaches the host node's. SERVICE_RANGES holds every mothership's.
MACHINE_SERVICE_RANGES = "10.97.0.0/16"
SERVICE_RANGES = "10.96.0.0/15"
# Reachable machines' LAN (testenv/machines.py); a node hosted in one reaches the host at
# its gateway, and its pods' traffic to the host comes from the machine's address there.
REACHABLE_LAN_CIDR = "10.252.0.0/24"


@dataclass
class MothershipConfig:
    name: str
    state_dir: Path
    datastore: Datastore = "etcd"
    nodes: NodeMode = "kwok"
    kwok_nodes: int = 3
    ports: dict[str, int] = field(default_factory=dict)
    service_cidr: str = SERVICE_CIDR
    pod_cidr: str = REAL_BRIDGE_CIDR
    bin_dir: Path = Path()
    # Extra kube-apiserver flags (e.g. an audit policy for benchmarks).
    apiserver_args: list[str] = field(default_factory=list)
    # Run the mothership operator as a component (`mothership dev up` turns it on; test
    # fixtures and benchmarks run their own).
    operator: bool = False
    # Run Cluster API's core controller manager beside it (`mothership dev up --capi`).
    capi: bool = False
    # Run cert-manager beside it (`mothership dev up --cert-manager`), for what clusterctl
    # installs.
    cert_manager: bool = False
    # Enforce NetworkPolicies on the real node's bridge network (`dev up --network-policy`;
    # testenv/netpol.py).
    network_policy: bool = False
    # Where the real node runs. One node fits in the host's own network (kube-proxy's
    # iptables chains are global to a network namespace); a second real-node mothership
    # gets its node in a reachable machine (testenv/node_host.py): its components run in
    # that machine's network namespace, named here, and the node's address is the
    # machine's. Empty: the host's network, at REAL_HOST_IP.
    node_machine: str = ""
    node_netns: str = ""
    node_ip: str = REAL_HOST_IP
    # The host as the node's pods reach it (the SQL servers of the tests listen there).
    host_ip: str = REAL_HOST_IP

    @property
    def api_host(self) -> str:
        """Address the API server binds to and advertises.

        With a real node, pods must reach the API (the `kubernetes` Service), and host
        loopback is not reachable from a pod, so the API listens on the project's bridge.
        """
        return self.node_ip if self.nodes == "real" else "127.0.0.1"

    @property
    def pod_gateway(self) -> str:
        """The bridge's address: first host of the pod range."""
        return self.pod_cidr.split("/")[0].rsplit(".", 1)[0] + ".1"

    @property
    def cgroup_root(self) -> str:
        """The cgroup (in every hierarchy) the node's pods live under; one per node."""
        return f"mothership-{self.node_netns}" if self.node_netns else "mothership"

    @property
    def service_ip(self) -> str:
        base = self.service_cidr.split("/")[0].rsplit(".", 1)[0]
        return f"{base}.1"

    @property
    def dns_ip(self) -> str:
        """Cluster DNS (the kube-dns Service): .10 of the service range, as kubeadm picks.

        Low in the range on purpose: the API server hands out dynamic IPs from the upper
        part first, so a fixed one there does not collide with an existing Service.
        """
        base = self.service_cidr.split("/")[0].rsplit(".", 1)[0]
        return f"{base}.10"

    @property
    def api_url(self) -> str:
        return f"https://{self.api_host}:{self.ports['apiserver']}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        data["bin_dir"] = str(self.bin_dir)
        (self.state_dir / CONFIG_FILE).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, state_dir: Path) -> MothershipConfig:
        path = state_dir / CONFIG_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no local mothership in {state_dir} (missing {CONFIG_FILE}); "
                "start one with `mothership dev up`"
            ) from None
        data["state_dir"] = Path(data["state_dir"])
        data["bin_dir"] = Path(data["bin_dir"])
        return cls(**data)
