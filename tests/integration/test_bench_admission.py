"""`mothership bench admission`, run as a user runs it, with a small burst on kwok.

The bench starts its own kwok mothership (in the test's temporary dir) and the operator,
and must stop both. Only plausibility is checked, never a time: every create passed each
webhook once, the quantiles are ordered, and the operator's own histogram saw at least
as many requests as the API server reported.

    python -m pytest tests/integration/test_bench_admission.py
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.leftovers import processes_mentioning

CLUSTERS = 20


@pytest.mark.kwok
def test_a_small_burst_through_the_webhooks(tmp_path: Path) -> None:
    state = tmp_path / "bench"
    done = subprocess.run(
        ["mothership", "bench", "admission", f"--clusters={CLUSTERS}", "--state-dir", str(state),
         "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    baseline, webhooks = data["runs"]
    assert baseline["label"] == "without webhooks"
    assert baseline["clusters"] == webhooks["clusters"] == CLUSTERS
    assert baseline["apiserver"] == {}  # nothing registered yet: no webhook was called
    assert webhooks["seconds"] > 0 and webhooks["objects_per_second"] > 0
    apiserver = webhooks["apiserver"]
    # Each create passes the mutating and the validating webhook exactly once; the
    # operator's own writes (its finalizer) come as UPDATEs and are counted apart.
    assert apiserver["clusters.mutate CREATE"]["requests"] == CLUSTERS
    assert apiserver["clusters.validate CREATE"]["requests"] == CLUSTERS
    # v1beta1 objects are stored as v1beta2: at least one conversion each.
    up = [v for k, v in apiserver.items() if k.startswith("convert") and k.endswith("v1beta2")]
    assert sum(v["requests"] for v in up) >= CLUSTERS
    for figures in apiserver.values():
        assert 0 <= figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    operator = webhooks["operator"]
    admitted = sum(v["requests"] for k, v in apiserver.items() if "mutate" in k)
    assert operator["mutate-cluster"]["requests"] >= admitted
    for figures in operator.values():
        assert 0 <= figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
    assert not processes_mentioning(state), "the bench left processes behind"
