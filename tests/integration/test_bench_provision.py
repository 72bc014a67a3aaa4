"""`mothership bench provision`, run as a user runs it, on the real node.

The state root is a temporary directory with no mothership in it, so the command starts
the local mothership `default` itself (with the real node and its operator), as it does
for a user who has none running, and must stop it again. Needs root and containerd; no
lock wrapper: the bench takes its bench lock itself (here in the temporary state root),
and its real node runs beside any other local mothership's (in a machine when the host's
network is taken):

    python -m pytest tests/integration/test_bench_provision.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mothership.testenv import paths, pins
from tests.leftovers import processes_mentioning

CONTAINERS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "konnectivity-server",
    "kine",
)
TIMEOUT = 420


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "MOTHERSHIP_DEBUG")}
    env.update(
        HOME=str(root / "home"),
        MOTHERSHIP_STATE_DIR=str(root / "state"),
        MOTHERSHIP_CACHE_DIR=str(paths.cache_root()),
    )
    (root / "home").mkdir(exist_ok=True)
    return env


def _bench(root: Path, *args: str, command: str = "provision") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mothership", "bench", command, *args],
        capture_output=True,
        text=True,
        env=_env(root),
        timeout=3 * TIMEOUT,
    )


def test_keep_with_a_private_sql_server_is_refused_before_anything_starts(tmp_path: Path) -> None:
    out = _bench(tmp_path, "--storage", "postgres", "--keep")
    assert out.returncode == 2, out.stderr
    assert "--keep with --storage postgres" in out.stderr
    assert not (tmp_path / "state").exists()


@pytest.fixture
def short_root() -> Iterator[Path]:
    """A short state root: containerd's socket paths must stay under 104 bytes."""
    root = Path(tempfile.mkdtemp(prefix="mbench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.realnode
def test_two_clusters_one_after_another_from_apply_to_available_with_memory_and_floor(
    short_root: Path,
) -> None:
    out = _bench(
        short_root, "--clusters", "2", "--concurrency", "1", "--floor-runs", "1",
        "--timeout", str(TIMEOUT), "-o", "json",
    )  # fmt: skip
    assert out.returncode == 0, f"rc={out.returncode}\n{out.stdout}\n{out.stderr[-6000:]}"
    data = json.loads(out.stdout)

    assert data["mothership"] == {"name": "default", "started_by_bench": True}
    assert data["version"] == pins.KUBERNETES_VERSION
    available = data["apply_to_available_seconds"]
    assert 0 < available["min"] <= available["p50"] <= available["max"] < TIMEOUT
    clusters = data["per_cluster"]
    assert len(clusters) == 2
    for cluster in clusters:
        milestones = [
            cluster[f"apply_to_{m}_seconds"]
            for m in (
                "pod_created",
                "pod_scheduled",
                "containers_running",
                "pod_ready",
                "available",
            )
        ]
        assert None not in milestones, cluster
        assert milestones[0] > 0 and milestones == sorted(milestones), cluster
    # One at a time: the second was applied when the first was Available, so the run took
    # both times in a row (at once it would take about the longer one).
    times = [c["apply_to_available_seconds"] for c in clusters]
    assert data["total_seconds"] >= sum(times), (data["total_seconds"], times)

    assert len(data["pods"]) == 2
    pod = data["pods"][0]
    assert pod["component"] == "control-plane"
    assert pod["pod"] in {f"kmc-{c['name']}-0" for c in clusters}
    assert set(pod["containers"]) == set(CONTAINERS)
    apiserver = pod["containers"]["kube-apiserver"]
    # An API server that serves holds well over 50 MiB, and nothing here holds gigabytes.
    assert 50 < apiserver["rss_mib"] < 4096
    assert apiserver["working_set_mib"] >= apiserver["rss_mib"] * 0.5
    assert all(c["rss_mib"] > 0 for c in pod["containers"].values())
    assert pod["rss_mib"] >= apiserver["rss_mib"]

    [run] = data["floor"]["runs"]
    assert data["floor"]["datastore"] == "kine on SQLite"
    assert 0 < run["apiserver_seconds"] < 120
    assert 0 < run["datastore_seconds"] < 60
    assert run["apiserver_rss_mib"] > 50

    assert data["cleanup"]["deleted"] is True
    state = short_root / "state" / "default"
    # The claim's volume went with the Cluster, and the mothership the bench started is down.
    assert not list((state / "volumes").glob("pvc-*"))
    assert "stopping the local mothership 'default'" in out.stderr
    assert processes_mentioning(state) == []


TUNING = """
kubernetes:
  tuning:
    apiServer: {goGC: 50, goMemoryLimit: 200Mi}
    controllerManager:
      flags: ["--controllers=*,bootstrapsigner,tokencleaner,-attachdetach"]
    kine: {flags: ["--datastore-poll-interval=5s"], goGC: 50}
"""


@pytest.mark.realnode
def test_density_adds_tuned_control_planes_under_load_and_measures_them_at_rest(
    short_root: Path,
) -> None:
    """Two control planes with a tuning the binaries must accept (or they never serve),
    each under the steady load once Available, then figures at rest; all removed."""
    spec_file = short_root / "tuning.yaml"
    spec_file.write_text(TUNING)
    out = _bench(
        short_root, "--max-clusters", "2", "--window", "4", "--idle-window", "10",
        "--p99-limit", "30", "--spec-file", str(spec_file), "--timeout", str(TIMEOUT),
        "-o", "json", command="density",
    )  # fmt: skip
    assert out.returncode == 0, f"rc={out.returncode}\n{out.stdout}\n{out.stderr[-6000:]}"
    data = json.loads(out.stdout)
    assert data["mothership_started"] is True
    assert data["spec"]["kubernetes"]["tuning"]["apiServer"]["goGC"] == 50
    steps = data["steps"]
    assert [s["serving"] for s in steps] == [1, 2]
    for step in steps:
        assert 0 < step["to_available"] < TIMEOUT
        # The load ran at 1 request/s on each serving control plane over the 4 s window.
        assert step["requests"] >= 2 * step["serving"], step
        assert step["errors"] == 0, step
        assert 0 < step["p50"] <= step["p99"] < 30
    assert data["limit"] == "--max-clusters 2 reached"
    assert data["serving_within_limit"] == 2

    planes = data["control_planes"]
    assert sorted(p["cluster"] for p in planes) == ["density-1", "density-2"]
    for plane in planes:
        assert set(plane["container_rss_mib"]) == set(CONTAINERS)
        assert 50 < plane["container_rss_mib"]["kube-apiserver"] < 4096
        # Something always runs (leases, probes), and nothing here takes a whole core at rest.
        assert 0 < plane["idle_cores"] < 1.0, plane
        assert set(plane["container_idle_cores"]) == set(CONTAINERS)
    assert data["per_control_plane"]["rss_mib_max"] >= data["per_control_plane"]["rss_mib_p50"]

    assert data["cleaned_up"] is True
    state = short_root / "state" / "default"
    assert not list((state / "volumes").glob("pvc-*"))
    assert processes_mentioning(state) == []
