"""Machines: separate hosts on one Linux box, where workers join as they would anywhere.

A machine is a network namespace with one veth into a host bridge, a process tree of its
own (a PID namespace whose PID 1 is `machine_init.py`), a cgroup subtree of its own (a
cgroup namespace rooted at `/mothership-machines/<netns>` in every hierarchy), and a
filesystem view where what a node writes stays in the machine (see `machine_init.py`).
An sshd runs inside with key authentication only.

Two flavours, as real workers come:

- **edge**: behind NAT. Its address is on the edge LAN (`10.251.0.0/24`, bridge
  `mshedge0`); traffic it opens to anything else is masqueraded, and nothing outside the
  LAN can open a connection to it (the host and everything it routes, pods of the
  mothership included, are refused). Machines on the same edge LAN see each other, like
  the nodes of one edge site.
- **reachable**: an address the mothership can reach (`10.252.0.0/24`, bridge
  `mshreach0`), e.g. for SSH, as a cloud VM or a bare-metal host with a routable address.

Bridges, addresses and iptables chains are host-wide (several motherships share them);
the machines themselves belong to the mothership whose state dir holds them, and
`mothership dev down` deletes them. Deleting a machine leaves nothing behind: its
processes, mounts, network namespace, veth, cgroups and state dir go, and when it was the
last machine on the host, the bridges and chains too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from mothership.testenv.config import POD_RANGES, REACHABLE_LAN_CIDR, REAL_HOST_IP, SERVICE_RANGES
from mothership.testenv.netdelay import READY

# A machine's filesystem is the host's disk, shared with everything else on a dev host
# (build caches, test runs): a kubelet joined here with upstream's eviction thresholds
# (imagefs.available<15%) would evict pods whenever that disk is busy. Joins into machines
# pass these, as the local mothership's own kubelet sets them (testenv/realnode.py).
SHARED_DISK_JOIN_ARGS = (
    "--kubelet-arg=--eviction-hard=memory.available<100Mi,nodefs.available<1%,"
    "imagefs.available<1%,nodefs.inodesFree<1%",
)
Flavour = Literal["edge", "reachable"]
FLAVOURS: tuple[Flavour, ...] = ("edge", "reachable")
# What PID 1 of a machine is: `plain` (machine_init.py, the default: quick, light) or
# `systemd`, the host's systemd booted as the machine's init, as on a real server, so that
# the join's unit files, `systemctl` and journald run for real.
Init = Literal["plain", "systemd"]
INITS: tuple[Init, ...] = ("plain", "systemd")
SYSTEMD = Path("/lib/systemd/systemd")
# systemd's poweroff request; in a container (which it sees from $container) it exits after
# stopping its units, and the kernel ends the rest of the PID namespace with it.
SYSTEMD_POWEROFF = signal.SIGRTMIN + 4


@dataclass(frozen=True)
class Lan:
    bridge: str
    cidr: str
    gateway: str

    def address(self, index: int) -> str:
        return f"{self.gateway.rsplit('.', 1)[0]}.{index + 1}"


LANS: dict[str, Lan] = {
    "edge": Lan("mshedge0", "10.251.0.0/24", "10.251.0.1"),
    "reachable": Lan("mshreach0", REACHABLE_LAN_CIDR, "10.252.0.1"),
}
NETNS_PREFIX = "mshm"
VETH_PREFIX = "mshv"
CGROUP_PARENT = "mothership-machines"
MAX_INDEX = 250
FILTER_CHAIN = "MSHIP-MACHINES"
NAT_CHAIN = "MSHIP-MACHINES-NAT"
RAW_CHAIN = "MSHIP-MACHINES-RAW"
IMPAIR_COMMENT = "mothership-impairment"
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
MACHINE_FILE = "machine.json"
LOCK_FILE = Path("/run/lock/mothership-machines.lock")
INIT_SCRIPT = Path(__file__).with_name("machine_init.py")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class MachineError(RuntimeError):
    """A machine could not be created, found or changed; the message says what to do."""


class MachineUsageError(MachineError):
    """A value given for a machine is out of range: the caller's input was wrong, not the
    machine (the CLI exits with its usage code)."""


@dataclass
class Machine:
    name: str
    flavour: Flavour
    index: int
    address: str
    dir: Path
    authorized_key: str = ""
    init: Init = "plain"
    pid: int | None = None  # PID 1 of the machine, as the host sees it
    holder_pid: int | None = None  # `unshare`, its parent

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.index}"

    @property
    def veth(self) -> str:
        return f"{VETH_PREFIX}{self.index}"

    @property
    def lan(self) -> Lan:
        return LANS[self.flavour]

    @property
    def cgroup(self) -> str:
        return f"/{CGROUP_PARENT}/{self.netns}"

    def running(self) -> bool:
        return self.pid is not None and _is_machine_init(self.pid, self.dir)

    @property
    def state(self) -> str:
        return "running" if self.running() else "stopped"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "flavour": self.flavour,
            "address": self.address,
            "state": self.state,
            "init": self.init,
            "netns": self.netns,
            "pid": self.pid,
        }

    def save(self) -> None:
        data = asdict(self)
        data["dir"] = str(self.dir)
        (self.dir / MACHINE_FILE).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Machine:
        data = json.loads((directory / MACHINE_FILE).read_text())
        data["dir"] = Path(data["dir"])
        return cls(**data)


# --- helpers ------------------------------------------------------------------------------------


def _sh(
    *argv: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input, check=False)
    if check and proc.returncode != 0:
        raise MachineError(f"`{' '.join(argv)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def _is_machine_init(pid: int, directory: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # machine_init.py passes the machine's dir on to systemd as a marker (PID 1 ignores
    # arguments it does not know), so a reused PID is never taken for the machine.
    started_by_us = str(INIT_SCRIPT).encode() in cmdline or cmdline[0] == str(SYSTEMD).encode()
    return started_by_us and str(directory).encode() in cmdline


def machines_dir(state_dir: Path) -> Path:
    return state_dir / "machines"


def ssh_key(state_dir: Path) -> Path:
    """The mothership's key for its machines (created on first use)."""
    key = machines_dir(state_dir) / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        _sh(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "mothership-machines",
            "-f",
            str(key),
        )
    return key


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    """Indices, bridges and chains are host-wide: one change at a time."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _netns_in_use() -> set[int]:
    used = set()
    netns_dir = Path("/run/netns")
    if netns_dir.exists():
        for entry in netns_dir.iterdir():
            m = re.fullmatch(rf"{NETNS_PREFIX}(\d+)", entry.name)
            if m:
                used.add(int(m.group(1)))
    return used


def _cgroup_hierarchies() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]
    return [
        base / d
        for d in sorted(os.listdir(base))
        if (base / d).is_dir() and not (base / d).is_symlink()
    ]


def _cgroup_dirs(machine: Machine) -> list[Path]:
    return [h / CGROUP_PARENT / machine.netns for h in _cgroup_hierarchies()]


def _make_cgroups(machine: Machine) -> None:
    for h in _cgroup_hierarchies():
        parent = h
        for part in (CGROUP_PARENT, machine.netns):
            child = parent / part
            child.mkdir(exist_ok=True)
            # cgroup v1 cpuset: a new group has no CPUs or memory nodes until given some.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (child / knob).exists() and not (child / knob).read_text().strip():
                    (child / knob).write_text((parent / knob).read_text())
            parent = child


def _cgroup_pids(machine: Machine) -> set[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs(machine):
        # os.walk, not rglob: a systemd inside the machine removes its own cgroups while
        # we look, and os.walk passes over a directory that vanished instead of raising.
        for root, _dirs, files in os.walk(d):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in Path(root, "cgroup.procs").read_text().split())
    return pids


def _remove_cgroups(machine: Machine) -> None:
    for d in _cgroup_dirs(machine):
        if not d.exists():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()
    for h in _cgroup_hierarchies():
        with contextlib.suppress(OSError):
            (h / CGROUP_PARENT).rmdir()  # only when no machine is left


def _join_cgroup(machine: Machine) -> None:
    """Runs in the child between fork and exec: it and all it starts belong to the machine."""
    pid = str(os.getpid())
    for d in _cgroup_dirs(machine):
        with contextlib.suppress(OSError):
            (d / "cgroup.procs").write_text(pid)


# --- host network -------------------------------------------------------------------------------


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _sh("iptables", "-w", "5", *args, check=check)


def _ensure_chain(table: str, chain: str, hooks: Sequence[str], rules: list[list[str]]) -> None:
    if _iptables("-t", table, "-n", "-L", chain, check=False).returncode != 0:
        _iptables("-t", table, "-N", chain)
    _iptables("-t", table, "-F", chain)
    for rule in rules:
        _iptables("-t", table, "-A", chain, *rule)
    for hook in hooks:
        if _iptables("-t", table, "-C", hook, "-j", chain, check=False).returncode != 0:
            _iptables("-t", table, "-I", hook, "1", "-j", chain)


def _setup_host_network() -> None:
    for lan in LANS.values():
        if _sh("ip", "link", "show", lan.bridge, check=False).returncode != 0:
            _sh("ip", "link", "add", lan.bridge, "type", "bridge")
        if f" {lan.gateway}/" not in _sh("ip", "-o", "-4", "addr", "show", lan.bridge).stdout:
            _sh("ip", "addr", "add", f"{lan.gateway}/24", "dev", lan.bridge)
        _sh("ip", "link", "set", lan.bridge, "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    edge, reach = LANS["edge"], LANS["reachable"]
    forward: list[list[str]] = []
    forward += [
        # An edge site's machines see each other on their LAN ...
        ["-i", edge.bridge, "-o", edge.bridge, "-j", "ACCEPT"],
        # ... and anything answers them; nothing else opens a connection to them.
        ["-d", edge.cidr, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
        ["-d", edge.cidr, "-j", "REJECT", "--reject-with", "icmp-host-prohibited"],
        ["-s", edge.cidr, "-j", "ACCEPT"],
        ["-s", reach.cidr, "-j", "ACCEPT"],
        ["-d", reach.cidr, "-j", "ACCEPT"],
    ]
    output = [
        ["-d", edge.cidr, "-m", "conntrack", "--ctstate", "NEW", "-j", "REJECT",
         "--reject-with", "icmp-host-prohibited"],
    ]  # fmt: skip
    # Machines reach the mothership as remote workers do: at the node's address (NodePorts,
    # the registry and download mirrors), never at the mothership's pod or Service
    # addresses, which only its own node can route. Dropped before NAT (raw table): the
    # mothership's kube-proxy would otherwise turn a Service address into a local one.
    # POD_RANGES and SERVICE_RANGES hold those of every real node, the host's and those in
    # machines.
    raw = []
    for lan in LANS.values():
        raw += [
            ["-s", lan.cidr, "-d", f"{REAL_HOST_IP}/32", "-j", "ACCEPT"],
            ["-s", lan.cidr, "-d", POD_RANGES, "-j", "DROP"],
            ["-s", lan.cidr, "-d", SERVICE_RANGES, "-j", "DROP"],
        ]
    _ensure_chain("raw", RAW_CHAIN, ("PREROUTING",), raw)
    _ensure_chain("filter", FILTER_CHAIN, ("FORWARD", "OUTPUT"), forward)
    _ensure_chain("filter", FILTER_CHAIN + "-OUT", ("OUTPUT",), output)
    _ensure_chain(
        "nat",
        NAT_CHAIN,
        ("POSTROUTING",),
        [
            ["-s", edge.cidr, "!", "-d", edge.cidr, "-j", "MASQUERADE"],
            # Reachable machines keep their address towards the host, its LANs and pods;
            # beyond the host (its resolvers, say) they leave through its address, as a
            # VM's private address would (a real node in a machine forwards DNS there).
            ["-s", reach.cidr, "-d", reach.cidr, "-j", "RETURN"],
            ["-s", reach.cidr, "-d", edge.cidr, "-j", "RETURN"],
            ["-s", reach.cidr, "-d", POD_RANGES, "-j", "RETURN"],
            ["-s", reach.cidr, "-d", SERVICE_RANGES, "-j", "RETURN"],
            ["-s", reach.cidr, "-j", "MASQUERADE"],
        ],
    )


def _teardown_host_network() -> None:
    for table, chain, hooks in (
        ("filter", FILTER_CHAIN, ("FORWARD", "OUTPUT")),
        ("filter", FILTER_CHAIN + "-OUT", ("OUTPUT",)),
        ("nat", NAT_CHAIN, ("POSTROUTING",)),
        ("raw", RAW_CHAIN, ("PREROUTING",)),
    ):
        for hook in hooks:
            while _iptables("-t", table, "-D", hook, "-j", chain, check=False).returncode == 0:
                pass
        _iptables("-t", table, "-F", chain, check=False)
        _iptables("-t", table, "-X", chain, check=False)
    for lan in LANS.values():
        _sh("ip", "link", "del", lan.bridge, check=False)


def host_network_leftovers() -> list[str]:
    """What of the shared machine network exists on the host (empty when none)."""
    found = [
        lan.bridge
        for lan in LANS.values()
        if _sh("ip", "link", "show", lan.bridge, check=False).returncode == 0
    ]
    for table in ("filter", "nat", "raw"):
        rules = _iptables("-t", table, "-S", check=False).stdout
        found += [line for line in rules.splitlines() if "MSHIP-MACHINES" in line]
    return found


# --- lifecycle ----------------------------------------------------------------------------------


def validate_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise MachineError(
            f"machine name {name!r} is not valid: use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (it becomes the host name)"
        )


def find(state_dir: Path, name: str) -> Machine:
    directory = machines_dir(state_dir) / name
    if not (directory / MACHINE_FILE).exists():
        known = ", ".join(m.name for m in list_machines(state_dir)) or "none"
        raise MachineError(
            f"no machine {name!r} (machines: {known}); create it with "
            f"`mothership dev machine create {name}`"
        )
    return Machine.load(directory)


def list_machines(state_dir: Path) -> list[Machine]:
    root = machines_dir(state_dir)
    if not root.exists():
        return []
    return [Machine.load(d) for d in sorted(root.iterdir()) if (d / MACHINE_FILE).exists()]


def create(
    state_dir: Path,
    name: str,
    flavour: Flavour = "edge",
    timeout: float = 30.0,
    init: Init = "plain",
) -> Machine:
    """A new running machine; refused if the name is taken. With init="systemd" it returns
    once systemd has finished booting (`systemctl is-system-running --wait`)."""
    validate_name(name)
    if flavour not in FLAVOURS:
        raise MachineError(f"flavour {flavour!r} is not one of {', '.join(FLAVOURS)}")
    if init not in INITS:
        raise MachineUsageError(f"init {init!r} is not one of {', '.join(INITS)}")
    if init == "systemd" and not SYSTEMD.exists():
        raise MachineError(
            f"a systemd machine boots the host's systemd, and {SYSTEMD} is missing; "
            "install the `systemd` package or create the machine without --systemd"
        )
    if os.geteuid() != 0:
        raise MachineError("machines need root (network namespaces, mounts, cgroups)")
    for tool in ("ip", "iptables", "nsenter", "unshare", "mount"):
        if not shutil.which(tool):
            raise MachineError(f"`{tool}` is not on PATH; run `bash scripts/setup-host`")
    if not Path("/usr/sbin/sshd").exists():
        raise MachineError(
            "sshd (/usr/sbin/sshd) is missing: every machine runs one; run "
            "`bash scripts/setup-host` (it installs openssh-server)"
        )
    directory = machines_dir(state_dir) / name
    if (directory / MACHINE_FILE).exists():
        raise MachineError(
            f"machine {name!r} exists already; delete it first with "
            f"`mothership dev machine delete {name}`"
        )
    key = ssh_key(state_dir)
    with _host_lock():
        used = _netns_in_use()
        free = [i for i in range(2, MAX_INDEX) if i not in used]
        if not free:
            raise MachineError(f"all {MAX_INDEX - 2} machine slots of this host are in use")
        index = free[0]
        machine = Machine(
            name=name,
            flavour=flavour,
            index=index,
            address=LANS[flavour].address(index),
            dir=directory,
            authorized_key=key.with_suffix(".pub").read_text().strip(),
            init=init,
        )
        directory.mkdir(parents=True, exist_ok=True)
        machine.save()
        try:
            _setup_host_network()
            _create_netns(machine)
            _make_cgroups(machine)
        except BaseException:
            _destroy(machine)
            raise
    try:
        _start_init(machine, timeout)
        if init == "systemd":
            _wait_booted(machine, timeout)
    except BaseException:
        delete(state_dir, name)
        raise
    return machine


def _wait_booted(machine: Machine, timeout: float) -> None:
    """systemd's boot is over: `running`, or `degraded` when a unit failed (a machine is
    usable then too, as a server is; the failed units are named in the error otherwise)."""
    deadline = time.monotonic() + timeout
    state = "not started"
    assert machine.pid is not None
    while time.monotonic() < deadline:
        # machine_init.py says ready just before it becomes systemd: while the exec is under
        # way, the PID's command line is neither (read as "not running"), so wait it out.
        if not _is_machine_init(machine.pid, machine.dir):
            if not Path(f"/proc/{machine.pid}").exists():
                break
            time.sleep(0.05)
            continue
        # Until systemd has opened its socket, systemctl answers nothing: ask again.
        try:
            proc = run(
                machine,
                ["systemctl", "is-system-running", "--wait"],
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired:
            state = "still booting"
            break
        except MachineError:  # the exec's window again
            continue
        state = proc.stdout.strip() or state
        if state in ("running", "degraded") or not machine.running():
            break
        time.sleep(0.1)
    if state not in ("running", "degraded"):
        failed = run(machine, ["systemctl", "--failed", "--no-legend", "--plain"], timeout=10)
        raise MachineError(
            f"systemd in machine {machine.name!r} did not finish booting ({state}); "
            f"failed units: {failed.stdout.strip() or 'none'}; its console: "
            f"{(machine.dir / 'init.log').read_text(errors='replace')[-1500:].strip()}"
        )


def _create_netns(machine: Machine) -> None:
    ns, lan = machine.netns, machine.lan
    _sh("ip", "netns", "add", ns)
    _sh("ip", "link", "add", machine.veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    _sh("ip", "link", "set", machine.veth, "master", lan.bridge, "up")
    _sh("ip", "-n", ns, "addr", "add", f"{machine.address}/24", "dev", "eth0")
    _sh("ip", "-n", ns, "link", "set", "eth0", "up")
    _sh("ip", "-n", ns, "link", "set", "lo", "up")
    _sh("ip", "-n", ns, "route", "add", "default", "via", lan.gateway)
    # What a node needs of its kernel's network settings, inside its own namespace.
    for key, value in (("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1")):
        _sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}", check=False)


def _start_init(machine: Machine, timeout: float) -> None:
    ready = machine.dir / "ready"
    ready.unlink(missing_ok=True)
    log = open(machine.dir / "init.log", "ab")  # noqa: SIM115 - handed to the child
    argv = [
        "nsenter", f"--net=/run/netns/{machine.netns}",
        "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
        "--mount-proc", "--cgroup",
        sys.executable, "-I", str(INIT_SCRIPT), str(machine.dir),
    ]  # fmt: skip
    holder = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        preexec_fn=lambda: _join_cgroup(machine),
    )
    log.close()
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if holder.poll() is not None or time.monotonic() > deadline:
            tail = (machine.dir / "init.log").read_text(errors="replace")[-2000:]
            raise MachineError(
                f"machine {machine.name!r} did not start: {tail.strip() or 'no output'}"
            )
        time.sleep(0.05)
    children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split()
    machine.holder_pid, machine.pid = holder.pid, int(children[0])
    machine.save()


def delete(state_dir: Path, name: str, timeout: float = 30.0) -> None:
    """Stop everything in the machine and remove every trace of it on the host."""
    directory = machines_dir(state_dir) / name
    if not (directory / MACHINE_FILE).exists():
        raise MachineError(f"no machine {name!r}")
    machine = Machine.load(directory)
    _stop(machine, timeout)
    with _host_lock():
        _destroy(machine)
        if not _netns_in_use():
            _teardown_host_network()


def delete_all(state_dir: Path, keep: Sequence[str] = ()) -> list[str]:
    names = [m.name for m in list_machines(state_dir) if m.name not in keep]
    for name in names:
        delete(state_dir, name)
    return names


def _stop(machine: Machine, timeout: float) -> None:
    if machine.running():
        assert machine.pid is not None
        stop = SYSTEMD_POWEROFF if machine.init == "systemd" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(machine.pid, stop)
    deadline = time.monotonic() + timeout
    while machine.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    if machine.running():
        assert machine.pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(machine.pid, signal.SIGKILL)
    # PID 1 gone, the kernel kills the rest of the namespace; wait until the cgroups are
    # empty (processes whose exit is slow, and any that escaped the PID namespace).
    while _cgroup_pids(machine) and time.monotonic() < deadline + 10:
        for pid in _cgroup_pids(machine):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    if machine.holder_pid:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(machine.holder_pid, os.WNOHANG)


def _destroy(machine: Machine) -> None:
    _sh("ip", "netns", "del", machine.netns, check=False)
    _sh("ip", "link", "del", machine.veth, check=False)
    _remove_cgroups(machine)
    shutil.rmtree(machine.dir, ignore_errors=True)


def leftovers(machine: Machine) -> list[str]:
    """Everything of this machine still on the host (a test asserts it is empty)."""
    found = [f"process {p}" for p in _cgroup_pids(machine)]
    found += [f"cgroup {d}" for d in _cgroup_dirs(machine) if d.exists()]
    if Path("/run/netns", machine.netns).exists():
        found.append(f"netns {machine.netns}")
    if _sh("ip", "link", "show", machine.veth, check=False).returncode == 0:
        found.append(f"veth {machine.veth}")
    if machine.dir.exists():
        found.append(f"dir {machine.dir}")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        if str(machine.dir) in line:
            found.append(f"mount {line.split()[1]}")
    for table in ("filter", "nat", "raw"):
        rules = _iptables("-t", table, "-S", check=False).stdout
        found += [f"iptables {r}" for r in rules.splitlines() if f"{machine.address}/" in r]
    return found


# --- inside -------------------------------------------------------------------------------------


def exec_argv(
    machine: Machine, command: Sequence[str], env: dict[str, str] | None = None
) -> list[str]:
    """argv that runs `command` as root inside the machine (all its namespaces, a clean env)."""
    if not machine.running():
        raise MachineError(f"machine {machine.name!r} is not running; delete and create it again")
    environment = {
        "PATH": PATH,
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": os.environ.get("TERM", "dumb"),
    }
    environment.update(env or {})
    assert machine.pid is not None
    return [
        "nsenter", "-t", str(machine.pid), "--mount", "--uts", "--ipc", "--net", "--pid",
        "--cgroup", "--wd=/",
        "env", "-i", *(f"{k}={v}" for k, v in environment.items()), *command,
    ]  # fmt: skip


def run(
    machine: Machine,
    command: Sequence[str],
    *,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command in the machine and collect its output (for tests and scripts)."""
    proc = subprocess.run(
        exec_argv(machine, command, env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=lambda: _join_cgroup(machine),
        check=False,
    )
    if check and proc.returncode != 0:
        raise MachineError(
            f"`{' '.join(command)}` in machine {machine.name!r} exited {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return proc


def exec_interactive(machine: Machine, command: Sequence[str]) -> int:
    """Run with this terminal attached; the command's exit code is returned."""
    proc = subprocess.run(
        exec_argv(machine, command), preexec_fn=lambda: _join_cgroup(machine), check=False
    )
    return proc.returncode


def ssh_argv(state_dir: Path, machine: Machine, command: Sequence[str] = ()) -> list[str]:
    if machine.flavour == "edge":
        raise MachineError(
            f"machine {machine.name!r} is an edge machine behind NAT: nothing can open a "
            f"connection to it, SSH included; use `mothership dev machine exec {machine.name} "
            "-- sh`, or create a --reachable machine"
        )
    known = machines_dir(state_dir) / "known_hosts"
    return [
        "ssh", "-i", str(ssh_key(state_dir)), "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known}",
        "-o", "LogLevel=ERROR", f"root@{machine.address}", *command,
    ]  # fmt: skip


# --- impairment ---------------------------------------------------------------------------------


def set_link(machine: Machine, up: bool) -> None:
    """Cut or restore the machine's only link (its eth0 loses carrier, as with a cable)."""
    _sh("ip", "link", "set", machine.veth, "up" if up else "down")
    if up:
        _sh("ip", "link", "set", machine.veth, "master", machine.lan.bridge)


def set_loss(machine: Machine, percent: float) -> None:
    """Drop this share of packets in each direction on the machine's link (0 clears)."""
    if not 0 <= percent <= 100:
        raise MachineUsageError(f"--loss {percent} is not a percentage in [0, 100]")
    ns = machine.netns
    for hook, flag in (("PREROUTING", "-i"), ("OUTPUT", "-o")):
        rules = _sh(
            "ip", "netns", "exec", ns, "iptables", "-w", "5", "-t", "raw", "-S", hook
        ).stdout
        for line in rules.splitlines():
            if IMPAIR_COMMENT in line:
                _sh(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "iptables",
                    "-w",
                    "5",
                    "-t",
                    "raw",
                    *line.replace("-A", "-D", 1).split(),
                )
        if percent:
            _sh(
                "ip", "netns", "exec", ns, "iptables", "-w", "5", "-t", "raw",
                "-I", hook, flag, "eth0",
                "-m", "statistic", "--mode", "random", "--probability", f"{percent / 100:.4f}",
                "-m", "comment", "--comment", IMPAIR_COMMENT, "-j", "DROP",
            )  # fmt: skip


def set_latency(machine: Machine, millis: int, timeout: float = 10.0) -> None:
    """Add `millis` to every round trip over the machine's link (0 clears).

    Each packet crossing eth0, either way, waits half of it in `netdelay`'s userspace queue
    (this kernel has no netem). The delayer runs in the machine's cgroup, so deleting the
    machine stops it; its rules die with the network namespace.
    """
    if not 0 <= millis <= 10_000:
        raise MachineUsageError(f"--latency {millis}: give milliseconds in [0, 10000]")
    ns = machine.netns
    pid_file = machine.dir / "netdelay.pid"
    for hook, flag in (("PREROUTING", "-i"), ("POSTROUTING", "-o")):
        rule = [hook, flag, "eth0", "-m", "comment", "--comment", IMPAIR_COMMENT,
                "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"]  # fmt: skip
        while _sh("ip", "netns", "exec", ns, "iptables", "-w", "5", "-t", "mangle",
                  "-D", *rule, check=False).returncode == 0:  # fmt: skip
            pass
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()
    if not millis:
        return
    log = machine.dir / "netdelay.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-m",
             "mothership.testenv.netdelay", "--delay-ms", str(millis / 2)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=lambda: _join_cgroup(machine),
        )  # fmt: skip
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while READY not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise MachineError(f"the delayer for {machine.name!r} did not start: {log.read_text()}")
        time.sleep(0.05)
    for hook, flag in (("PREROUTING", "-i"), ("POSTROUTING", "-o")):
        _sh("ip", "netns", "exec", ns, "iptables", "-w", "5", "-t", "mangle",
            "-A", hook, flag, "eth0", "-m", "comment", "--comment", IMPAIR_COMMENT,
            "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass")  # fmt: skip
