"""`mothership bench chaos`, run as a user runs it: 8 Clusters, the operator SIGKILLed twice,
the API server SIGKILLed and restarted once, the datastore frozen 10 s once.

The bench starts its own kwok mothership (in the test's temporary dir) and the operator,
injects the faults, and must stop everything. Its invariants are checked from the
printed table, never a time: every fault happened, every Cluster converged, no
acknowledged create was lost, no PKI Secret changed, nothing was orphaned, no object was
written more than 3 times.

    python -m pytest tests/integration/test_bench_chaos.py
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.leftovers import processes_mentioning

CLUSTERS = 8


@pytest.mark.kwok
def test_operator_and_api_server_killed_and_datastore_stalled_while_clusters_are_made(
    tmp_path: Path,
) -> None:
    state = tmp_path / "bench"
    done = subprocess.run(
        ["mothership", "bench", "chaos", f"--clusters={CLUSTERS}", "--kills=2", "--seed=7",
         "--apiserver-restarts=1", "--datastore-stalls=1", "--stall-seconds=10",
         "--timeout=200", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=260, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    assert re.search(
        r"2 SIGKILLs of the operator, 1 API server SIGKILL \+ restart \(no /readyz for "
        r"[\d.]+ s\), 1 datastore stall \(SIGSTOP for 1\d s\)",
        out,
    ), out
    assert f"{CLUSTERS} / {CLUSTERS}" in out
    assert re.search(rf"acknowledged creates lost\s+0 of {CLUSTERS} ", out), out
    regenerated = re.search(r"CAs regenerated \(data lost\)\s+(\d+) of (\d+)", out)
    assert regenerated and regenerated[1] == "0" and int(regenerated[2]) == 4 * CLUSTERS, out
    assert re.search(r"orphaned objects\s+0\n", out), out
    writes = re.search(r"writes per object\s+max (\d+), p99 (\d+) over (\d+) objects", out)
    assert writes and 1 <= int(writes[2]) <= int(writes[1]) <= 3 and int(writes[3]) > 0, out
    assert out.rstrip().endswith("all hold"), out
    assert not processes_mentioning(state), "the bench left processes behind"
