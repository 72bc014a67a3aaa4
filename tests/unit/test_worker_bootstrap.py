"""K0sWorkerConfig: conversion between versions and the bootstrap data (pure)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml

from mothership.api.bootstrap import convert
from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.render import worker_bootstrap as wb
from mothership.render.node_join import JoinError

V1 = "bootstrap.cluster.x-k8s.io/v1beta1"
V2 = "bootstrap.cluster.x-k8s.io/v1beta2"


def test_v1beta1_fields_move_to_their_v1beta2_places_and_back() -> None:
    v1 = {
        "apiVersion": V1,
        "kind": "K0sWorkerConfig",
        "metadata": {"name": "w"},
        "spec": {
            "preStartCommands": ["echo pre"],
            "postStartCommands": ["echo post"],
            "customUserDataRef": {"secretRef": {"name": "s", "key": "k"}},
            "args": ["--labels=a=b"],
        },
        "status": {"ready": True, "dataSecretName": "w"},
    }
    v2 = convert(v1, "v1beta2")
    assert v2["spec"] == {
        "preK0sCommands": ["echo pre"],
        "postK0sCommands": ["echo post"],
        "provisioner": {"customUserDataRef": {"secretRef": {"name": "s", "key": "k"}}},
        "args": ["--labels=a=b"],
    }
    assert v2["status"] == {"dataSecretName": "w", "initialization": {"dataSecretCreated": True}}
    assert convert(v2, V1) == v1


def test_v1beta2_only_fields_survive_a_v1beta1_round_trip() -> None:
    v2 = {
        "apiVersion": V2,
        "kind": "K0sWorkerConfigTemplate",
        "metadata": {"name": "t"},
        "spec": {"template": {"spec": {"provisioner": {"type": "ignition", "platform": "linux"}}}},
    }
    v1 = convert(v2, "v1beta1")
    assert "provisioner" not in v1["spec"]["template"]["spec"]
    assert convert(v1, "v1beta2") == v2


def test_worker_flags_become_join_options() -> None:
    options = wb.worker_options(
        ["--labels=zone=a,tier=edge", "--taints=dedicated=x:NoSchedule",
         "--kubelet-extra-args=--max-pods=50 --v=2"],
        node_name="m-1", download_url="http://mirror:8080", preinstalled=True,
    )  # fmt: skip
    assert options.labels == {"zone": "a", "tier": "edge"}
    assert options.taints == ("dedicated=x:NoSchedule",)
    assert options.kubelet_args == ("--max-pods=50", "--v=2")
    assert (options.node_name, options.download_url, options.preinstalled) == (
        "m-1",
        "http://mirror:8080",
        True,
    )


@pytest.mark.parametrize(
    ("arg", "message"),
    [("--enable-cloud-provider", r"spec.args\[0\]"), ("--labels=novalue", "not key=value")],
)
def test_flags_mothership_cannot_apply_are_refused_by_index(arg: str, message: str) -> None:
    with pytest.raises(JoinError, match=message):
        wb.worker_options([arg], node_name="m")


def test_cloud_config_runs_pre_join_post_then_the_sentinel(tmp_path: Path) -> None:
    text = wb.cloud_config(
        "#!/bin/sh\necho joined\n",
        files=[wb.BootstrapFile("/etc/x.conf", "x=1\n", "0600")],
        pre_commands=["echo pre"],
        post_commands=["echo post"],
        working_dir="/opt/boot",
        custom_user_data="#cloud-config\nbootcmd: [echo hi]\n",
    )
    assert text.startswith("#cloud-config\n")
    doc = next(yaml.safe_load_all(text))
    assert [f["path"] for f in doc["write_files"]] == [
        "/etc/x.conf",
        "/opt/boot/mothership-join.sh",
    ]
    assert doc["runcmd"] == [
        "echo pre",
        "sh /opt/boot/mothership-join.sh",
        "echo post",
        f"mkdir -p /run/cluster-api && touch {SUCCESS_SENTINEL}",
    ]
    assert text.endswith("bootcmd: [echo hi]\n")


def test_to_shell_writes_files_runs_commands_and_stops_at_a_failure(tmp_path: Path) -> None:
    root = tmp_path / "m"
    text = wb.cloud_config(
        f"#!/bin/sh\necho joined > {root}/joined\n",
        files=[wb.BootstrapFile(f"{root}/etc/a.conf", "a=1\n", "0600")],
        pre_commands=[f"echo pre > {root}/pre"],
        working_dir=f"{root}/boot",
    )
    # The sentinel path is absolute on a machine; here it is redirected into tmp_path.
    script = (
        wb.to_shell(text)
        .replace(SUCCESS_SENTINEL, f"{root}/done")
        .replace("mkdir -p /run/cluster-api", f"mkdir -p {root}")
    )
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (root / "etc/a.conf").read_text() == "a=1\n"
    assert oct((root / "etc/a.conf").stat().st_mode & 0o777) == "0o600"
    assert (root / "pre").read_text() == "pre\n" and (root / "joined").exists()
    assert (root / "done").exists()

    failing = wb.to_shell(wb.cloud_config("#!/bin/sh\nexit 3\n", working_dir=f"{root}/b2"))
    failing = failing.replace(SUCCESS_SENTINEL, f"{root}/done2")
    assert subprocess.run(["sh", "-c", failing], capture_output=True).returncode != 0
    assert not (root / "done2").exists()


def test_the_bootstrap_secret_is_in_cluster_apis_format() -> None:
    config = {
        "apiVersion": V2,
        "kind": "K0sWorkerConfig",
        "metadata": {"name": "w", "namespace": "ns", "uid": "u"},
    }
    secret = wb.bootstrap_secret(config, "c", "#cloud-config\n", {"labels": {"team": "a"}})
    assert secret["type"] == "cluster.x-k8s.io/secret"
    assert secret["metadata"]["labels"] == {"team": "a", "cluster.x-k8s.io/cluster-name": "c"}
    assert base64.b64decode(secret["data"]["format"]) == b"cloud-config"
    assert base64.b64decode(secret["data"]["value"]) == b"#cloud-config\n"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u"
