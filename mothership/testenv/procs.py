"""Start, find and stop exactly the processes one mothership started.

Each process gets a pid file holding its pid and its kernel start time: a pid alone
can be reused by an unrelated process after a reboot or a crash, the pair cannot, so
`dev down` never signals a process it did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ComponentFailed(RuntimeError):
    """A component exited or never became healthy; the message carries its log tail."""


def start_time(pid: int) -> int | None:
    """Kernel start time (clock ticks since boot) of pid, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Field 2 (comm) may hold spaces and parentheses; fields after the last ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    started: int

    def alive(self) -> bool:
        return start_time(self.pid) == self.started


class Supervisor:
    """Pid files and logs for the processes of one state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.pid_dir = state_dir / "pids"
        self.log_dir = state_dir / "logs"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Running:
        current = self.get(name)
        if current and current.alive():
            return current
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path(name)
        with open(log, "ab") as fh:
            fh.write(f"\n=== {time.strftime('%FT%T')} starting: {' '.join(argv)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                list(argv),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                # Own session: the process outlives `mothership dev up` and a Ctrl-C in the
                # user's shell does not reach it.
                start_new_session=True,
            )
        started = start_time(proc.pid)
        if started is None:
            raise ComponentFailed(f"{name} exited at once:\n{log_tail(log)}")
        running = Running(name, proc.pid, started)
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid} {started}\n")
        return running

    def get(self, name: str) -> Running | None:
        path = self.pid_dir / f"{name}.pid"
        try:
            pid, started = path.read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        return Running(name, int(pid), int(started))

    def all(self) -> list[Running]:
        if not self.pid_dir.exists():
            return []
        found = [self.get(p.stem) for p in sorted(self.pid_dir.glob("*.pid"))]
        return [r for r in found if r]

    def check(self, name: str) -> None:
        """Raise with the log tail when the named process is no longer running."""
        running = self.get(name)
        if running is None or not running.alive():
            raise ComponentFailed(
                f"{name} is not running; last lines of {self.log_path(name)}:\n"
                f"{log_tail(self.log_path(name))}"
            )

    def stop(self, name: str, timeout: float = 15.0) -> bool:
        """SIGTERM, then SIGKILL after timeout. True if a live process was stopped."""
        running = self.get(name)
        pid_file = self.pid_dir / f"{name}.pid"
        if running is None:
            return False
        was_alive = running.alive()
        if was_alive:
            terminate(running.pid, running.started, timeout)
        pid_file.unlink(missing_ok=True)
        return was_alive


def terminate(pid: int, started: int, timeout: float = 15.0, *, crash: bool = False) -> None:
    """Stop one process we identified by (pid, start time); reap it if it is our child.

    `crash`: SIGKILL at once, no chance to shut down cleanly (chaos benches)."""
    steps = ((signal.SIGTERM, timeout),) if not crash else ()
    for sig, wait in (*steps, (signal.SIGKILL, 10.0)):
        if start_time(pid) != started:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if _exited(pid, started):
                return
            time.sleep(0.05)
    raise ComponentFailed(f"process {pid} survived SIGKILL")


def _exited(pid: int, started: int) -> bool:
    """Gone, or a zombie with no thread left: its sockets and files are closed.

    A killed multi-threaded process (Go's) shows its first thread as a zombie while the
    others are still exiting, and the files they share stay open until the last one is
    gone: a listener restarted on the same port at that moment finds it in use.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[19]) != started:
            return True
        if fields[0] != "Z":
            return False
        threads = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return True
    for tid in threads:
        try:
            state = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
        if state not in ("Z", "X"):
            return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_for(
    what: str,
    probe: object,
    *,
    timeout: float,
    supervisor: Supervisor | None = None,
    component: str | None = None,
    interval: float = 0.2,
) -> None:
    """Poll probe() until it returns truthy; fail early if the component died.

    The error names the component and carries the tail of its log, which is nearly
    always where the reason is.
    """
    assert callable(probe)
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        if supervisor and component:
            supervisor.check(component)
        try:
            if probe():
                return
        except Exception as exc:  # probes raise while the component is still starting
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            tail = ""
            if supervisor and component:
                log = supervisor.log_path(component)
                tail = f"\nlast lines of {log}:\n{log_tail(log)}"
            raise ComponentFailed(
                f"{what} not ready after {timeout:.0f}s ({last_error or 'probe false'}){tail}"
            )
        time.sleep(interval)
