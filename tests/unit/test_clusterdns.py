"""Pure parts of the local mothership's cluster DNS, its CoreDNS build and the image shell."""

from __future__ import annotations

import io
import json
import struct
import tarfile
from pathlib import Path

import pytest
import yaml

from mothership.testenv import clusterdns, coredns_main, images, pins, realnode, userland
from mothership.testenv.config import MothershipConfig
from mothership.testenv.local import PORT_NAMES


def _cfg(tmp_path: Path) -> MothershipConfig:
    ports = {name: 20000 + i for i, name in enumerate(PORT_NAMES)}
    return MothershipConfig(name="t", state_dir=tmp_path, nodes="real", ports=ports)


# --- where DNS lives ------------------------------------------------------------------------


def test_dns_ip_is_the_tenth_address_of_the_service_range(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    assert cfg.service_cidr == "10.96.0.0/16"
    assert cfg.dns_ip == "10.96.0.10"


def test_kubelet_hands_the_dns_ip_and_domain_to_pods(tmp_path: Path) -> None:
    conf = yaml.safe_load(realnode.kubelet_config(_cfg(tmp_path)))
    assert conf["clusterDNS"] == ["10.96.0.10"]
    assert conf["clusterDomain"] == "cluster.local"


def test_objects_pin_the_service_ip_and_mount_the_corefile(tmp_path: Path) -> None:
    objs = {(o["kind"], o["metadata"]["name"]): o for o in clusterdns.objects(_cfg(tmp_path), [])}
    service = objs[("Service", "kube-dns")]
    assert service["metadata"]["namespace"] == "kube-system"
    assert service["spec"]["clusterIP"] == "10.96.0.10"
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
        (53, "UDP"),
        (53, "TCP"),
    }
    deployment = objs[("Deployment", "coredns")]
    pod = deployment["spec"]["template"]["spec"]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert pod["containers"][0]["image"] == f"localhost/mothership/coredns:{pins.COREDNS_VERSION}"
    assert pod["dnsPolicy"] == "Default"
    # Port 53 as nobody, with every capability dropped.
    assert pod["securityContext"]["runAsUser"] == 65534
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"} in pod["securityContext"][
        "sysctls"
    ]
    binding = objs[("ClusterRoleBinding", "mothership:coredns")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}
    ]
    rules = objs[("ClusterRole", "mothership:coredns")]["rules"]
    assert any("endpointslices" in r["resources"] for r in rules)


def test_corefile_forwards_other_names_to_the_usable_upstreams() -> None:
    text = clusterdns.corefile(["10.0.0.2", "10.0.0.3"])
    assert text.startswith(".:53 {")
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in text
    assert "forward . 10.0.0.2 10.0.0.3" in text
    assert "loop" in text and "ready" in text and "health {" in text


def test_corefile_without_upstreams_serves_only_cluster_zones() -> None:
    text = clusterdns.corefile([])
    assert text.startswith("cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {")
    assert "forward" not in text and "fallthrough" not in text
    # Every directive used is one our build carries.
    used = {
        line.split()[0] for line in text.splitlines() if line.startswith("    ") and line[4] != " "
    }
    assert used - {"}"} <= set(coredns_main.PLUGINS)


def test_nameservers_skip_loopback_and_comments(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nnameserver 127.0.0.53\nnameserver 10.255.255.53 # host\n"
        "search example.com\nnameserver ::1\nnameserver not-an-ip\nnameserver 192.168.1.1\n"
    )
    assert clusterdns.nameservers(conf) == ["10.255.255.53", "192.168.1.1"]
    assert clusterdns.nameservers(tmp_path / "missing") == []


def test_upstream_override_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTHERSHIP_DNS_UPSTREAMS", raising=False)
    assert clusterdns.environment_upstreams() is None
    monkeypatch.setenv("MOTHERSHIP_DNS_UPSTREAMS", "")
    assert clusterdns.environment_upstreams() == []
    monkeypatch.setenv("MOTHERSHIP_DNS_UPSTREAMS", "10.0.0.2, 10.0.0.3")
    assert clusterdns.environment_upstreams() == ["10.0.0.2", "10.0.0.3"]


def test_query_names_are_length_prefixed_labels() -> None:
    assert clusterdns._encode_name("kubernetes.default.svc.") == (
        b"\x0akubernetes\x07default\x03svc\x00"
    )
    assert clusterdns._encode_name(".") == b"\x00"
    # A compressed answer name is two bytes; a plain one ends at its zero byte.
    msg = b"\x03abc\x00" + struct.pack(">H", 0xC00C)
    assert clusterdns._skip_name(msg, 0) == 5
    assert clusterdns._skip_name(msg, 5) == 7


# --- the CoreDNS build ----------------------------------------------------------------------


def test_coredns_main_imports_and_orders_only_the_kept_plugins() -> None:
    source = coredns_main.main_source()
    imports = [
        line.split('"')[1] for line in source.splitlines() if line.startswith('\t_ "github.com')
    ]
    dirs = {coredns_main.PACKAGE_DIRS.get(p, p) for p in coredns_main.PLUGINS}
    assert sorted(p.rsplit("/", 1)[1] for p in imports) == sorted(dirs)
    assert "github.com/coredns/coredns/plugin/metrics" in imports  # the prometheus directive
    assert "github.com/coredns/coredns/core/plugin" not in source  # upstream's all-plugins list
    block = source.split("directives = []string{")[1].split("}")[0]
    order = [line.strip().strip('",') for line in block.splitlines() if line.strip()]
    assert tuple(order) == coredns_main.PLUGINS
    assert "coremain.Run()" in source


def test_coredns_is_an_addon_in_its_own_bin_dir() -> None:
    family = next(f for f in pins.addon_families() if f.name == "coredns")
    assert family.name == "coredns" and family.version == pins.COREDNS_VERSION
    assert family.main_source == coredns_main.main_source()
    assert family.binaries[0].package == "."
    assert pins.addon_version_set(family).startswith(f"addon-coredns-{pins.COREDNS_VERSION}-")
    # Its main is part of its build inputs, and only of its own.
    changed = pins.Family(**{**family.__dict__, "main_source": family.main_source + "//\n"})
    assert pins.addon_version_set(changed) != pins.addon_version_set(family)
    assert pins.version_set() == pins.version_set()  # unaffected by add-ons


def test_addon_pins_match_the_api_defaults() -> None:
    """The images tenants run by default carry the versions the local mothership builds."""
    from mothership.api.k0smotron import v1beta2

    assert v1beta2.COREDNS_VERSION == pins.COREDNS_VERSION
    assert v1beta2.FLANNEL_VERSION == pins.FLANNEL_VERSION
    assert v1beta2.METRICS_SERVER_VERSION == pins.METRICS_SERVER_VERSION
    assert v1beta2.KONNECTIVITY_VERSION == pins.KONNECTIVITY_VERSION
    names = {f.name for f in pins.addon_families()}
    assert {"coredns", "registry", "flannel", "metrics-server"} <= names


# --- the control-plane image's shell -------------------------------------------------------


def test_static_busybox_is_told_from_dynamic_binaries() -> None:
    try:
        busybox = userland.find_busybox()
    except userland.UserlandMissing as exc:
        assert "apt-get install -y busybox-static" in str(exc)
        pytest.skip("busybox-static not installed")
    assert userland._is_static(busybox)
    assert not userland._is_static(Path("/bin/ls").resolve())  # Debian's ls needs libc


def test_the_etcd_scripts_find_every_command_they_call() -> None:
    """What render/etcd.py's scripts run is in the image: applets, the shim or binaries."""
    from mothership.render import etcd

    scripts = etcd._RUN_SCRIPT + etcd._JOIN_SCRIPT + etcd._dns_check_script("ns")
    called = {"awk", "cat", "mv", "rm", "sleep", "getent", "etcdctl", "etcd"}
    for word in called:
        assert word in scripts
    provided = set(userland.APPLETS) | {"getent"} | set(realnode.CONTROL_PLANE_BINARIES)
    assert called <= provided


def test_bash_shim_hands_over_to_sh() -> None:
    assert userland.BASH_SHIM.startswith(b"#!/bin/sh\n")
    assert userland.BASH_SHIM.rstrip().endswith(b'exec /bin/sh "$@"')


def test_symlinks_land_in_the_layer(tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    images.write_oci_archive(
        out,
        name="localhost/x:1",
        files={"/bin/busybox": b"pretend", "/bin/sh": images.Symlink("busybox")},
    )
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        digest = index["manifests"][0]["digest"]
        manifest = json.load(tar.extractfile("blobs/sha256/" + digest.split(":")[1]))  # type: ignore[arg-type]
        layer_digest = manifest["layers"][0]["digest"].split(":")[1]
        layer = tar.extractfile("blobs/sha256/" + layer_digest).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        sh = inner.getmember("bin/sh")
    assert sh.issym() and sh.linkname == "busybox" and sh.mtime == 0
    assert images.archive_digest(out) == digest


def test_archive_names_follow_their_inputs(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_bytes(b"one")
    name = "localhost/mothership/control-plane:v1.35.4"
    first = realnode._archive_name(name, {"/tool": tool}, [])
    assert first == realnode._archive_name(name, {"/tool": tool}, [])
    assert first.startswith("localhost_mothership_control-plane_v1.35.4-")
    tool.write_bytes(b"two!")
    assert realnode._archive_name(name, {"/tool": tool}, []) != first
    assert realnode._archive_name(name, {"/tool": tool, "/bin/sh": images.Symlink("x")}, []) != (
        realnode._archive_name(name, {"/tool": tool}, [])
    )


def test_local_operator_makes_the_shell_image_the_default_etcd_image(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mothership.cli.main import app
    from mothership.testenv import localoperator

    cfg = _cfg(tmp_path)
    cfg.ports.update({n: 30000 + i for i, n in enumerate(localoperator.PORT_NAMES)})
    image = pins.local_control_plane_image(pins.KUBERNETES_VERSION)
    assert f"--default-etcd-image={image}" in localoperator.argv(cfg)
    runner = CliRunner()
    help_text = runner.invoke(app, ["operator", "run", "--help"], env={"COLUMNS": "200"}).output
    assert "--default-etcd-image" in help_text


def test_a_new_archive_replaces_the_older_ones_of_its_image_only(tmp_path: Path) -> None:
    image = "localhost_mothership_control-plane_v1.35.4"
    names = [
        f"{image}.tar",  # the naming before archives carried their inputs
        f"{image}-000000000000.tar",
        f"{image}-111111111111.tar",
        "localhost_mothership_control-plane_v1.34.4-222222222222.tar",
        f"{image}-rc-333333333333.tar",  # another tag that happens to start alike
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    realnode._remove_older_archives(tmp_path / f"{image}-111111111111.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
