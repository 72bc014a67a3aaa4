"""kopf's copy of a Cluster older than the one a reconcile already started from is dropped;
copies the operator reads fresh (resyncs, child triggers) are never held back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mothership.controllers import cluster, runtime


@pytest.fixture
def rt() -> Iterator[runtime.Runtime]:
    before = runtime.RUNTIME
    runtime.RUNTIME = runtime.Runtime(client=None, applier=None)  # type: ignore[arg-type]
    yield runtime.RUNTIME
    runtime.RUNTIME = before


def _meta(version: str) -> dict[str, Any]:
    return {"namespace": "ns", "name": "c", "resourceVersion": version}


def test_older_than_the_last_reconciled_copy_is_stale(rt: runtime.Runtime) -> None:
    assert not cluster.stale_event(_meta("10"))  # nothing reconciled yet
    rt.reconciled_versions[("ns", "c")] = 20
    assert cluster.stale_event(_meta("19"))
    assert not cluster.stale_event(_meta("20"))  # the same copy again: not older
    assert not cluster.stale_event(_meta("21"))
    assert not cluster.stale_event({**_meta("5"), "name": "other"})


def test_versions_that_are_not_integers_are_never_compared(rt: runtime.Runtime) -> None:
    rt.reconciled_versions[("ns", "c")] = 20
    assert cluster.resource_version(_meta("abc")) is None
    assert not cluster.stale_event(_meta("abc"))
    assert not cluster.stale_event({"namespace": "ns", "name": "c"})
