"""One real-node bench at a time per user: an exclusive flock on a file in the state root.

The real node is one per host (its kube-proxy chains and bridge are global), and a second
bench on it would measure the first one's load. The holder writes its pid into the file,
so a bench that has to wait can say for whom.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mothership.testenv import paths

POLL_SECONDS = 0.1


def realnode_bench_lock() -> Path:
    """The lock file of real-node benches, next to the local motherships' state dirs."""
    return paths.state_root() / "realnode-bench.lock"


def holder(path: Path) -> int | None:
    """The pid written by the lock's holder (None: none written yet, or no such file)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def exclusive(
    path: Path, waiting: Callable[[int | None], None], timeout: float | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block.

    When another process (or another open file in this one) holds it, `waiting` is called
    once with the holder's pid, then this blocks until the lock is free; with a timeout it
    raises TimeoutError after that many seconds. The lock goes with the process, so a
    killed holder never leaves it stuck.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting(holder(path))
            _wait(fd, path, timeout)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _wait(fd: int, path: Path, timeout: float | None) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{path} is still held by pid {holder(path) or 'unknown'} after {timeout:g}s"
                ) from None
            time.sleep(min(POLL_SECONDS, left))
