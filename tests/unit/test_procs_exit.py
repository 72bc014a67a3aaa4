"""When a killed process counts as gone: only once no thread of it holds its files."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time

from mothership.testenv import procs


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.02)


def test_a_killed_server_is_gone_only_when_its_port_is_free_again() -> None:
    # A multi-threaded listener, as the API server is: its port must be free to bind
    # as soon as terminate() returns.
    server = textwrap.dedent(
        """
        import socket, sys, threading, time
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0)); s.listen()
        for _ in range(8):
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        print(s.getsockname()[1], flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", server], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    started = procs.start_time(proc.pid)
    assert started is not None and not procs._exited(proc.pid, started)
    procs.terminate(proc.pid, started, crash=True)
    assert procs._exited(proc.pid, started)
    again = socket.socket()
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    again.bind(("127.0.0.1", port))  # no "address already in use"
    again.listen()
    again.close()
    proc.wait(5)


def test_a_zombie_whose_threads_are_all_gone_has_exited() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    started = procs.start_time(proc.pid)
    assert started is not None and not procs._exited(proc.pid, started)
    proc.send_signal(signal.SIGKILL)
    _until(lambda: procs.start_time(proc.pid) is None)  # a zombie, not reaped yet
    assert procs._exited(proc.pid, started)
    proc.wait(5)
    assert procs._exited(proc.pid, started)
