"""Free TCP ports for one mothership's components.

Ports are picked by the kernel (bind to port 0) and held open until every port of the
set is chosen, so one set never contains the same port twice. Two motherships started
at once can still race for a port between release and use; the caller retries start-up
on "address already in use", which the process supervisor reports.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_ports(names: list[str], host: str = "127.0.0.1") -> dict[str, int]:
    with ExitStack() as stack:
        chosen: dict[str, int] = {}
        for name in names:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            chosen[name] = sock.getsockname()[1]
        return chosen


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
