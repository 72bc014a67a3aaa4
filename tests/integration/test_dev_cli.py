"""`mothership dev up|status|env|down` driven as a user drives it, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mothership.testenv import pins
from mothership.testenv.procs import start_time
from tests.leftovers import processes_mentioning


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mothership", *args], capture_output=True, text=True, env=env, timeout=600
    )


def _kubectl(bin_dir: str, kubeconfig: str, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    out = subprocess.run(
        [f"{bin_dir}/kubectl", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_dev_lifecycle_leaves_nothing_running(tmp_path: Path) -> None:
    where = ["--name", "cli-test", "--state-dir", str(tmp_path)]
    up = _cli("dev", "up", "--nodes", "kwok", "--kwok-nodes", "2", *where)
    assert up.returncode == 0, up.stdout + up.stderr

    status = _cli("dev", "status", "-o", "json", *where)
    assert status.returncode == 0, status.stdout + status.stderr
    rows = json.loads(status.stdout)
    assert {r["name"] for r in rows} == {
        "datastore",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "operator",  # `dev up` runs the operator unless told --no-operator
    }
    assert all(r["healthy"] for r in rows)

    env_out = _cli("dev", "env", *where).stdout
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in env_out.strip().splitlines()
    )
    kubeconfig = exports["KUBECONFIG"]
    bin_dir = exports["PATH"].split(":", 1)[0]
    assert Path(kubeconfig).is_file()

    nodes = _kubectl(bin_dir, kubeconfig, "get", "nodes", "--no-headers")
    assert [line.split()[1] for line in nodes.strip().splitlines()] == ["Ready", "Ready"]
    version = json.loads(_kubectl(bin_dir, kubeconfig, "version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == pins.KUBERNETES_VERSION

    # A second `up` is a no-op on a running mothership.
    again = _cli("dev", "up", "--nodes", "kwok", "--kwok-nodes", "2", *where)
    assert again.returncode == 0, again.stderr
    pids = {r["pid"] for r in json.loads(_cli("dev", "status", "-o", "json", *where).stdout)}
    assert pids == {r["pid"] for r in rows}

    down = _cli("dev", "down", *where)
    assert down.returncode == 0, down.stderr
    assert "stopped 6 processes" in down.stdout
    assert processes_mentioning(tmp_path) == []
    assert all(start_time(pid) is None for pid in pids)

    after = _cli("dev", "status", *where)
    assert after.returncode == 1
    assert "not running" in after.stdout


def test_status_of_unknown_mothership_says_how_to_start_one(tmp_path: Path) -> None:
    out = _cli("dev", "status", "--state-dir", str(tmp_path / "nothing"))
    assert out.returncode == 2
    assert "mothership dev up" in out.stderr
