"""`mothership bench density`'s figures: steps, limits, kubelet CPU readings, the printout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mothership.bench import podcpu
from mothership.bench.density import read_spec_file, with_spec
from mothership.bench.density_result import (
    ControlPlaneFigures,
    Result,
    Sample,
    Step,
    over_limit,
)
from mothership.errors import InvalidInput

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _samples(cluster: str, *seconds: float, ok: bool = True) -> list[Sample]:
    return [Sample(cluster, "/readyz", float(i), s, ok) for i, s in enumerate(seconds)]


def test_a_step_has_nearest_rank_percentiles_and_names_the_slowest_control_plane() -> None:
    samples = _samples("a", *([0.01] * 99), 0.5) + _samples("b", *([0.02] * 50), 2.0)
    step = Step.of(2, 7.5, samples, 4096.0, 1.2)
    assert (step.requests, step.errors) == (151, 0)
    assert step.p50 == 0.01
    assert step.p99 == 0.5  # rank ceil(0.99 * 151) = 150 of the sorted latencies
    assert (step.worst_cluster, step.worst_p99) == ("b", 2.0)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Step(3, None), "control plane 3 did not become Available"),
        (Step(3, 5.0, requests=90, errors=2), "2 of 90 requests failed with 3 serving"),
        (
            Step(4, 5.0, requests=90, p99=1.2, worst_cluster="density-2", worst_p99=1.9),
            "p99 1200 ms > 1000 ms with 4 serving (worst: density-2, 1900 ms)",
        ),
        (
            Step(5, 5.0, requests=90, p99=0.1, mem_available_mib=800),
            "the host's MemAvailable 800 MiB fell below 1024 MiB with 5 serving",
        ),
        (Step(5, 5.0, requests=90, p99=0.1, mem_available_mib=8000), ""),
    ],
)
def test_the_first_limit_a_step_hits_is_said(step: Step, expected: str) -> None:
    assert over_limit(step, 1.0, 1024.0) == expected


def test_serving_within_limit_is_the_last_good_step_and_is_printed_with_the_target() -> None:
    result = Result("ns", "default", 40, 1.0, 15.0, 1.0)
    result.steps = [
        Step(1, 6.0, requests=15, p99=0.05, mem_available_mib=9000),
        Step(2, 6.5, requests=30, p99=0.08, mem_available_mib=8800),
        Step(3, 9.0, requests=45, p99=1.4, mem_available_mib=8600),
    ]
    result.limit = over_limit(result.steps[-1], 1.0, 1024.0)
    result.idle_window = 30.0
    result.control_planes = [
        ControlPlaneFigures("density-1", 150.0, 0.03, {"kine": 20.0}, {"kine": 0.01}),
        ControlPlaneFigures("density-2", 170.0, 0.01, {"kine": 22.0}, {"kine": 0.003}),
    ]
    assert result.serving_within_limit == 2
    text = "\n".join(result.lines())
    assert "control planes serving with p99 <= 1 s and no errors: 2 (target >= 30: NOT met)" in (
        text
    )
    assert "stopped adding because: p99 1400 ms > 1000 ms with 3 serving" in text
    assert "RSS p50 150 MiB, max 170 MiB (target <= 160 MiB: NOT met)" in text
    assert "idle CPU p50 1.0 % of a core, max 3.0 % (target <= 2 %: NOT met)" in text
    assert "kine" in text and "21 /   6.5" in text  # medians of the two pods
    assert "CPU over 30 s; kubelet" in text
    figures = result.as_dict()
    assert figures["serving_within_limit"] == 2
    assert figures["per_control_plane"]["rss_mib_max"] == 170.0
    result.settle = 300.0
    assert "CPU over 30 s after 300 s at rest; kubelet" in "\n".join(result.lines())


def test_cpu_readings_of_the_kubelet_give_average_cores_between_them() -> None:
    def summary(at: datetime, pod_ns: int, kine_ns: int) -> dict[str, object]:
        stamp = at.isoformat().replace("+00:00", "Z")
        return {
            "pods": [
                {
                    "podRef": {"name": "kmc-a-0", "namespace": "ns"},
                    "cpu": {"time": stamp, "usageCoreNanoSeconds": pod_ns},
                    "containers": [
                        {"name": "kine", "cpu": {"time": stamp, "usageCoreNanoSeconds": kine_ns}},
                        {"name": "no-figures-yet", "cpu": {}},
                    ],
                },
                {"podRef": {"name": "other", "namespace": "elsewhere"}},
            ]
        }

    first = podcpu.parse_summary(summary(T0, 10_000_000_000, 2_000_000_000), "ns")
    second = podcpu.parse_summary(
        summary(T0 + timedelta(seconds=20), 10_800_000_000, 2_100_000_000), "ns"
    )
    assert list(first) == ["kmc-a-0"]
    assert set(first["kmc-a-0"].containers) == {"kine"}
    assert podcpu.cores_between(first["kmc-a-0"].pod, second["kmc-a-0"].pod) == pytest.approx(0.04)
    kine = podcpu.cores_between(
        first["kmc-a-0"].containers["kine"], second["kmc-a-0"].containers["kine"]
    )
    assert kine == pytest.approx(0.005)
    assert second["kmc-a-0"].taken_after(T0 + timedelta(seconds=10))
    assert not first["kmc-a-0"].taken_after(T0 + timedelta(seconds=10))
    # the same reading twice (cAdvisor did not refresh) measures nothing
    assert podcpu.cores_between(first["kmc-a-0"].pod, first["kmc-a-0"].pod) is None


def test_a_spec_file_is_merged_into_every_cluster_map_by_map() -> None:
    manifest = {
        "kind": "Cluster",
        "spec": {"distribution": "kubernetes", "kubernetes": {"images": {"kine": "k"}}},
    }
    extra = {"kubernetes": {"tuning": {"apiServer": {"goGC": 50}}}, "replicas": 1}
    merged = with_spec(manifest, extra)
    assert merged["spec"] == {
        "distribution": "kubernetes",
        "kubernetes": {"images": {"kine": "k"}, "tuning": {"apiServer": {"goGC": 50}}},
        "replicas": 1,
    }
    assert "tuning" not in manifest["spec"]["kubernetes"]  # the original is left alone
    assert with_spec(manifest, None) is manifest


def test_a_spec_file_is_spec_fields_or_a_pasted_spec_section(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("kubernetes: {tuning: {scheduler: {goGC: 70}}}\n")
    pasted = tmp_path / "pasted.yaml"
    pasted.write_text("spec:\n  kubernetes: {tuning: {scheduler: {goGC: 70}}}\n")
    assert read_spec_file(plain) == read_spec_file(pasted)
    for bad, words in (("- a list\n", "give a mapping"), ("a: [\n", "while parsing")):
        path = tmp_path / "bad.yaml"
        path.write_text(bad)
        with pytest.raises(InvalidInput, match=words):
            read_spec_file(path)
    with pytest.raises(InvalidInput, match="--spec-file"):
        read_spec_file(tmp_path / "missing.yaml")
