"""`mothership bench provision`: the pure parts (manifests, percentiles, memory, output)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from mothership.api.k0smotron import v1beta2
from mothership.bench.floor import FloorRun
from mothership.bench.podmemory import MIB, parse_summary
from mothership.bench.provision import RUN_LABEL, cluster_manifest
from mothership.bench.provision_result import (
    ClusterTiming,
    PodFigures,
    Result,
    Storage,
    percentile,
    spread,
)
from mothership.errors import InvalidInput

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_kine_clusters_keep_sqlite_on_a_claim_as_the_cli_makes_it() -> None:
    obj = cluster_manifest("bench-1", "ns", Storage.kine, "abc123")
    cluster = v1beta2.Cluster.model_validate(obj)
    assert cluster.spec.distribution == "kubernetes"
    assert cluster.spec.storage.type == "kine"
    assert cluster.spec.storage.kine.data_source_url is None  # SQLite on the data volume
    assert cluster.spec.persistence.type == "pvc"
    # As `cluster create` leaves it: the bench's clean-up deletes the claims with the namespace.
    assert cluster.spec.persistence.auto_delete_pvcs is False
    claim = obj["spec"]["persistence"]["persistentVolumeClaim"]["spec"]
    assert claim["resources"]["requests"]["storage"] == "1Gi"
    assert obj["metadata"] == {
        "name": "bench-1",
        "namespace": "ns",
        "labels": {RUN_LABEL: "abc123"},
    }


def test_etcd_clusters_are_the_clis_managed_etcd() -> None:
    cluster = v1beta2.Cluster.model_validate(cluster_manifest("b", "ns", Storage.etcd, "r"))
    assert cluster.spec.storage.type == "etcd"
    assert cluster.spec.storage.etcd.auto_delete_pvcs is False
    assert cluster.spec.persistence.type == "emptyDir"


@pytest.mark.parametrize("storage", [Storage.postgres, Storage.mysql])
def test_sql_clusters_point_kine_at_their_database(storage: Storage) -> None:
    url = "postgres://kine:pw@10.244.0.1:5432/bench_1?sslmode=disable"
    cluster = v1beta2.Cluster.model_validate(cluster_manifest("bench-1", "ns", storage, "r", url))
    assert cluster.spec.storage.type == "kine"
    assert cluster.spec.storage.kine.data_source_url == url
    assert cluster.spec.persistence.type == "emptyDir"


def test_a_bad_cluster_name_is_refused_by_the_cli_rules() -> None:
    with pytest.raises(InvalidInput, match="cluster name"):
        cluster_manifest("Bench_1", "ns", Storage.kine, "r")


def test_percentiles_are_measured_values() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0], 50) == 1.0  # nearest rank, no interpolation
    assert spread([]) == {}
    assert spread(values) == {"p50": 3.0, "p95": 5.0, "max": 5.0, "min": 1.0, "mean": 3.0}


def _stats(rss_mib: float, ws_mib: float, when: datetime) -> dict:
    return {
        "time": when.isoformat().replace("+00:00", "Z"),
        "rssBytes": int(rss_mib * MIB),
        "workingSetBytes": int(ws_mib * MIB),
        "usageBytes": int(ws_mib * MIB) + 1,
    }


SUMMARY = {
    "node": {"nodeName": "mothership-node"},
    "pods": [
        {
            "podRef": {"name": "kmc-bench-1-0", "namespace": "ns", "uid": "u1"},
            "containers": [
                {"name": "kube-apiserver", "memory": _stats(300, 320, T0)},
                {"name": "kine", "memory": _stats(20, 25, T0 + timedelta(seconds=1))},
                {"name": "no-memory-yet"},
            ],
            "memory": _stats(330, 360, T0),
        },
        {
            "podRef": {"name": "other", "namespace": "elsewhere", "uid": "u2"},
            "containers": [{"name": "x", "memory": _stats(1, 1, T0)}],
        },
    ],
}


def test_kubelet_summary_is_read_per_pod_and_container_of_the_namespace() -> None:
    pods = parse_summary(SUMMARY, "ns")
    assert list(pods) == ["kmc-bench-1-0"]
    pod = pods["kmc-bench-1-0"]
    assert set(pod.containers) == {"kube-apiserver", "kine"}
    assert pod.containers["kube-apiserver"].rss_mib == pytest.approx(300)
    assert pod.containers["kine"].working_set_mib == pytest.approx(25)
    assert pod.rss_mib == pytest.approx(330)  # the pod cgroup's own figure
    assert pod.taken_after(T0)
    assert not pod.taken_after(T0 + timedelta(milliseconds=500))


def test_pod_figures_fall_back_to_the_containers_sum() -> None:
    summary = json.loads(json.dumps(SUMMARY))
    del summary["pods"][0]["memory"]
    pod = parse_summary(summary, "ns")["kmc-bench-1-0"]
    assert pod.rss_mib == pytest.approx(320)
    assert pod.working_set_mib == pytest.approx(345)


def _result() -> Result:
    pod = parse_summary(SUMMARY, "ns")["kmc-bench-1-0"]
    timings = [
        ClusterTiming(
            "bench-1",
            100.0,
            pod_scheduled=101.0,
            containers_running=105.0,
            pod_ready=120.0,
            available=130.0,
            version="v1",
        ),
        ClusterTiming(
            "bench-2",
            100.5,
            pod_scheduled=102.5,
            containers_running=104.5,
            pod_ready=125.0,
            available=140.5,
            version="v1",
        ),
        ClusterTiming("bench-3", 101.0, pod_scheduled=103.0),  # never got further
    ]
    return Result(
        clusters=3,
        storage=Storage.kine,
        concurrency=2,
        namespace="ns",
        mothership="default",
        timings=timings,
        all_applied_seconds=0.5,
        total_seconds=40.5,
        pods=[PodFigures("bench-1", "control-plane", pod)],
        floor_datastore="kine on SQLite",
        floor=[FloorRun(0.1, 2.5, 190.0), FloorRun(0.1, 3.5, 191.0), FloorRun(0.2, 3.0, 189.0)],
        cleaned_up=True,
        cleanup_seconds=12.0,
    )


def test_json_holds_every_figure() -> None:
    data = json.loads(json.dumps(_result().as_dict()))
    assert data["apply_to_available_seconds"]["p50"] == 30.0
    assert data["apply_to_available_seconds"]["p95"] == 40.0
    assert data["apply_to_available_seconds"]["max"] == 40.0
    assert data["apply_to_pod_ready_seconds"]["p50"] == 20.0
    assert data["apply_to_containers_running_seconds"]["max"] == 5.0
    assert data["apply_to_pod_scheduled_seconds"]["max"] == 2.0
    assert data["per_cluster"][2]["apply_to_pod_scheduled_seconds"] == 2.0
    assert data["per_cluster"][2]["apply_to_available_seconds"] is None
    assert data["version"] == "v1"
    assert data["pods"][0]["containers"]["kube-apiserver"]["rss_mib"] == pytest.approx(300)
    assert data["container_rss_mib"]["kine"]["max"] == pytest.approx(20)
    assert data["floor"]["apiserver_seconds"]["p50"] == 3.0
    assert data["floor"]["datastore_and_apiserver_seconds"]["max"] == pytest.approx(3.6)
    assert data["cleanup"] == {"deleted": True, "seconds": 12.0}


def test_tables_show_clusters_pods_and_floor() -> None:
    console = Console(record=True, width=240)
    _result().print_tables(console)
    text = console.export_text()
    for label in ("Available", "pod Ready", "containers running", "pod scheduled"):
        assert f"apply -> {label}" in text
    assert "floor: bare kube-apiserver exec -> /readyz" in text
    assert "kmc-bench-1-0" in text
    assert "300 / 320" in text  # kube-apiserver RSS / working set
    assert "every Cluster, pod, claim and volume gone after 12.0 s" in text


def test_container_columns_follow_the_control_plane_order() -> None:
    result = _result()
    assert result.containers() == ["kube-apiserver", "kine"]
    summary = json.loads(json.dumps(SUMMARY))
    summary["pods"][0]["containers"] += [
        {"name": "zz-sidecar", "memory": _stats(1, 1, T0)},
        {"name": "kube-scheduler", "memory": _stats(1, 1, T0)},
    ]
    result.pods = [
        PodFigures("bench-1", "control-plane", parse_summary(summary, "ns")["kmc-bench-1-0"])
    ]
    assert result.containers() == ["kube-apiserver", "kube-scheduler", "kine", "zz-sidecar"]
