"""Running the bootstrap on an existing machine over SSH (asyncssh).

Host keys are not checked: the machine is named by the user in a RemoteMachine, as with
k0smotron, and the connection carries only the bootstrap (whose token expires). Every call
opens its own connection: provisioning is rare, and a cut connection must not poison the
next attempt. Keepalives notice a dead link within about half a minute instead of the
bootstrap's whole deadline.

The bootstrap itself runs detached from the connection (its own session, files under the
working directory named per RemoteMachine): an operator killed mid-way, or a link cut, ends
the connection but not the bootstrap, and the next attempt follows the run already going
instead of starting a second one on the same machine (k0smotron bootstraps twice there).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass

CONNECT_TIMEOUT = 15.0
KEEPALIVE_SECONDS, KEEPALIVE_MISSES = 10.0, 3
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
            keepalive_interval=KEEPALIVE_SECONDS,
            keepalive_count_max=KEEPALIVE_MISSES,
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


# Starts the bootstrap in a session of its own unless this RemoteMachine's run is already
# going or has ended; prints `started`, `running` or `finished <status>`. A finished run's
# status is handed over once and forgotten, so the attempt after a failure runs it again.
_START = r"""
run="$1"
mkdir -p "$(dirname "$run")"
if [ -e "$run.exit" ]; then
  echo "finished $(cat "$run.exit")"; tail -c 1500 "$run.log" 2>/dev/null
  rm -f "$run.exit" "$run.pid"; exit 0
fi
if [ -e "$run.pid" ] && kill -0 "$(cat "$run.pid")" 2>/dev/null; then echo running; exit 0; fi
cat > "$run.sh" && chmod 0700 "$run.sh"
detach=nohup; command -v setsid >/dev/null 2>&1 && detach=setsid
$detach sh -c 'sh "$1.sh" > "$1.log" 2>&1; echo $? > "$1.exit.tmp"; mv "$1.exit.tmp" "$1.exit"' \
  _ "$run" < /dev/null > /dev/null 2>&1 &
echo $! > "$run.pid"
echo started
"""

# Waits for the run to end; exits with its status (after its output's tail) and forgets it.
_FOLLOW = r"""
run="$1"
while [ ! -e "$run.exit" ]; do
  if ! { [ -e "$run.pid" ] && kill -0 "$(cat "$run.pid")" 2>/dev/null; }; then
    [ -e "$run.exit" ] && break
    echo "the bootstrap stopped without an exit status (machine restarted?)"
    rm -f "$run.pid"; exit 254
  fi
  sleep 1
done
status=$(cat "$run.exit")
tail -c 1500 "$run.log" 2>/dev/null
rm -f "$run.exit" "$run.pid"
exit "$status"
"""


def run_files(working_dir: str, run_id: str) -> str:
    """The common prefix of one RemoteMachine's bootstrap files on the machine."""
    return f"{working_dir.rstrip('/')}/bootstrap-{run_id}"


async def bootstrap(
    target: Target, script: str, *, working_dir: str, run_id: str, timeout: float = 900.0
) -> tuple[int, str]:
    """(exit status, output tail) of the bootstrap: started detached, or the run already
    going followed to its end. A connection lost meanwhile raises SSHError and leaves the
    run going; the next call follows it."""
    prefix = shlex.quote(run_files(working_dir, run_id))
    status, said = await run(target, f"sh -c {shlex.quote(_START)} _ {prefix}", stdin=script)
    first, _, rest = said.partition("\n")
    if status != 0 or not first.startswith(("started", "running", "finished")):
        return status or 1, f"could not start the bootstrap: {said}"
    if first.startswith("finished"):
        # It ended since the caller looked for the sentinel: the caller looks again.
        code = first.split()[-1]
        return (int(code) if code.isdigit() else 1), rest
    return await run(target, f"sh -c {shlex.quote(_FOLLOW)} _ {prefix}", timeout=timeout)
