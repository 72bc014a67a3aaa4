"""Turn expected failures into one readable line and a stable exit code.

Scripts rely on the exit codes (listed in `mothership --help`):

  0  success
  1  the operation failed (API error, unreachable server, a component did not start)
  2  bad usage or invalid input (flags, manifests, field values); nothing was changed
  3  a prerequisite is missing: host tools, or the k0smotron.io CRDs in the cluster
  4  the named object does not exist
  5  timed out waiting, or the object is not ready yet (e.g. no kubeconfig yet)

Stack traces appear only with --debug (or MOTHERSHIP_DEBUG=1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

# The error types and exit codes live below the CLI (bench/ and specs/ raise them too).
from mothership.errors import EXIT_FAILED as EXIT_FAILED
from mothership.errors import EXIT_NOT_FOUND as EXIT_NOT_FOUND
from mothership.errors import EXIT_OK as EXIT_OK
from mothership.errors import EXIT_PREREQUISITE as EXIT_PREREQUISITE
from mothership.errors import EXIT_TIMEOUT as EXIT_TIMEOUT
from mothership.errors import EXIT_USAGE as EXIT_USAGE
from mothership.errors import InvalidInput as InvalidInput
from mothership.errors import MissingPrerequisite as MissingPrerequisite
from mothership.errors import NotFound as NotFound
from mothership.errors import NotReady as NotReady
from mothership.errors import UserError as CliError

err = Console(stderr=True, soft_wrap=True)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 failed, 2 bad usage or input, 3 missing prerequisite "
    "(host tools, CRDs), 4 not found, 5 timed out or not ready."
)


# Which API server the command talks to, for messages about connections (set by connect()).
_target = {"where": ""}


def note_target(where: str) -> None:
    _target["where"] = where


def _httpx_classes(name: str) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of whichever httpx flavour lightkube uses."""
    return _httpx_classes("TransportError")


def http_status_errors() -> tuple[type[BaseException], ...]:
    """HTTP errors whose body was no Kubernetes Status (e.g. a plain '404 page not found')."""
    return _httpx_classes("HTTPStatusError")


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an API refusal, whether or not it came as a Kubernetes Status."""
    status = getattr(exc, "status", None)
    if status is not None and getattr(status, "code", None):
        return int(status.code)
    response = getattr(exc, "response", None)
    return int(response.status_code) if response is not None else None


def _classify(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for an exception we expect, None for a bug."""
    from lightkube.config.kubeconfig import exceptions as kube_config_errors
    from lightkube.core.exceptions import ApiError
    from pydantic import ValidationError

    from mothership.testenv.gobuild import ToolsError
    from mothership.testenv.procs import ComponentFailed
    from mothership.testenv.realnode import HostNotReady

    if isinstance(exc, CliError):
        return exc.code, str(exc)
    if isinstance(exc, ApiError):
        return api_error(exc)
    if isinstance(exc, http_status_errors()):
        code = status_code(exc)
        return (EXIT_NOT_FOUND if code == 404 else EXIT_FAILED), (
            f"the API server answered {code} to {exc.request.method} {exc.request.url}"  # type: ignore[attr-defined]
        )
    if isinstance(exc, ValidationError):
        return EXIT_USAGE, validation_message(exc)
    if isinstance(exc, kube_config_errors.ConfigError):
        return EXIT_USAGE, f"kubeconfig: {exc}"
    if isinstance(exc, transport_errors()):
        where = f" at {_target['where']}" if _target["where"] else ""
        return EXIT_FAILED, (
            f"cannot reach the Kubernetes API{where} ({type(exc).__name__}: {exc}); is the "
            "cluster up, and is this the right --kubeconfig/--context? For the local "
            "mothership: `mothership dev status`"
        )
    for cls, code in (
        (ToolsError, EXIT_PREREQUISITE),
        (HostNotReady, EXIT_PREREQUISITE),
        (ComponentFailed, EXIT_FAILED),
        (FileNotFoundError, EXIT_USAGE),
        (ValueError, EXIT_USAGE),
        (TimeoutError, EXIT_TIMEOUT),
    ):
        if isinstance(exc, cls):
            return code, str(exc)
    return None


def api_error(exc: object) -> tuple[int, str]:
    """Exit code and message for a refusal by the API server."""
    status = exc.status  # type: ignore[attr-defined]
    code = status.code or 0
    message = status.message or str(exc)
    if code == 404:
        return EXIT_NOT_FOUND, message
    if code in (400, 422):
        return EXIT_USAGE, message
    if code == 409:
        return EXIT_FAILED, message
    if code in (401, 403):
        return EXIT_FAILED, f"{message} (check the credentials and RBAC of this kubeconfig)"
    return EXIT_FAILED, f"the API server answered {code}: {message}"


def validation_message(exc: object) -> str:
    """A pydantic ValidationError as one line per field, with the field's path."""
    lines = []
    for error in exc.errors():  # type: ignore[attr-defined]
        path = ".".join(str(p) for p in error.get("loc", ()))
        lines.append(f"{path or '(object)'}: {error.get('msg')}")
    return "invalid input:\n  " + "\n  ".join(lines)


@contextmanager
def friendly_errors(debug: bool = False) -> Iterator[None]:
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        found = _classify(exc)
        if found is None or debug or os.environ.get("MOTHERSHIP_DEBUG"):
            raise
        code, message = found
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code) from None


def reporter(console: Console) -> Callable[[str], None]:
    def report(message: str) -> None:
        console.print(f"[dim]•[/] {message}", highlight=False)

    return report
