"""Process supervision: failures carry the log tail; stop never touches a reused pid."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mothership.testenv.procs import ComponentFailed, Supervisor, start_time, wait_for


def test_a_component_that_dies_reports_its_log_tail(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.start("broken", [sys.executable, "-c", "print('bind: address already in use'); exit(3)"])
    with pytest.raises(ComponentFailed) as failed:
        wait_for("broken", lambda: False, timeout=30, supervisor=sup, component="broken")
    assert "address already in use" in str(failed.value)
    assert str(sup.log_path("broken")) in str(failed.value)


def test_a_component_that_never_gets_healthy_times_out_with_its_log(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.start(
        "slow",
        [sys.executable, "-c", "import time; print('warming up', flush=True); time.sleep(60)"],
    )
    try:
        with pytest.raises(ComponentFailed, match="not ready after 1s") as failed:
            wait_for("slow", lambda: False, timeout=1, supervisor=sup, component="slow")
        assert "warming up" in str(failed.value)
    finally:
        assert sup.stop("slow")
    assert sup.get("slow") is None


def test_stop_ignores_a_pid_file_whose_process_is_someone_else(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.pid_dir.mkdir(parents=True)
    # pid 1 is real, but its start time is not the one recorded: not ours, must not be signalled.
    (sup.pid_dir / "impostor.pid").write_text(f"1 {(start_time(1) or 0) + 1}\n")
    assert sup.stop("impostor") is False
    assert not (sup.pid_dir / "impostor.pid").exists()
