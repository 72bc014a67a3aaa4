"""The real-node bench lock: one holder at a time, a waiter is told for whom it waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mothership.bench import hostlock

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys
from pathlib import Path
from mothership.bench.hostlock import exclusive
with exclusive(Path(sys.argv[1]), lambda pid: None):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
print("released", flush=True)
"""


def test_a_second_open_waits_and_times_out_naming_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / "bench.lock"
    seen: list[int | None] = []
    with hostlock.exclusive(lock, lambda pid: pytest.fail(f"no holder yet, told {pid}")):
        assert hostlock.holder(lock) == os.getpid()
        with (
            pytest.raises(TimeoutError, match=f"still held by pid {os.getpid()}"),
            hostlock.exclusive(lock, seen.append, timeout=0.2),
        ):
            pytest.fail("a second holder got the lock")
    assert seen == [os.getpid()]
    assert hostlock.holder(lock) is None  # released: no pid left behind
    with hostlock.exclusive(lock, lambda pid: pytest.fail("free again")):
        pass


def test_a_waiter_gets_the_lock_when_the_other_process_lets_go(tmp_path: Path) -> None:
    lock = tmp_path / "bench.lock"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "held"
        seen: list[int | None] = []

        def waiting(pid: int | None) -> None:
            seen.append(pid)
            child.stdin.close()  # type: ignore[union-attr]  # let go: the wait below ends

        with hostlock.exclusive(lock, waiting, timeout=60):
            assert hostlock.holder(lock) == os.getpid()
        assert seen == [child.pid]
        assert child.stdout.readline().strip() == "released"
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_lock_lives_in_the_state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTHERSHIP_STATE_DIR", str(tmp_path))
    assert hostlock.realnode_bench_lock() == tmp_path / "realnode-bench.lock"
