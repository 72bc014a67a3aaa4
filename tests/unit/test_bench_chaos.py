"""The judgements of `mothership bench chaos`, on plain dicts.

A changed CA (new uid or new certificate) is caught once per Secret, an object whose
Cluster is gone or that points at no (or another) Cluster is an orphan, status writes
are counted apart from writes per object, and the table names every broken invariant.
"""

from __future__ import annotations

import base64
import random
import re
from typing import Any

from mothership.bench.chaos_result import (
    APISERVER_RESTART,
    DATASTORE_STALL,
    OPERATOR_KILL,
    CaLedger,
    Fault,
    Result,
    Writes,
    describe,
    fingerprint,
    lost,
    orphans,
    plan,
    shares,
)


def _secret(name: str, uid: str, crt: bytes) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "bench", "uid": uid},
        "data": {"tls.crt": base64.b64encode(crt).decode()},
    }


def _child(kind: str, name: str, cluster: str | None, owner_uid: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "bench", "labels": {}}
    if cluster:
        meta["labels"]["cluster"] = cluster
    if owner_uid:
        meta["ownerReferences"] = [{"kind": "Cluster", "name": cluster, "uid": owner_uid}]
    return {"kind": kind, "metadata": meta}


def test_fingerprint_is_of_the_certificate_and_empty_without_one() -> None:
    assert fingerprint(_secret("a-ca", "1", b"x")) == fingerprint(_secret("b-ca", "2", b"x"))
    assert fingerprint(_secret("a-ca", "1", b"x")) != fingerprint(_secret("a-ca", "1", b"y"))
    assert fingerprint({"metadata": {}}) == ""


def test_the_ledger_keeps_the_first_sighting_and_counts_each_changed_secret_once() -> None:
    ledger = CaLedger()
    assert ledger.observe(_secret("c1-ca", "u1", b"one")) is None
    assert ledger.observe(_secret("c1-ca", "u1", b"one")) is None  # a resync: same
    assert ledger.observe(_secret("c2-ca", "u2", b"two")) is None
    assert ledger.observe(_secret("c1-ca", "u1", b"new")) == "bench/c1-ca: certificate changed"
    assert ledger.observe(_secret("c1-ca", "u1", b"new")) is not None  # still not the first
    assert ledger.observe(_secret("c2-ca", "u9", b"two")) == "bench/c2-ca: uid changed"
    assert ledger.regenerated == 2
    assert ledger.changes == ["bench/c1-ca: certificate changed", "bench/c2-ca: uid changed"]


def test_orphans_are_children_without_their_cluster_or_an_owner_reference_to_it() -> None:
    clusters = {("bench", "c1"): "uid-1"}
    children = [
        _child("Secret", "c1-ca", "c1", "uid-1"),  # fine
        _child("Service", "kmc-c1", "c1", None),  # no owner reference
        _child("ConfigMap", "kmc-c1-config", "c1", "uid-0"),  # an earlier c1
        _child("StatefulSet", "kmc-c2", "c2", "uid-2"),  # c2 is gone
        _child("Secret", "unrelated", None, None),  # not a Cluster's child
    ]
    assert orphans(clusters, children) == [
        "Service bench/kmc-c1: no ownerReference to Cluster c1",
        "ConfigMap bench/kmc-c1-config: ownerReference to another Cluster c1 (stale uid)",
        "StatefulSet bench/kmc-c2: Cluster c2 does not exist",
    ]


def test_status_writes_are_counted_apart_and_the_quantiles_come_from_the_rest() -> None:
    counts = {f"secrets bench/c{i}-ca": 1 for i in range(98)}
    counts["statefulsets bench/kmc-c1"] = 2
    counts["clusters bench/c1"] = 4
    counts["clusters/status bench/c1"] = 9
    writes = Writes.from_counts(counts)
    assert writes.status_writes == 9
    assert len(writes.per_object) == 100
    assert writes.max == 4
    assert writes.p99 == 2
    assert writes.over() == ["clusters bench/c1: 4 writes"]
    assert Writes().max == Writes().p99 == 0


def test_writes_outside_the_clusters_namespace_are_registrations_counted_apart() -> None:
    counts = {
        "clusters bench/c1": 2,
        "customresourcedefinitions None/clusters.k0smotron.io": 6,
        "mutatingwebhookconfigurations None/mothership-k0smotron": 6,
        "secrets bench/None": 5,  # creates the kill cut off before their body was read
    }
    writes = Writes.from_counts(counts, "bench")
    assert writes.per_object == {"clusters bench/c1": 2}
    assert writes.unnamed == 5
    assert sum(writes.other.values()) == 12 and writes.over() == []


def test_shares_cover_every_cluster_once_one_share_per_kill() -> None:
    assert shares(50, 5) == [range(0, 10), range(10, 20), range(20, 30), range(30, 40),
                             range(40, 50)]  # fmt: skip
    assert shares(8, 0) == [range(0, 8)]
    assert shares(3, 5) == [range(0, 1), range(1, 2), range(2, 3)]
    assert [i for r in shares(7, 3) for i in r] == list(range(7))


def test_the_table_names_every_broken_invariant() -> None:
    good = Result(clusters=2, kills=1, converged=2, ca_secrets=8, recover_seconds=3.2)
    assert good.failures() == []
    assert good.lines()[-1].endswith("all hold")
    assert any("1 SIGKILLs" in line for line in good.lines())

    bad = Result(clusters=2, kills=1, converged=1)
    bad.ca.observe(_secret("c1-ca", "u1", b"one"))
    bad.ca.observe(_secret("c1-ca", "u2", b"one"))
    bad.orphans = ["Service bench/kmc-c1: no ownerReference to Cluster c1"]
    bad.writes = Writes.from_counts({"secrets bench/c1-ca": 4})
    bad.operator_exits = [1, 2]
    assert bad.failures() == [
        "not converged: 1 of 2",
        "CA regenerated: bench/c1-ca: uid changed",
        "orphan: Service bench/kmc-c1: no ownerReference to Cluster c1",
        "the operator exited by itself 2 time(s) (exit codes 1, 2): see logs/operator.log",
        "writes per object > 3: secrets bench/c1-ca: 4 writes",
    ]
    text = "\n".join(bad.lines())
    assert "FAILED" in text and "time to recover" in text and "- (end of the last fault" in text
    assert re.search(r"operator exits by itself +2 \(restarted at once", text)


def test_the_plan_keeps_the_kills_and_never_starts_with_another_fault() -> None:
    for seed in range(50):
        faults = plan(5, 1, 1, random.Random(seed))
        assert faults.count(OPERATOR_KILL) == 5
        assert faults.count(APISERVER_RESTART) == 1 and faults.count(DATASTORE_STALL) == 1
        assert faults[0] == OPERATOR_KILL, faults
    assert plan(0, 1, 1, random.Random(0)) in (
        [APISERVER_RESTART, DATASTORE_STALL],
        [DATASTORE_STALL, APISERVER_RESTART],
    )
    assert plan(0, 0, 0, random.Random(0)) == []
    assert plan(3, 1, 0, random.Random(4)) == plan(3, 1, 0, random.Random(4))  # a seed repeats


def test_the_faults_are_described_with_how_long_each_lasted() -> None:
    faults = [Fault(OPERATOR_KILL, 2.0, 0.1), Fault(APISERVER_RESTART, 9.0, 4.21),
              Fault(OPERATOR_KILL, 15.0, 0.1), Fault(DATASTORE_STALL, 20.0, 30.02)]  # fmt: skip
    text = describe(faults)
    assert text == (
        "2 SIGKILLs of the operator, 1 API server SIGKILL + restart (no /readyz for 4.2 s), "
        "1 datastore stall (SIGSTOP for 30 s)"
    )
    assert describe([Fault(OPERATOR_KILL, 1.0, 0.1)]) == "1 SIGKILLs of the operator"


def test_an_acknowledged_create_must_still_be_there_with_its_uid() -> None:
    acknowledged = {"c0": "u0", "c1": "u1", "c2": "", "c3": "u3"}
    present = {"c0": "u0", "c1": "other", "c2": "u2"}
    assert lost(acknowledged, present) == [
        "c1: acknowledged as uid u1, now uid other",
        "c3: acknowledged, now missing",
    ]
    assert lost({"c2": ""}, {"c2": "anything"}) == []  # a 409 on retry: uid never known
    bad = Result(clusters=1, kills=0, converged=1, lost=["c3: acknowledged, now missing"])
    assert bad.failures() == ["acknowledged write lost: c3: acknowledged, now missing"]
    assert any(line.startswith("acknowledged creates lost") for line in bad.lines())
