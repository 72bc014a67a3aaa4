"""An image with an SSH client, for RemoteMachines provisioned from Jobs (`provisionJob`).

k0smotron's example names a public alpine image with ssh, which cannot be pulled here. The
local node gets `localhost/mothership/ssh-client:<OpenSSH version>`: Debian's ssh and scp
(the host has them: the test machines' sshd comes with them) with the libraries they load,
and busybox for the shell the Job's entrypoint runs in. No entrypoint of its own: the Job's
args are the script to run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from mothership.testenv import node_images
from mothership.testenv.images import Content

REPOSITORY = "localhost/mothership/ssh-client"
BINARIES = ("ssh", "scp")


class SSHClientImageError(RuntimeError):
    """The host lacks the SSH client; the message says how to get it."""


def _binaries() -> list[Path]:
    found = [shutil.which(name) for name in BINARIES]
    if not all(found):
        raise SSHClientImageError(
            "the ssh-client image takes ssh and scp from this host: install Debian's "
            "openssh-client (`bash scripts/setup-host`)"
        )
    return [Path(path) for path in found if path]


def openssh_version(banner: str) -> str:
    """`OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL ...` -> `9.2p1`."""
    match = re.match(r"OpenSSH_([0-9][0-9A-Za-z.]*)", banner.strip())
    if match is None:
        raise SSHClientImageError(f"not an OpenSSH version banner: {banner.strip()[:80]!r}")
    return match.group(1)


def image() -> str:
    ssh = _binaries()[0]
    said = subprocess.run([str(ssh), "-V"], capture_output=True, text=True, check=False)
    return f"{REPOSITORY}:{openssh_version(said.stderr or said.stdout)}"


def files() -> dict[str, Content]:
    """ssh and scp where scp looks for ssh (/usr/bin), their libraries, busybox's shell
    and a passwd with root (ssh refuses to run as a user it cannot name)."""
    binaries = _binaries()
    return {
        **node_images.busybox_files(),
        **{f"/usr/bin/{b.name}": b for b in binaries},
        **node_images.shared_libraries(binaries),
        "/root/.keep": b"",
    }
