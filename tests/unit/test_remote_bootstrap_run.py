"""The detached bootstrap run of remote_ssh, its shell logic run for real with sh in a temp
dir (what the machine runs over SSH): started once, followed while it runs, its status
handed over once, a run that died without a status reported; and the retry backoff."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mothership.controllers import remote_machine, remote_ssh
from mothership.testenv.kube import wait_until


def _sh(script: str, prefix: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script, "_", prefix], input=stdin, capture_output=True, text=True, timeout=30
    )


def _start(prefix: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return _sh(remote_ssh._START, prefix, stdin)


def _follow(prefix: str) -> subprocess.CompletedProcess[str]:
    return _sh(remote_ssh._FOLLOW, prefix)


def test_a_run_is_started_once_and_followed_to_its_status(tmp_path: Path) -> None:
    prefix = remote_ssh.run_files(str(tmp_path / "wd"), "uid-1")
    gate, runs = tmp_path / "go", tmp_path / "runs"
    script = f"echo run >> {runs}\nwhile [ ! -e {gate} ]; do sleep 0.1; done\necho done; exit 3\n"
    first = _start(prefix, script)
    assert first.returncode == 0 and first.stdout.strip() == "started", first.stderr
    wait_until("the bootstrap ran", runs.exists, 10)
    # The connection that started it is gone; another attempt finds it running.
    again = _start(prefix, "echo a second script must not run >> {runs}\n")
    assert again.stdout.strip() == "running"
    gate.touch()
    followed = _follow(prefix)
    assert followed.returncode == 3 and "done" in followed.stdout
    assert runs.read_text() == "run\n", "the bootstrap ran twice"
    # Its status was handed over: the next attempt starts it afresh (a failed run is retried).
    assert _start(prefix, script).stdout.strip() == "started"
    assert _follow(prefix).returncode == 3
    assert runs.read_text() == "run\nrun\n"


def test_a_run_that_ended_unobserved_hands_over_its_status_once(tmp_path: Path) -> None:
    prefix = remote_ssh.run_files(str(tmp_path), "uid-2")
    assert _start(prefix, "echo fine\n").stdout.strip() == "started"
    wait_until("the run ended", Path(prefix + ".exit").exists, 10)
    seen = _start(prefix, "echo fine\n")
    assert seen.stdout.splitlines()[:2] == ["finished 0", "fine"]
    assert not Path(prefix + ".exit").exists() and not Path(prefix + ".pid").exists()


def test_a_run_that_died_without_a_status_is_reported(tmp_path: Path) -> None:
    prefix = remote_ssh.run_files(str(tmp_path), "uid-3")
    Path(prefix + ".pid").write_text("999999\n")  # a pid that is not running
    followed = _follow(prefix)
    assert followed.returncode == 254 and "without an exit status" in followed.stdout
    assert not Path(prefix + ".pid").exists()


@pytest.mark.parametrize(("failures", "delay"), [(1, 5), (2, 10), (3, 20), (7, 300), (30, 300)])
def test_unreachable_machines_are_retried_with_growing_delays(failures: int, delay: float) -> None:
    assert remote_machine.retry_delay(failures) == delay
