"""Free TCP ports for one mothership's components.

Ports come from below the kernel's ephemeral range
(`/proc/sys/net/ipv4/ip_local_port_range`), never from inside it. A port picked by
binding port 0 lies inside that range, and between its release and the component's
bind any outgoing connection on the host may take it as its local port: a CI run
lost an operator's health port exactly so ("address already in use" on a port
nothing listened on a second before). Below the range only explicit listeners
compete, and ports this process handed out are never handed out again.

Other processes (a test run beside CI, a bench beside its own subprocesses) pick from the
same range: between one's choice and its component's bind, another could choose the same
port. So every choice is also written, under a file lock, to a claims file that all
processes read: a port claimed by a live process within CLAIM_SECONDS is not chosen again.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

_LOWEST = 20000  # below: ports of well-known and registered services users run
_handed_out: set[int] = set()
CLAIM_SECONDS = 900.0
"""How long a port chosen by one process stays out of the others' choices (while that
process lives): long enough for any component to have bound it."""
CLAIMS_ENV = "MOTHERSHIP_PORT_CLAIMS"


def claims_path() -> Path:
    return Path(os.environ.get(CLAIMS_ENV) or Path(tempfile.gettempdir()) / "mothership-ports")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _claims() -> Iterator[dict[int, tuple[int, float]]]:
    """port -> (pid, when) of every live claim, under an exclusive lock; what the caller
    adds is written back when it leaves."""
    path = claims_path()
    try:
        fh = open(path, "a+", encoding="ascii")  # noqa: SIM115 - closed below
    except OSError:  # another user's file in a shared /tmp: choose without it, as before
        yield {}
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        now = time.time()
        claims: dict[int, tuple[int, float]] = {}
        for line in fh.read().splitlines():
            try:
                port, pid, when = line.split()
                entry = (int(pid), float(when))
            except ValueError:
                continue  # a torn or foreign line: drop it
            if now - entry[1] < CLAIM_SECONDS and _alive(entry[0]):
                claims[int(port)] = entry
        yield claims
        fh.seek(0)
        fh.truncate()
        fh.write("".join(f"{p} {pid} {when:.0f}\n" for p, (pid, when) in claims.items()))


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
    with _claims() as claims, ExitStack() as stack:
        candidates = iter(p for p in _candidates() if p not in _handed_out and p not in claims)
        for name in names:
            for port in candidates:
                if _hold(stack, host, port):
                    chosen[name] = port
                    break
            else:
                raise RuntimeError(f"no free TCP port below the ephemeral range for {name!r}")
        now = time.time()
        claims.update({port: (os.getpid(), now) for port in chosen.values()})
    _handed_out.update(chosen.values())
    return chosen


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
