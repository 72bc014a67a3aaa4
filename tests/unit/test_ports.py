"""Ports for local components come from outside the kernel's ephemeral range."""

from __future__ import annotations

import socket

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
