"""`bench fleet --shared-postgres`: the server's memory figure and the extra table row."""

from __future__ import annotations

import os

from mothership.bench import procstat
from mothership.bench.fleet import Result
from mothership.bench.shared_datastore import pss_mib


def test_pss_of_a_live_process_is_at_most_its_rss_and_a_gone_one_is_zero() -> None:
    pss = pss_mib(os.getpid())
    assert 0 < pss <= procstat.rss_mib(os.getpid()) + 1
    assert pss_mib(2**22 + 7) == 0.0  # above the kernel's pid_max default: never a process


def test_the_shared_row_is_printed_only_for_a_shared_run() -> None:
    plain = Result(clusters=10, concurrency=2)
    assert not any("shared PostgreSQL" in line for line in plain.lines())
    shared = Result(
        clusters=10,
        concurrency=2,
        shared_databases=10,
        shared_server_mib=61.25,
        shared_server_processes=9,
    )
    row = next(line for line in shared.lines() if line.startswith("shared PostgreSQL"))
    assert "10 tenant databases" in row and "61.2 MiB PSS over 9 processes" in row
