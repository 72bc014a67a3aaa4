"""Waiting with something to look at: a spinner with the current phase, on stderr.

On a terminal the spinner's text follows the phase; elsewhere (CI logs, pipes) each new
phase is printed once as a line, so logs show the path without repeating themselves.
stdout stays free for the command's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.markup import escape

from mothership.cli.errors import NotReady, err, transport_errors

Poll = Callable[[], tuple[bool, str]]


def wait(
    what: str,
    poll: Poll,
    timeout: float,
    *,
    interval: float = 1.0,
    hint: str = "",
) -> str:
    """Call poll() until it says done; return its last phase. NotReady (exit 5) on timeout.

    poll returns (done, phase). Connection errors count as a phase ("API not answering"),
    so a restarting API server does not end the wait; API refusals end it.
    """
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last = ""
    transient = transport_errors()
    with err.status(f"{escape(what)}", spinner="dots") as status:
        while True:
            try:
                done, phase = poll()
            except transient as exc:
                done, phase = False, f"API not answering ({type(exc).__name__})"
            if phase != last:
                if not err.is_terminal:
                    err.print(
                        f"[dim]•[/] {escape(what)}: {escape(phase)}",
                        highlight=False,
                        soft_wrap=True,
                    )
                last = phase
            elapsed = time.monotonic() - started
            status.update(f"{escape(what)}: {escape(phase)} [dim]({elapsed:.0f}s)[/]")
            if done:
                return phase
            if time.monotonic() >= deadline:
                raise NotReady(
                    f"{what}: not done after {timeout:.0f}s; last phase: {phase}"
                    + (f". {hint}" if hint else "")
                )
            time.sleep(min(interval, max(0.05, deadline - time.monotonic())))
