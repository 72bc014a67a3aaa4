"""The tenant datastore outage's table: what it prints, and which results fail the run."""

from __future__ import annotations

import re

from mothership.bench.tenant_outage import Outage


def _rows(outage: Outage) -> dict[str, str]:
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in outage.lines() if line[0] != " ")


def test_a_tenant_that_came_back_with_every_write_holds_every_invariant() -> None:
    good = Outage(60, stopped_for=60.4, acknowledged=420, before=12, refused=95,
                  recovered_seconds=3.25, available_again=True)  # fmt: skip
    assert good.failures() == []
    rows = _rows(good)
    assert rows["tenant invariants"] == "all hold"
    assert rows["tenant datastore fault"].startswith("its own PostgreSQL stopped for 60.4 s")
    assert rows["tenant writes"] == (
        "420 acknowledged (12 before the stop), 95 refused or cut off during the outage"
    )
    assert rows["tenant writes lost"].startswith("0 of 420 acknowledged")
    assert rows["tenant time to recover"].startswith("3.2 s")
    assert rows["tenant Available again"] == "yes"


def test_each_broken_invariant_is_named() -> None:
    bad = Outage(60, stopped_for=60.0, acknowledged=30, before=12, refused=0,
                 lost=["w-00003", "w-00017"])  # fmt: skip
    assert bad.failures() == [
        "tenant: no write failed while its datastore was stopped (the fault missed)",
        "tenant: not writing again after its datastore came back",
        "tenant: acknowledged write lost: w-00003",
        "tenant: acknowledged write lost: w-00017",
        "tenant: its Cluster is not Available again",
    ]
    text = "\n".join(bad.lines())
    assert "tenant invariants" in text and "FAILED" in text
    assert _rows(bad)["tenant time to recover"].startswith("- (never)")
    assert "  tenant: acknowledged write lost: w-00017" in bad.lines()


def test_the_command_refuses_to_do_nothing() -> None:
    from typer.testing import CliRunner

    from mothership.cli.main import app

    out = CliRunner().invoke(app, ["bench", "chaos", "--clusters", "0"])
    assert out.exit_code != 0
    assert "--tenant-datastore-stop" in out.output and "nothing to do" in out.output
