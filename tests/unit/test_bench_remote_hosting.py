"""`bench fleet --remote-host`: the hosting cluster's rows and the spec each Cluster gets."""

from __future__ import annotations

from collections import Counter

from mothership.bench import audit
from mothership.bench.fleet import Result
from mothership.bench.remote_hosting import SECRET, Hosting


def test_the_hosting_rows_are_printed_only_for_a_remote_run() -> None:
    plain = Result(clusters=10, concurrency=2)
    assert not any(line.startswith("hosting") for line in plain.lines())
    requests = audit.Requests(
        by_verb=Counter({"patch": 170, "list": 9, "create": 1}),
        writes_by_object=Counter({f"o{i}": 1 for i in range(169)} | {"ns": 2}),
    )
    remote = Result(
        clusters=10,
        concurrency=2,
        hosting=requests,
        hosting_resync_writes=0,
        hosting_resync_requests=3,
    )
    rows = [line for line in remote.lines() if line.startswith("hosting")]
    assert rows == [
        "hosting cluster requests      180 (18.0 per cluster) "
        "{'create': 1, 'list': 9, 'patch': 170}",
        "hosting writes per object     max 2, mean 1.01 over 170 objects",
        "hosting no-op resync          0 writes, 3 requests",
    ]


def test_every_cluster_names_the_one_kubeconfig_secret() -> None:
    hosting = Hosting(ms=None, namespace="bench")  # type: ignore[arg-type]
    assert hosting.spec == {
        "remoteHostCluster": {"kubeconfigRef": {"name": SECRET, "namespace": "bench"}}
    }
