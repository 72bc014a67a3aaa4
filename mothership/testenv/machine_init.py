"""PID 1 of a test machine: builds the machine's view of the host, then reaps orphans.

It runs inside fresh mount, UTS, IPC, PID and cgroup namespaces, already inside the
machine's network namespace and cgroup (see `machines.py`). Everything it mounts lives in
its mount namespace only, so the kernel removes all of it when this process and its
descendants are gone: deleting a machine is killing this process.

What a node writes goes to the machine's own directories: overlays over /etc, /usr/local
and /opt (the host's files show through, writes stay in the machine), fresh /var/lib,
/var/log, /run and /tmp. /sys is remounted for the machine's network namespace, and the
cgroup hierarchies are remounted inside the cgroup namespace, so a kubelet with the
default cgroup root "/" creates its cgroups below the machine's subtree on the host.

Kept free of project imports: it starts fast and cannot be broken by the package.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

OVERLAID = ("/etc", "/usr/local", "/opt")
PRIVATE_DIRS = ("/var/lib", "/var/log")
TMPFS = ("/run", "/tmp")
HOST_ONLY_TREES = ("/root/", "/home/", "/tmp/", "/var/lib/", "/run/", "/var/run/")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSHD = Path("/usr/sbin/sshd")
SYSTEMD = Path("/lib/systemd/systemd")
UNITS = Path("/etc/systemd/system")
# Units a systemd machine must not run: they would change the host's kernel (sysctls,
# binfmt, modules, swap, the clock), manage its devices (udev), remount its disks, or
# wait for a console. The host's own enabled services are masked as well (see
# `_prepare_systemd`): a machine is a fresh server, not a second copy of this host.
SYSTEMD_MASKED = (
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "systemd-timesyncd.service",
    "swap.target",
    "getty.target",
    "console-getty.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
)
MACHINE_SSHD_UNIT = "mothership-machine-sshd.service"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(type, target, options) of the cgroup hierarchies as this namespace sees them."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _src, target, fstype, opts, *_ = line.split()
        if fstype in ("cgroup", "cgroup2") and target.startswith("/sys/fs/cgroup"):
            keep = [o for o in opts.split(",") if o not in ("rw", "ro", "relatime")]
            found.append((fstype, target, ",".join(keep)))
    return found


def _remount_sys() -> None:
    """A sysfs of the machine's network namespace, its cgroups under the cgroup namespace."""
    cgroups = _cgroup_mounts()
    _mount("-t", "sysfs", "-o", "nosuid,nodev,noexec", "sysfs", "/sys")
    if not cgroups:
        return
    if any(t == "/sys/fs/cgroup" for _, t, _ in cgroups):  # a unified-only host
        fstype, _, opts = next(c for c in cgroups if c[1] == "/sys/fs/cgroup")
        _mount("-t", fstype, *(("-o", opts) if opts else ()), fstype, "/sys/fs/cgroup")
        return
    _mount("-t", "tmpfs", "-o", "mode=755,nosuid,nodev,noexec", "cgroup", "/sys/fs/cgroup")
    for fstype, target, opts in cgroups:
        os.makedirs(target, exist_ok=True)
        _mount("-t", fstype, *(("-o", opts) if opts else ()), "cgroup", target)


def _drop_host_mounts() -> None:
    """The host's own mounts below these trees (its kubelet's pod volumes, secrets among
    them) were copied into this namespace: a machine must neither see nor pin them."""
    targets = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(HOST_ONLY_TREES):
            targets.append(target)
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def _build_filesystem(root: Path) -> None:
    root = Path(os.path.realpath(root))  # a real path for the mount options
    _mount("--make-rprivate", "/")
    _drop_host_mounts()
    _remount_sys()
    for path in OVERLAID:
        key = path.strip("/").replace("/", "-")
        upper, work = root / "upper" / key, root / "work" / key
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        os.makedirs(path, exist_ok=True)
        _mount(
            "-t",
            "overlay",
            "-o",
            f"lowerdir={path},upperdir={upper},workdir={work}",
            "overlay",
            path,
        )
    for path in PRIVATE_DIRS:
        own = root / "fs" / path.strip("/").replace("/", "-")
        own.mkdir(parents=True, exist_ok=True)
        _mount("--bind", str(own), path)
    for path in TMPFS:
        _mount("-t", "tmpfs", "-o", "mode=1777" if path == "/tmp" else "mode=755", "tmpfs", path)
    # Mounts made inside the machine (kubelet volumes, container rootfs) propagate between
    # the machine's own namespaces, as on a host with systemd; never to the real host.
    _mount("--make-rshared", "/")


def _identity(name: str, address: str) -> None:
    subprocess.run(["hostname", name], check=True)
    Path("/etc/hostname").write_text(name + "\n")
    Path("/etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n{address}\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    # A machine has no machine-id of the host's: kubelet and journald read it.
    Path("/etc/machine-id").write_text(os.urandom(16).hex() + "\n")


def _configure_sshd(authorized_key: str) -> bool:
    """Host keys of the machine's own and one authorized key (root, key only); False when
    sshd is not installed."""
    if not SSHD.exists():
        return False
    ssh_dir = Path("/etc/ssh")
    for old in ssh_dir.glob("ssh_host_*"):
        old.unlink()  # the host's keys: a machine is a host of its own
    subprocess.run(["ssh-keygen", "-A"], check=True, capture_output=True)
    (ssh_dir / "authorized_keys").mkdir(mode=0o755, exist_ok=True)
    (ssh_dir / "authorized_keys" / "root").write_text(authorized_key.strip() + "\n")
    conf = ssh_dir / "sshd_config.d"
    conf.mkdir(exist_ok=True)
    (conf / "00-mothership-machine.conf").write_text(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\n"
        "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n"
    )
    return True


def _start_sshd(root: Path, authorized_key: str) -> subprocess.Popen[bytes] | None:
    if not _configure_sshd(authorized_key):
        return None
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open(root / "sshd.log", "ab")  # noqa: SIM115 - kept open for the daemon's life
    return subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", "/etc/ssh/sshd_config"],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _prepare_systemd(authorized_key: str) -> None:
    """Turn the machine's /etc (an overlay of the host's) into that of a fresh server for
    systemd: no file systems to mount, the host's enabled services and the units above
    masked, and the machine's sshd as a unit of its own."""
    Path("/etc/fstab").write_text("# a mothership machine mounts nothing at boot\n")
    masked = set(SYSTEMD_MASKED)
    for wants in UNITS.glob("*.wants"):
        masked.update(u.name for u in wants.iterdir() if u.suffix in (".service", ".timer"))
    for unit in sorted(masked):
        target = UNITS / unit
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to("/dev/null")
    if _configure_sshd(authorized_key):
        # Started means listening: `create` returns when the boot is over and callers
        # connect at once.
        (UNITS / MACHINE_SSHD_UNIT).write_text(
            "[Unit]\nDescription=sshd of this mothership machine (key authentication only)\n"
            "[Service]\nRuntimeDirectory=sshd\n"
            f"ExecStart={SSHD} -D -e -f /etc/ssh/sshd_config\n"
            "ExecStartPost=/bin/sh -c 'for i in $(seq 200); do "
            "ss -Hltn sport = :22 | grep -q . && exit 0; sleep 0.1; done; exit 1'\n"
            "[Install]\nWantedBy=multi-user.target\n"
        )
        wants = UNITS / "multi-user.target.wants"
        wants.mkdir(exist_ok=True)
        (wants / MACHINE_SSHD_UNIT).symlink_to(UNITS / MACHINE_SSHD_UNIT)


def _boot_systemd(root: Path, marker: str) -> None:
    """Hand PID 1 to systemd (never returns). `container` tells systemd it runs in a
    container; `marker` (the machine's dir) is ignored by systemd and lets the host tell
    this PID from a reused one."""
    (root / "ready").write_text(str(os.getpid()) + "\n")
    env = {**os.environ, "container": "mothership-machine"}
    os.execve(str(SYSTEMD), [str(SYSTEMD), "--system", "--unit=multi-user.target", marker], env)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Ready means reachable: a caller that connects right after `create` must find sshd
    listening (under load it once took longer than the create). Gives up quietly when sshd
    exits or the time is up; its log says why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)


def _stop_everything(grace: float = 5.0) -> None:
    """SIGTERM to every process of the machine, SIGKILL after a grace period."""
    own = os.getpid()
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != own]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        if not [p for p in os.listdir("/proc") if p.isdigit() and int(p) != own]:
            return
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    # The machine's dir may sit below a path the new view hides (/tmp, /run): keep a handle.
    handle = os.open(argv[1], os.O_PATH | os.O_DIRECTORY)
    root = Path(f"/proc/self/fd/{handle}")
    meta = json.loads((root / "machine.json").read_text())
    os.environ.clear()
    os.environ.update({"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"})
    _build_filesystem(root)
    _identity(meta["name"], meta["address"])
    if meta.get("init") == "systemd":
        _prepare_systemd(meta.get("authorized_key", ""))
        _boot_systemd(root, argv[1])
    sshd = _start_sshd(root, meta.get("authorized_key", ""))
    if sshd is not None:
        _wait_listening(sshd, 22, timeout=20.0)
    (root / "ready").write_text(str(os.getpid()) + "\n")

    def _term(_signum: int, _frame: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    # PID 1 of the namespace: every orphan comes here, so reap them all.
    try:
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.5)
    except _Stop:
        _stop_everything()
    return 0


class _Stop(Exception):
    """SIGTERM reached PID 1: stop the machine's processes, then exit."""


if __name__ == "__main__":
    sys.exit(main(sys.argv))
