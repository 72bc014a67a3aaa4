"""The node drain's table: what it prints, and which results fail the run."""

from __future__ import annotations

import re

from mothership.bench.node_drain import Drain

SPREAD = {"kmc-drain-0": "mothership-node", "kmc-drain-1": "mothership-node-2",
          "kmc-drain-2": "mothership-node-2"}  # fmt: skip


def _rows(drain: Drain) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in drain.lines() if line[0] != " ")


def test_a_drain_the_tenant_served_through_holds_every_invariant() -> None:
    good = Drain(placement_before=SPREAD, drained_seconds=21.7, recovered_seconds=25.2,
                 acknowledged=180, failed=2)  # fmt: skip
    assert good.moved == ["kmc-drain-1", "kmc-drain-2"]
    assert good.failures() == []
    rows = _rows(good)
    assert rows["drain invariants"] == "all hold"
    assert rows["node drain fault"] == (
        "`kubectl drain mothership-node-2` under 3 replicas on 2 nodes, 2 of them on the "
        "drained node"
    )
    assert rows["node drained in"] == "21.7 s"
    assert rows["drain time to recover"].startswith("25.2 s (drain start -> 3 replicas ready")
    assert rows["drain tenant writes"] == "180 acknowledged, 2 failed while replicas moved"
    assert rows["drain tenant writes lost"] == "0 of 180 acknowledged"


def test_each_broken_invariant_is_named() -> None:
    missed = Drain(placement_before={"kmc-drain-0": "mothership-node"}, acknowledged=40,
                   failed=5, last_error="503 unavailable", lost=["w-00007"])  # fmt: skip
    assert missed.failures() == [
        "drain: no replica ran on mothership-node-2 (the fault missed)",
        "drain: `kubectl drain mothership-node-2` did not finish",
        "drain: not 3 ready replicas off mothership-node-2 again",
        "drain: 5 of 45 writes failed (at most 2%; the last: 503 unavailable)",
        "drain: acknowledged write lost: w-00007",
    ]
    text = "\n".join(missed.lines())
    assert "drain invariants" in text and "FAILED" in text
    assert _rows(missed)["node drained in"] == "- (never)"
    # 2 % of writes is tolerated, one more is not.
    assert Drain(placement_before=SPREAD, drained_seconds=1, recovered_seconds=2,
                 acknowledged=98, failed=2).failures() == []  # fmt: skip
    assert len(Drain(placement_before=SPREAD, drained_seconds=1, recovered_seconds=2,
                     acknowledged=97, failed=3).failures()) == 1  # fmt: skip


def test_the_command_refuses_to_do_nothing_and_names_the_drain() -> None:
    from typer.testing import CliRunner

    from mothership.cli.main import app

    out = CliRunner().invoke(app, ["bench", "chaos", "--clusters", "0"])
    assert out.exit_code != 0
    assert "--node-drain" in out.output and "nothing to do" in out.output
