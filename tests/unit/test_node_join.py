"""The join script and command (pure render), and its checks run for real with `sh`.

The checks that need no server (a malformed token, a token of another cluster, an expired
one) run the rendered script in a scratch directory as an unprivileged-looking root: they
must fail before anything is installed, which the test verifies by the absence of the
state directory the script would write first. The rest of the join is proven end to end
in tests/integration/test_workers.py.
"""

from __future__ import annotations

import base64
import gzip
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.pki.certs import new_ca
from mothership.render import join_token, node_join
from mothership.testenv import pins

CA = new_ca("test-ca")
OTHER_CA = new_ca("other-ca")
SERVER = "https://10.200.0.1:30443"
EVERY_OPTION = node_join.JoinOptions(
    download_url="http://10.200.0.1:8880",
    registry_mirror="http://10.200.0.1:5000",
    node_name="edge-1",
    labels={"site": "edge-7"},
    taints=("dedicated=edge:NoSchedule",),
    kubelet_args=("--max-pods=50",),
)


def token(ca_pem: bytes = CA.cert_pem, server: str = SERVER) -> str:
    return join_token.join_token(
        server=server, ca_pem=ca_pem, role="worker", token="abcdef.0123456789abcdef"
    )


def cluster(**spec: Any) -> Cluster:
    return Cluster.model_validate(
        {
            "apiVersion": "k0smotron.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": {"distribution": "kubernetes", "version": "v1.35.4", **spec},
        }
    )


def facts(tok: str | None = None, expires: datetime | None = None) -> node_join.JoinFacts:
    return node_join.join_facts(cluster(), "ns", tok or token(), expires)


def test_facts_come_from_the_spec_and_the_token() -> None:
    f = node_join.join_facts(
        cluster(
            k0sConfig={
                "spec": {"network": {"serviceCIDR": "10.100.0.0/16", "clusterDomain": "corp.local"}}
            }
        ),
        "ns",
        token(),
    )
    assert (f.cluster, f.cluster_dns, f.cluster_domain) == ("ns/demo", "10.100.0.10", "corp.local")
    assert f.ca_pem == CA.cert_pem and f.versions.kubernetes == "v1.35.4"


def k0s_facts(version: str = "v1.33.13-k0s.0") -> node_join.JoinFacts:
    return node_join.join_facts(cluster(distribution="k0s", version=version), "ns", token())


def test_a_k0s_cluster_joins_with_the_k0s_release_of_its_version() -> None:
    f = k0s_facts()
    assert f.distribution == "k0s"
    assert (f.versions.k0s, f.versions.kubernetes) == ("v1.33.13+k0s.0", "v1.33.13")
    urls = node_join.artifact_urls(f.versions, "http://10.200.0.1:8880")
    assert urls["k0s"] == (
        "http://10.200.0.1:8880/github.com/k0sproject/k0s/releases/download/"
        "v1.33.13+k0s.0/k0s-v1.33.13+k0s.0-${ARCH}"
    )
    assert urls["kubelet"].endswith("/release/v1.33.13/bin/linux/${ARCH}/kubelet")


@pytest.mark.parametrize("version", ["v1.33.13", "1.33", "latest"])
def test_a_version_that_names_no_k0s_release_is_refused(version: str) -> None:
    with pytest.raises(node_join.JoinError, match="not a k0s version"):
        k0s_facts(version)


def test_the_k0s_join_runs_k0s_worker_with_the_options_as_its_flags() -> None:
    options = EVERY_OPTION
    script = node_join.render_join_script(k0s_facts(), options)
    subprocess.run(["sh", "-n", "-c", script], check=True)
    assert "K0S_URL='http://10.200.0.1:8880/github.com/k0sproject/k0s/releases/download/" in script
    assert "start_service k0s-worker" in script and "KUBELET_CONFIG=" not in script
    assert "/etc/k0s/containerd.d/mothership-registry-mirror.toml" in script
    assert "write_file /etc/containerd/certs.d/quay.io/hosts.toml" in script
    assert "NODE_LABELS=site=edge-7" in script and "--max-pods=50" in script


def test_render_is_deterministic_and_carries_the_values() -> None:
    options = EVERY_OPTION
    a = node_join.render_join_script(facts(), options)
    assert a == node_join.render_join_script(facts(), options)
    assert (
        "KUBELET_URL=http://10.200.0.1:8880/dl.k8s.io/release/v1.35.4/bin/linux/${ARCH}/kubelet"
        in a.replace("'", "")
    )
    assert "NODE_LABELS=site=edge-7" in a and "--max-pods=50" in a
    assert "write_file /etc/containerd/certs.d/registry.k8s.io/hosts.toml" in a
    assert "clusterDNS: [10.96.0.10]" in a
    subprocess.run(["sh", "-n", "-c", a], check=True)


def test_upstream_locations_without_a_mirror() -> None:
    urls = node_join.artifact_urls(node_join.NodeVersions("v1.35.4"))
    assert urls["kubelet"] == "https://dl.k8s.io/release/v1.35.4/bin/linux/${ARCH}/kubelet"
    assert urls["containerd"].startswith("https://github.com/containerd/containerd/releases/")
    mirrored = node_join.artifact_urls(node_join.NodeVersions("v1.35.4"), "http://m:1/")
    assert (
        mirrored["runc"]
        == "http://m:1/github.com/opencontainers/runc/releases/download/v1.5.2/runc.${ARCH}"
    )


def test_the_command_is_one_line_that_unpacks_to_the_script() -> None:
    script = node_join.render_join_script(facts(), node_join.JoinOptions())
    command = node_join.join_command(script)
    assert "\n" not in command and command.endswith("| base64 -d | gunzip | sh -s --")
    packed = command.split()[1]
    assert gzip.decompress(base64.b64decode(packed)).decode() == script


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        (node_join.JoinOptions(download_url="ftp://x"), "--download-url"),
        (node_join.JoinOptions(registry_mirror="10.0.0.1:5000"), "--registry-mirror"),
        (node_join.JoinOptions(node_name="Bad_Name"), "--node-name"),
        (node_join.JoinOptions(labels={"bad key": "v"}), "--node-label"),
        (node_join.JoinOptions(labels={"node-role.kubernetes.io/worker": ""}), "NodeRestriction"),
        (node_join.JoinOptions(taints=("nokey",)), "--node-taint"),
        (node_join.JoinOptions(kubelet_args=("max-pods=5",)), "--kubelet-arg"),
    ],
)
def test_bad_options_are_refused_naming_the_flag(options: node_join.JoinOptions, flag: str) -> None:
    with pytest.raises(node_join.JoinError, match=flag):
        node_join.validate_options(options)


def test_a_malformed_token_is_refused_at_render() -> None:
    with pytest.raises(node_join.JoinError, match="malformed"):
        node_join.join_facts(cluster(), "ns", "not-a-token")


# --- the script's own checks, run with sh ---------------------------------------------


def run_script(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the script with its state dir moved under tmp_path (root is required by it)."""
    state = tmp_path / "state"
    body = script.replace("STATE=/var/lib/mothership-node", f"STATE={state}")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    return subprocess.run(
        ["sh", "-s", "--", *args], input=body, capture_output=True, text=True, env=env, timeout=60
    )


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the script refuses to run as non-root")


@needs_root
def test_a_malformed_token_file_fails_before_anything_is_installed(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("bm90IGd6aXA=")
    script = node_join.render_join_script(facts(), node_join.JoinOptions())
    proc = run_script(script, tmp_path, "--token-file", str(tmp_path / "token"))
    assert proc.returncode == 1
    assert "the join token is malformed" in proc.stderr
    assert not (tmp_path / "state").exists()


@needs_root
def test_a_token_of_another_cluster_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(token(OTHER_CA.cert_pem))
    script = node_join.render_join_script(facts(), node_join.JoinOptions())
    proc = run_script(script, tmp_path, "--token-file", str(tmp_path / "token"))
    assert proc.returncode == 1
    assert "this token is for another cluster" in proc.stderr and "ns/demo" in proc.stderr
    assert not (tmp_path / "state").exists()


@needs_root
def test_an_expired_token_is_refused_with_its_expiry(tmp_path: Path) -> None:
    expired = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    script = node_join.render_join_script(facts(expires=expired), node_join.JoinOptions())
    proc = run_script(script, tmp_path)
    assert proc.returncode == 1
    assert "the join token expired at 2020-01-02T03:04:05Z" in proc.stderr
    assert not (tmp_path / "state").exists()


@needs_root
def test_an_unreachable_api_server_is_named(tmp_path: Path) -> None:
    tok = token(server="https://127.0.0.1:9")  # discard port: nothing listens
    script = node_join.render_join_script(
        node_join.join_facts(cluster(), "ns", tok, datetime.now(UTC) + timedelta(hours=1)),
        node_join.JoinOptions(),
    )
    proc = run_script(script, tmp_path)
    assert proc.returncode == 1
    assert "cannot reach the API server of ns/demo at https://127.0.0.1:9" in proc.stderr
    assert not (tmp_path / "state").exists()


def test_the_leave_script_is_valid_sh() -> None:
    subprocess.run(["sh", "-n", "-c", node_join.leave_script()], check=True)


def test_the_join_defaults_to_the_node_components_this_project_builds_and_serves() -> None:
    built = {f.name: f.version.lstrip("v") for f in pins.node_families()}
    assert node_join.NodeVersions(kubernetes="v1.35.4") == node_join.NodeVersions(
        kubernetes="v1.35.4",
        containerd=built["containerd"],
        runc=built["runc"],
        cni_plugins=built["cni-plugins"],
    )
