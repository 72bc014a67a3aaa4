"""Pure parts of the local mothership: component flags and node configuration files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import yaml
from cryptography import x509

from mothership.testenv import components, netns, pkiset, realnode
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


def _in_machine(tmp_path: Path) -> MothershipConfig:
    """A real node placed in a reachable machine, as node_host.use_machine leaves it."""
    cfg = _cfg(tmp_path, "real")
    cfg.node_machine, cfg.node_netns = "mothership-node", "mshm7"
    cfg.node_ip, cfg.host_ip, cfg.pod_cidr = "10.252.0.8", "10.252.0.1", "10.200.7.0/24"
    return cfg


def test_a_node_in_a_machine_serves_at_the_machine_address_with_pods_of_its_own(
    tmp_path: Path,
) -> None:
    cfg = _in_machine(tmp_path)
    assert cfg.api_host == "10.252.0.8" and cfg.api_url.startswith("https://10.252.0.8:")
    flags = _flags(components.apiserver(cfg))
    assert flags["bind-address"] == flags["advertise-address"] == "10.252.0.8"

    bridge = json.loads(realnode.cni_config(cfg))["plugins"][0]
    assert bridge["ipam"]["ranges"][0][0] == {"subnet": "10.200.7.0/24", "gateway": "10.200.7.1"}
    kubelet = yaml.safe_load(realnode.kubelet_config(cfg))
    assert kubelet["address"] == "10.252.0.8"
    # Its own cgroup and pod log directory: the host's node must not reap either.
    assert kubelet["cgroupRoot"] == "/mothership-mshm7"
    assert kubelet["podLogsDir"].startswith(str(tmp_path))
    assert "--node-ip=10.252.0.8" in realnode.kubelet_argv(cfg)
    assert yaml.safe_load(realnode.kube_proxy_config(cfg))["bindAddress"] == "10.252.0.8"


def test_the_host_node_keeps_its_fixed_addresses(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "real")
    assert (cfg.node_ip, cfg.pod_gateway, cfg.cgroup_root) == (
        REAL_HOST_IP,
        REAL_HOST_IP,
        "mothership",
    )
    assert yaml.safe_load(realnode.kubelet_config(cfg))["address"] == REAL_HOST_IP


def test_components_of_a_node_in_a_machine_start_in_its_network_namespace() -> None:
    assert netns.argv("mshm7", ["kubelet", "--v=1"]) == [
        "nsenter", "--net=/run/netns/mshm7", "--", "kubelet", "--v=1",
    ]  # fmt: skip
    assert netns.argv("", ["kubelet"]) == ["kubelet"]
    assert netns.ip_argv("mshm7", "link", "show") == ["ip", "-n", "mshm7", "link", "show"]
    assert netns.ip_argv("", "link", "show") == ["ip", "link", "show"]
    assert netns.call("", lambda: 42) == 42


def test_a_moved_node_gets_a_serving_certificate_for_its_new_address_from_the_same_ca(
    tmp_path: Path,
) -> None:
    cfg = _cfg(tmp_path, "real")
    pkiset.ensure_pki(cfg)
    ca = (cfg.pki_dir / "ca.crt").read_bytes()
    admin = (cfg.pki_dir / "admin.crt").read_bytes()
    on_host = (cfg.pki_dir / "apiserver.crt").read_bytes()
    pkiset.ensure_pki(cfg)
    assert (cfg.pki_dir / "apiserver.crt").read_bytes() == on_host, "reissued for nothing"

    moved = _in_machine(tmp_path)
    pkiset.ensure_pki(moved)
    for stem in ("apiserver", "kubelet-serving"):
        cert = x509.load_pem_x509_certificate((cfg.pki_dir / f"{stem}.crt").read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "10.252.0.8" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
        assert cert.issuer.rfc4514_string().endswith("-ca")
    assert (cfg.pki_dir / "ca.crt").read_bytes() == ca, "the CA must never be regenerated"
    assert (cfg.pki_dir / "admin.crt").read_bytes() == admin, "client certs stay valid"
