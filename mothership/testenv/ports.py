"""Free TCP ports for one mothership's components.

Ports come from below the kernel's ephemeral range
(`/proc/sys/net/ipv4/ip_local_port_range`), never from inside it. A port picked by
binding port 0 lies inside that range, and between its release and the component's
bind any outgoing connection on the host may take it as its local port: a CI run
lost an operator's health port exactly so ("address already in use" on a port
nothing listened on a second before). Below the range only explicit listeners
compete, and ports this process handed out are never handed out again.
"""

from __future__ import annotations

import random
import socket
from contextlib import ExitStack
from pathlib import Path

_LOWEST = 20000  # below: ports of well-known and registered services users run
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _candidates() -> list[int]:
    low, high = _ephemeral_range()
    ports = list(range(_LOWEST, low)) if low - _LOWEST >= 1000 else list(range(high + 1, 65536))
    random.shuffle(ports)
    return ports


def _hold(stack: ExitStack, host: str, port: int) -> bool:
    """Bind `port` on `host` until the set is chosen, if no address has it bound."""
    if host != "0.0.0.0" and not port_is_free(port, "0.0.0.0"):
        return False
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        return False
    stack.callback(sock.close)
    return True


def free_ports(names: list[str], host: str = "127.0.0.1") -> dict[str, int]:
    """Ports for `names`, each free on `host` and on all addresses right now.

    Each socket is held until the whole set is chosen so one set never repeats a port.
    """
    chosen: dict[str, int] = {}
    with ExitStack() as stack:
        candidates = iter(p for p in _candidates() if p not in _handed_out)
        for name in names:
            for port in candidates:
                if _hold(stack, host, port):
                    chosen[name] = port
                    break
            else:
                raise RuntimeError(f"no free TCP port below the ephemeral range for {name!r}")
    _handed_out.update(chosen.values())
    return chosen


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
