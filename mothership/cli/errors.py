"""Turn expected failures into one readable line and a stable exit code.

Scripts rely on the exit codes: 1 = the operation failed, 2 = bad usage or input,
3 = a prerequisite of the host is missing. Stack traces appear only with --debug.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

err = Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREREQUISITE = 3


@contextmanager
def friendly_errors(debug: bool = False) -> Iterator[None]:
    from mothership.testenv.gobuild import ToolsError
    from mothership.testenv.procs import ComponentFailed
    from mothership.testenv.realnode import HostNotReady

    codes: list[tuple[type[BaseException], int]] = [
        (ToolsError, EXIT_PREREQUISITE),
        (HostNotReady, EXIT_PREREQUISITE),
        (ComponentFailed, EXIT_FAILED),
        (FileNotFoundError, EXIT_USAGE),
        (ValueError, EXIT_USAGE),
        (TimeoutError, EXIT_FAILED),
    ]
    try:
        yield
    except tuple(c for c, _ in codes) as exc:
        if debug or os.environ.get("MOTHERSHIP_DEBUG"):
            raise
        code = next(code for cls, code in codes if isinstance(exc, cls))
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(code) from None


def reporter(console: Console) -> Callable[[str], None]:
    def report(message: str) -> None:
        console.print(f"[dim]•[/] {message}", highlight=False)

    return report
