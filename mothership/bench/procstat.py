"""Peak memory and CPU time of a process, from /proc (what the kernel accounted)."""

from __future__ import annotations

import os
from pathlib import Path


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def children(pid: int) -> list[int]:
    """Direct children of `pid` (every thread's list: a child belongs to the thread that
    made it)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def child_cpu_seconds(pid: int) -> float:
    """CPU time of the live children of `pid` (the operator's webhook server process);
    what a child that exited used is in neither figure, as the kernel accounts it to the
    parent only once reaped."""
    total = 0.0
    for child in children(pid):
        try:
            total += cpu_seconds(child)
        except OSError:
            continue
    return total


def child_rss_mib(pid: int, peak: bool = False) -> float:
    total = 0.0
    for child in children(pid):
        try:
            total += peak_rss_mib(child) if peak else rss_mib(child)
        except OSError:
            continue
    return total
