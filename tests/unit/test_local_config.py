"""Pure parts of the local mothership: component flags and node configuration files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml

from mothership.testenv import components, realnode
from mothership.testenv.config import REAL_HOST_IP, MothershipConfig
from mothership.testenv.local import PORT_NAMES


def _cfg(tmp_path: Path, nodes: str = "kwok") -> MothershipConfig:
    ports = {name: 20000 + i for i, name in enumerate(PORT_NAMES)}
    return MothershipConfig(
        name="t",
        state_dir=tmp_path,
        nodes=nodes,
        ports=ports,
        bin_dir=Path("/bin-dir"),  # type: ignore[arg-type]
    )


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv[1:] if "=" in a)


def test_config_round_trips_through_its_file(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg.save()
    assert MothershipConfig.load(tmp_path) == cfg


def test_api_host_is_loopback_unless_pods_must_reach_it(tmp_path: Path) -> None:
    assert _cfg(tmp_path, "kwok").api_host == "127.0.0.1"
    assert _cfg(tmp_path, "none").api_host == "127.0.0.1"
    assert _cfg(tmp_path, "real").api_host == REAL_HOST_IP


def test_apiserver_flags(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    flags = _flags(components.apiserver(cfg))
    assert flags["secure-port"] == str(cfg.ports["apiserver"])
    assert flags["etcd-servers"] == f"http://127.0.0.1:{cfg.ports['etcd']}"
    assert flags["authorization-mode"] == "Node,RBAC"
    assert flags["bind-address"] == "127.0.0.1"
    assert "NodeRestriction" in flags["enable-admission-plugins"]
    assert flags["enable-bootstrap-token-auth"] == "true"
    for key in ("service-account-key-file", "requestheader-client-ca-file", "client-ca-file"):
        assert flags[key].startswith(str(cfg.pki_dir))


def test_controller_manager_runs_bootstrap_and_csr_controllers(tmp_path: Path) -> None:
    flags = _flags(components.controller_manager(_cfg(tmp_path)))
    assert flags["controllers"] == "*,bootstrapsigner,tokencleaner"
    assert flags["cluster-signing-cert-file"].endswith("ca.crt")
    assert flags["bind-address"] == "127.0.0.1"


def test_every_port_is_distinct_and_loopback_in_kwok_mode(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    argvs = [components.etcd(cfg), components.apiserver(cfg), components.scheduler(cfg)]
    text = " ".join(" ".join(a) for a in argvs)
    assert "0.0.0.0" not in text
    assert len(set(cfg.ports.values())) == len(cfg.ports)


def test_node_config_files_parse_and_point_at_the_state_dir(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "real")
    containerd = tomllib.loads(realnode.containerd_config(cfg))
    assert containerd["grpc"]["address"] == str(realnode.containerd_socket(cfg))
    cri = containerd["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == realnode.PAUSE_IMAGE
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False

    cni = json.loads(realnode.cni_config(cfg))
    bridge = cni["plugins"][0]
    assert bridge["bridge"] == "mship0"
    assert bridge["ipam"]["ranges"][0][0]["gateway"] == REAL_HOST_IP

    kubelet = yaml.safe_load(realnode.kubelet_config(cfg))
    assert kubelet["failCgroupV1"] is False
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["cgroupRoot"] == "/mothership"
    assert kubelet["port"] == cfg.ports["kubelet"]
    assert kubelet["authentication"]["anonymous"]["enabled"] is False

    proxy = yaml.safe_load(realnode.kube_proxy_config(cfg))
    assert proxy["mode"] == "iptables"
    assert proxy["clientConnection"]["kubeconfig"].endswith("kube-proxy.kubeconfig")
