"""The pure parts of `mothership bench admission`: histograms from Prometheus text, their
growth between two scrapes, quantiles as Prometheus computes them, and the printed table."""

from __future__ import annotations

import math

import pytest

from mothership.bench import admission_result as fig
from mothership.bench.admission import manifest

SUFFIX = ".mothership.k0smotron.io"
NAME = fig.ADMISSION


def _series(name: str, labels: str, buckets: dict[str, float], total: float) -> str:
    lines = [f'{NAME}_bucket{{name="{name}",{labels},le="{le}"}} {n}' for le, n in buckets.items()]
    count = buckets["+Inf"]
    lines += [f'{NAME}_sum{{name="{name}",{labels}}} {total}']
    lines += [f'{NAME}_count{{name="{name}",{labels}}} {count}']
    return "\n".join(lines)


def _scrape(mutate: dict[str, float], update: dict[str, float], other: dict[str, float]) -> str:
    return "\n".join(
        [
            f"# HELP {NAME} Admission webhook latency",
            f"# TYPE {NAME} histogram",
            _series(f"clusters.mutate{SUFFIX}", 'operation="CREATE",rejected="false",type="admit"',
                    mutate, mutate["+Inf"] * 0.01),
            _series(f"clusters.mutate{SUFFIX}", 'operation="UPDATE",rejected="false",type="admit"',
                    update, update["+Inf"] * 0.02),
            _series("someone.else.example.com", 'operation="CREATE",rejected="false",type="admit"',
                    other, 1.0),
            'apiserver_request_total{code="200",verb="GET"} 12',
        ]
    )  # fmt: skip


BEFORE = _scrape(
    {"0.005": 2, "0.025": 3, "0.1": 4, "+Inf": 4},
    {"0.005": 0, "0.025": 0, "0.1": 0, "+Inf": 0},
    {"0.005": 1, "0.025": 1, "0.1": 1, "+Inf": 1},
)
AFTER = _scrape(
    # The burst: 100 CREATEs, 90 under 5 ms, 8 more under 25 ms, 2 more under 100 ms.
    {"0.005": 92, "0.025": 101, "0.1": 104, "+Inf": 104},
    {"0.005": 5, "0.025": 10, "0.1": 10, "+Inf": 10},
    {"0.005": 9, "0.025": 9, "0.1": 9, "+Inf": 9},
)


def test_parse_keeps_each_series_by_its_labels() -> None:
    series = fig.parse(AFTER, NAME)
    assert len(series) == 3
    create = next(h for labels, h in series.items() if ("operation", "CREATE") in labels
                  and ("name", f"clusters.mutate{SUFFIX}") in labels)  # fmt: skip
    assert create.buckets == {0.005: 92, 0.025: 101, 0.1: 104, math.inf: 104}
    assert create.count == 104
    assert create.total == pytest.approx(1.04)


def test_the_burst_is_the_difference_of_two_scrapes_and_other_webhooks_are_left_out() -> None:
    hists = fig.grouped(fig.parse(BEFORE, NAME), fig.parse(AFTER, NAME), fig.admission_key(SUFFIX))
    assert set(hists) == {"clusters.mutate CREATE", "clusters.mutate UPDATE"}
    create = hists["clusters.mutate CREATE"]
    assert create.count == 100
    assert create.buckets == {0.005: 90, 0.025: 98, 0.1: 100, math.inf: 100}


def test_quantiles_interpolate_inside_the_bucket_as_prometheus_does() -> None:
    hist = fig.Histogram({0.005: 90, 0.025: 98, 0.1: 100, math.inf: 100}, 100, 1.0)
    assert hist.quantile(0.5) == pytest.approx(0.005 * 50 / 90)
    assert hist.quantile(0.95) == pytest.approx(0.005 + 0.02 * 5 / 8)
    assert hist.quantile(0.99) == pytest.approx(0.025 + 0.075 * 1 / 2)
    assert hist.mean == pytest.approx(0.01)


def test_the_share_within_the_target_interpolates_too() -> None:
    hist = fig.Histogram({0.005: 90, 0.025: 98, 0.1: 100, math.inf: 100}, 100, 1.0)
    assert hist.share_within(0.020) == pytest.approx((90 + 8 * 15 / 20) / 100)
    assert hist.share_within(0.005) == pytest.approx(0.9)
    assert hist.share_within(1.0) == 1.0
    assert fig.Histogram({0.005: 1, math.inf: 4}, 4, 1.0).share_within(0.02) == 0.25


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    hist = fig.Histogram({0.005: 1, 0.025: 1, math.inf: 10}, 10, 5.0)
    assert hist.quantile(0.99) == 0.025


def test_no_observations_give_no_quantile() -> None:
    assert math.isnan(fig.Histogram({0.005: 0, math.inf: 0}, 0, 0).quantile(0.5))
    assert math.isnan(fig.Histogram().quantile(0.99))


def test_series_summed_into_one_group() -> None:
    a = fig.Histogram({0.005: 1, math.inf: 2}, 2, 0.5)
    b = fig.Histogram({0.005: 3, math.inf: 3}, 3, 0.01)
    both = a + b
    assert both.buckets == {0.005: 4, math.inf: 5}
    assert (both.count, both.total) == (5, pytest.approx(0.51))


def test_conversion_and_operator_series_are_grouped_by_direction_and_endpoint() -> None:
    conv = fig.CONVERSION
    text = "\n".join(
        [
            f'{conv}_bucket{{crd_name="clusters.k0smotron.io",from_version="k0smotron.io/v1beta1",'
            f'to_version="k0smotron.io/v1beta2",succeeded="true",le="0.005"}} 3',
            f'{conv}_bucket{{crd_name="clusters.k0smotron.io",from_version="k0smotron.io/v1beta1",'
            f'to_version="k0smotron.io/v1beta2",succeeded="true",le="+Inf"}} 4',
            f'{conv}_count{{crd_name="clusters.k0smotron.io",from_version="k0smotron.io/v1beta1",'
            f'to_version="k0smotron.io/v1beta2",succeeded="true"}} 4',
            f'{conv}_count{{crd_name="other.example.com",from_version="a",to_version="b"}} 9',
            f'{fig.OPERATOR}_bucket{{endpoint="convert",le="0.001"}} 4',
            f'{fig.OPERATOR}_bucket{{endpoint="convert",le="+Inf"}} 4',
            f'{fig.OPERATOR}_count{{endpoint="convert"}} 4',
        ]
    )
    conversions = fig.grouped(
        {}, fig.parse(text, conv), fig.conversion_key("clusters.k0smotron.io")
    )
    assert list(conversions) == ["convert k0smotron.io/v1beta1->k0smotron.io/v1beta2"]
    operator = fig.grouped({}, fig.parse(text, fig.OPERATOR), fig.operator_key)
    assert operator["convert"].count == 4


def test_the_table_and_the_json_carry_the_figures() -> None:
    hists = fig.grouped(fig.parse(BEFORE, NAME), fig.parse(AFTER, NAME), fig.admission_key(SUFFIX))
    run = fig.Run("through the webhooks", 100, 20.0, (1.5, 1.0, 0.5), fig.figures(hists))
    result = fig.Result(100, "kubectl create -f (one List)", "v1beta1", True, [run])
    text = "\n".join(result.lines())
    assert "through the webhooks" in text and "5.0 objects/s" in text
    assert "load average 1.50 1.00 0.50" in text
    row = next(line for line in result.lines() if "clusters.mutate CREATE" in line)
    assert row.split()[2:8] == ["100", "2.8", "17.5", "62.5", "10.0", "96.0%"]
    data = result.as_dict()
    mutate = data["runs"][0]["apiserver"]["clusters.mutate CREATE"]
    assert mutate["requests"] == 100
    assert mutate["p50_ms"] <= mutate["p95_ms"] <= mutate["p99_ms"]
    assert mutate["within_20ms_percent"] == 96.0


def test_manifest_is_one_list_of_minimal_clusters() -> None:
    body = manifest(3, "v1beta1", "bench")
    assert body["kind"] == "List"
    assert [i["metadata"]["name"] for i in body["items"]] == ["c00000", "c00001", "c00002"]
    assert {i["apiVersion"] for i in body["items"]} == {"k0smotron.io/v1beta1"}
