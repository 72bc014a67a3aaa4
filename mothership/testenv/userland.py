"""A small shell userland for the local control-plane image, so it can run the etcd scripts.

The managed etcd StatefulSet (mothership/render/etcd.py) runs shell scripts: the member
start script and the join script under ``/bin/bash``, the DNS check under ``/bin/sh``
with ``getent``. The upstream etcd image has them; our image held only Go binaries. It
gets Debian's statically linked busybox, linked under the command names those scripts
call, and two stand-ins busybox lacks:

* ``/bin/bash``: a two-line script handing over to busybox's ash. The scripts are POSIX
  sh (no bash features), so ash runs them as written.
* ``getent``: busybox has none; a tiny Go command answers the ``hosts`` databases through
  Go's resolver, which reads the same /etc/hosts, /etc/resolv.conf and nsswitch.conf.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from mothership.testenv.images import Content, Symlink, build_go_command

DEBIAN_PACKAGE = "busybox-static"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
# What the etcd scripts call (sh, awk, cat, mv, rm, sleep; test, echo, export and `.`
# are ash built-ins), plus a few commands that make `kubectl exec` into a pod useful.
APPLETS = (
    "sh",
    "awk",
    "cat",
    "mv",
    "rm",
    "sleep",
    "touch",
    "ls",
    "env",
    "grep",
    "ps",
    "nslookup",
)

BASH_SHIM = b"""#!/bin/sh
# Written by mothership: no bash in this image. The scripts run under /bin/bash here are
# POSIX sh, so busybox's ash runs them as they are.
exec /bin/sh "$@"
"""

GETENT_GO_SOURCE = """\
// Command getent answers `getent hosts|ahosts|ahostsv4|ahostsv6 NAME...` for scripts
// in an image without libc: one "ADDRESS NAME" line per address, and exit status 2 when a
// name does not resolve, as glibc's getent does. Go's resolver reads the same /etc/hosts,
// /etc/resolv.conf (search list, ndots) and /etc/nsswitch.conf.
package main

import (
\t"context"
\t"fmt"
\t"net"
\t"os"
\t"time"
)

var networks = map[string]string{
\t"hosts":    "ip",
\t"ahosts":   "ip",
\t"ahostsv4": "ip4",
\t"ahostsv6": "ip6",
}

func main() {
\tif len(os.Args) < 3 {
\t\tfmt.Fprintln(os.Stderr, "usage: getent hosts|ahosts|ahostsv4|ahostsv6 NAME...")
\t\tos.Exit(1)
\t}
\tnetwork, ok := networks[os.Args[1]]
\tif !ok {
\t\tfmt.Fprintf(os.Stderr, "getent: unsupported database %q\\n", os.Args[1])
\t\tos.Exit(1)
\t}
\tstatus := 0
\tfor _, name := range os.Args[2:] {
\t\tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
\t\tips, err := net.DefaultResolver.LookupIP(ctx, network, name)
\t\tcancel()
\t\tif err != nil || len(ips) == 0 {
\t\t\tstatus = 2
\t\t\tcontinue
\t\t}
\t\tfor _, ip := range ips {
\t\t\tfmt.Printf("%s %s\\n", ip, name)
\t\t}
\t}
\tos.Exit(status)
}
"""


class UserlandMissing(RuntimeError):
    """The host has no static busybox to put into the image; the message says how to get it."""


def find_busybox() -> Path:
    """Debian's static busybox: dynamically linked ones would need a libc in the image."""
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static(path):
            return path.resolve()
    found = shutil.which("busybox")
    hint = f" ({found} is dynamically linked)" if found else ""
    raise UserlandMissing(
        f"no static busybox on this host{hint}: the local control-plane image needs one to "
        f"run the managed etcd scripts. Install it with `apt-get install -y {DEBIAN_PACKAGE}` "
        "(or run `bash scripts/setup-host`)."
    )


def _is_static(path: Path) -> bool:
    """No PT_INTERP program header: the kernel runs it without a dynamic loader."""
    data = path.read_bytes()[:65536]
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit ELF only
        return False
    order: Literal["little", "big"] = "little" if data[5] == 1 else "big"
    phoff = int.from_bytes(data[32:40], order)
    phentsize = int.from_bytes(data[54:56], order)
    phnum = int.from_bytes(data[56:58], order)
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off : off + 4], order) == 3:  # PT_INTERP
            return False
    return True


def files(build_dir: Path, env: Mapping[str, str]) -> dict[str, Content]:
    """Paths in the image and what they hold: busybox and its links, the shim, getent."""
    out: dict[str, Content] = {"/bin/busybox": find_busybox()}
    out.update({f"/bin/{applet}": Symlink("busybox") for applet in APPLETS})
    out["/bin/bash"] = _shim(build_dir)
    out["/usr/bin/getent"] = build_go_command("getent", GETENT_GO_SOURCE, build_dir / "getent", env)
    return out


def _shim(build_dir: Path) -> Path:
    """The bash stand-in as an executable host file (image modes come from the host file)."""
    path = build_dir / "bash-shim"
    build_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != BASH_SHIM:
        path.write_bytes(BASH_SHIM)
    path.chmod(0o755)
    return path
