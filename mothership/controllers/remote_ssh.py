"""Running the bootstrap on an existing machine over SSH (asyncssh).

Host keys are not checked: the machine is named by the user in a RemoteMachine, as with
k0smotron, and the connection carries only the bootstrap (whose token expires). Every call
opens its own connection: provisioning is rare, and a cut connection must not poison the
next attempt.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass

CONNECT_TIMEOUT = 15.0
# asyncssh logs every connection and command at INFO: the operator's log is for its own steps.
logging.getLogger("asyncssh").setLevel(logging.WARNING)


class SSHError(Exception):
    """The machine could not be reached or refused us; the message names address and cause."""


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    user: str
    key_pem: str
    use_sudo: bool = False

    def __str__(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


def _sudo(target: Target, command: str) -> str:
    return f"sudo -n sh -c {shlex.quote(command)}" if target.use_sudo else command


async def run(
    target: Target, command: str, stdin: str = "", timeout: float = 600.0
) -> tuple[int, str]:
    """(exit status, combined output tail) of `command` run by the remote shell."""
    import asyncssh  # only operators that provision machines pay for it (memory, start-up)

    try:
        key = asyncssh.import_private_key(target.key_pem)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise SSHError(f"the SSH key is not a private key asyncssh can read: {exc}") from exc
    try:
        async with asyncssh.connect(
            target.address,
            port=target.port,
            username=target.user,
            client_keys=[key],
            known_hosts=None,
            connect_timeout=CONNECT_TIMEOUT,
        ) as conn:
            result = await conn.run(
                _sudo(target, command), input=stdin or None, timeout=timeout, check=False
            )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SSHError(f"{target}: {type(exc).__name__}: {exc}"[:400]) from exc
    output = _text(result.stdout) + _text(result.stderr)
    return int(result.exit_status if result.exit_status is not None else 255), output[-2000:]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value or "")


async def exists(target: Target, path: str) -> bool:
    status, _ = await run(target, f"test -e {shlex.quote(path)}", timeout=60)
    return status == 0


async def run_script(
    target: Target, script: str, *, as_file: bool, working_dir: str, timeout: float = 900.0
) -> tuple[int, str]:
    """Run a shell script: uploaded into `working_dir` first (commandsAsScript), or streamed
    to `sh -s` on the machine."""
    if not as_file:
        return await run(target, "sh -s", stdin=script, timeout=timeout)
    path = f"{working_dir.rstrip('/')}/bootstrap.sh"
    quoted = shlex.quote(path)
    upload = f"mkdir -p {shlex.quote(working_dir)} && cat > {quoted} && chmod 0700 {quoted}"
    status, output = await run(target, upload, stdin=script, timeout=120)
    if status != 0:
        return status, output
    return await run(target, f"sh {shlex.quote(path)}", timeout=timeout)
