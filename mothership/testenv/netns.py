"""Run a process, or one Python call, inside a named network namespace.

A real node hosted in a machine (testenv/node_host.py) runs its components in the
machine's network namespace: only the network is switched, so they share the host's
mounts (the kubelet's volume mounts must be seen by containerd and runc) and process
tree (the supervisor tracks their pids as for any other component). Health probes that
dial loopback or a Service IP of that node must dial from the same namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    """The namespace is missing or could not be entered."""


def path(name: str) -> Path:
    return NETNS_DIR / name


def argv(name: str, command: Sequence[str]) -> list[str]:
    """`command` started in namespace `name` (no fork: the pid is the command's), or as is
    when `name` is empty."""
    if not name:
        return list(command)
    return ["nsenter", f"--net={path(name)}", "--", *command]


def ip_argv(name: str, *args: str) -> list[str]:
    """An `ip` command acting on namespace `name` (the host's when empty)."""
    return ["ip", *(("-n", name) if name else ()), *args]


def call(name: str, fn: Callable[[], T]) -> T:
    """fn() with its sockets opened in namespace `name` (in this thread when empty).

    setns(2) moves only the calling thread, so the call runs in a short-lived thread of
    its own and this interpreter's other threads stay where they are.
    """
    if not name:
        return fn()
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            _enter(name)
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    worker = threading.Thread(target=run, name=f"netns-{name}", daemon=True)
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]


def _enter(name: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    try:
        fd = os.open(path(name), os.O_RDONLY)
    except FileNotFoundError:
        raise NetnsError(f"network namespace {name!r} does not exist") from None
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"cannot enter network namespace {name!r}: {os.strerror(err)}")
    finally:
        os.close(fd)
