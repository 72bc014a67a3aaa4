"""Ports for local components come from outside the kernel's ephemeral range."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from typing import Any

import pytest

from mothership.testenv import ports


def test_ports_lie_below_the_ephemeral_range_and_never_repeat() -> None:
    low, _ = ports._ephemeral_range()
    seen: set[int] = set()
    for _ in range(20):
        chosen = ports.free_ports(["a", "b", "c"])
        assert len(set(chosen.values())) == 3
        assert all(ports._LOWEST <= p < low for p in chosen.values()), chosen
        assert not seen & set(chosen.values())
        seen |= set(chosen.values())


def test_a_port_someone_listens_on_is_never_chosen(monkeypatch) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        port = taken.getsockname()[1]
        taken.listen()
        # The fallbacks were free a moment ago (a fixed neighbour of `port` may be the local
        # end of some connection on a busy host).
        spares = []
        for _ in range(5):
            with socket.socket() as spare:
                spare.bind(("0.0.0.0", 0))
                spares.append(spare.getsockname()[1])
        monkeypatch.setattr(ports, "_candidates", lambda: [port, *spares])
        monkeypatch.setattr(ports, "_handed_out", set())
        chosen = ports.free_ports(["x"])
    assert chosen["x"] != port


def test_running_out_of_ports_names_the_component(monkeypatch) -> None:
    monkeypatch.setattr(ports, "_candidates", lambda: [])
    with pytest.raises(RuntimeError, match="'health'"):
        ports.free_ports(["health"])


def _choose_in_a_child(claims: str, queue: Any) -> None:
    os.environ[ports.CLAIMS_ENV] = claims
    queue.put([p for _ in range(40) for p in ports.free_ports(["a", "b", "c"]).values()])


def test_processes_choosing_at_once_never_get_the_same_port(tmp_path, monkeypatch) -> None:
    """The claims file is what the processes share: 4 x 120 ports, no port twice, although
    each process draws from the same shuffled range."""
    claims = str(tmp_path / "claims")
    monkeypatch.setenv(ports.CLAIMS_ENV, claims)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_choose_in_a_child, args=(claims, queue)) for _ in range(4)]
    for w in workers:
        w.start()
    got = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
    every = [p for chosen in got for p in chosen]
    assert len(every) == 4 * 120 and len(set(every)) == len(every)


def test_a_claim_of_a_live_process_is_kept_and_a_dead_or_old_one_dropped(
    tmp_path, monkeypatch
) -> None:
    path = tmp_path / "claims"
    monkeypatch.setenv(ports.CLAIMS_ENV, str(path))
    now = time.time()
    dead = 2**22 + 11  # above the default pid_max: never a process
    path.write_text(
        f"21001 {os.getppid()} {now:.0f}\n"
        f"21002 {dead} {now:.0f}\n"
        f"21003 {os.getppid()} {now - ports.CLAIM_SECONDS - 5:.0f}\n"
        "not a claim\n"
    )
    monkeypatch.setattr(ports, "_candidates", lambda: [21001, 21002, 21003])
    monkeypatch.setattr(ports, "_handed_out", set())
    chosen = ports.free_ports(["x", "y"])
    assert sorted(chosen.values()) == [21002, 21003]
    kept = sorted(int(line.split()[0]) for line in path.read_text().splitlines())
    assert kept == [21001, 21002, 21003]
