"""Failures a user can act on, each with the exit code a front end reports for it.

Raised by the code every front end shares (specs/, bench/), and by the CLI itself;
`mothership.cli.errors` turns them into one readable line and the exit code:

  0  success
  1  the operation failed (API error, unreachable server, a component did not start)
  2  bad usage or invalid input (flags, manifests, field values); nothing was changed
  3  a prerequisite is missing: host tools, or the k0smotron.io CRDs in the cluster
  4  the named object does not exist
  5  timed out waiting, or the object is not ready yet (e.g. no kubeconfig yet)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PREREQUISITE = 3
EXIT_NOT_FOUND = 4
EXIT_TIMEOUT = 5


class UserError(Exception):
    """A failure the user can act on: the message says what failed and what to do."""

    code = EXIT_FAILED

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidInput(UserError):
    code = EXIT_USAGE


class NotFound(UserError):
    code = EXIT_NOT_FOUND


class NotReady(UserError):
    code = EXIT_TIMEOUT


class MissingPrerequisite(UserError):
    code = EXIT_PREREQUISITE
