"""Machines on one box, for real: namespaces, NAT, sshd, impairment, and nothing left behind.

Needs root (network namespaces, mounts, cgroups, iptables) but no Kubernetes: these are the
hosts workers join from (tests/integration/test_workers.py). Everything goes through the
`mothership dev machine` commands users and scripts run, against a state dir of its own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mothership.testenv import machines
from mothership.testenv.local import LocalMothership

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="machines need root")


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A mothership state dir whose machines are deleted even when a test fails."""
    path = tmp_path / "ms"
    yield path
    machines.delete_all(path)


def cli(state: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    head, rest = args[0], args[1:]
    argv = ["mothership", "dev", "machine", head, "--state-dir", str(state), *rest]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def connect(host: str, port: int) -> str:
    with socket.socket() as s:
        s.settimeout(3)
        try:
            s.connect((host, port))
            return "open"
        except OSError as exc:
            return type(exc).__name__


def test_edge_and_reachable_machines_from_the_cli(state: Path) -> None:
    assert cli(state, "create", "edge-x").returncode == 0
    assert cli(state, "create", "rack-x", "--reachable").returncode == 0
    listed = json.loads(cli(state, "list", "-o", "json").stdout)
    by_name = {m["name"]: m for m in listed}
    assert by_name["edge-x"]["flavour"] == "edge" and by_name["rack-x"]["flavour"] == "reachable"
    assert all(m["state"] == "running" for m in listed)
    edge, rack = by_name["edge-x"]["address"], by_name["rack-x"]["address"]

    # exec runs as root inside, with the machine's own host name, addresses and processes,
    # and passes the exit code through.
    out = cli(state, "exec", "edge-x", "--", "sh", "-c", "hostname; id -u; ip -4 -o addr show eth0")
    assert out.returncode == 0
    assert out.stdout.splitlines()[:2] == ["edge-x", "0"] and edge in out.stdout
    assert cli(state, "exec", "edge-x", "--", "sh", "-c", "exit 7").returncode == 7
    pids = cli(state, "exec", "edge-x", "--", "sh", "-c", "ls /proc | grep -c '^[0-9]'")
    assert int(pids.stdout.strip()) < 10, "the machine sees the host's processes"

    # What a node writes stays in the machine.
    cli(
        state,
        "exec",
        "edge-x",
        "--",
        "sh",
        "-c",
        "echo x > /etc/mothership-probe; mkdir -p /var/lib/kubelet",
    )
    assert not Path("/etc/mothership-probe").exists()
    seen = cli(state, "exec", "rack-x", "--", "sh", "-c", "ls /etc/mothership-probe 2>&1 || true")
    assert "No such file" in seen.stdout

    # Edge: nothing opens a connection to it, not the host, not a reachable machine...
    assert connect(edge, 22) != "open"
    probe = f"exec 3<>/dev/tcp/{edge}/22 && echo OPEN || echo CLOSED"
    assert "CLOSED" in cli(state, "exec", "rack-x", "--", "bash", "-c", probe).stdout
    # ... while it reaches out, and a reachable machine is reached (sshd, key auth only).
    assert connect(rack, 22) == "open"
    reach_out = f"exec 3<>/dev/tcp/{rack}/22 && echo OPEN || echo CLOSED"
    assert "OPEN" in cli(state, "exec", "edge-x", "--", "bash", "-c", reach_out).stdout
    rack_machine = machines.find(state, "rack-x")
    ssh = subprocess.run(
        machines.ssh_argv(state, rack_machine, ["hostname"]),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ssh.returncode == 0 and ssh.stdout.strip() == "rack-x", ssh.stderr
    no_key = subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
         "-i", "/dev/null", f"root@{rack}", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert no_key.returncode != 0, "sshd accepted a login without the machine key"
    refused = cli(state, "ssh", "edge-x")
    assert refused.returncode == 2 and "behind NAT" in refused.stderr

    # Impairment: loss, link down/up, latency.
    assert cli(state, "net", "edge-x", "--loss", "100").returncode == 0
    lost = cli(
        state, "exec", "edge-x", "--", "bash", "-c", f"timeout 3 bash -c '{reach_out}' || echo LOST"
    )
    assert "LOST" in lost.stdout
    assert cli(state, "net", "edge-x", "--loss", "0", "--link", "down").returncode == 0
    down = cli(state, "exec", "edge-x", "--", "sh", "-c", "cat /sys/class/net/eth0/carrier 2>&1")
    assert down.stdout.strip() in ("0", "cat: read error: Invalid argument")
    assert cli(state, "net", "edge-x", "--link", "up").returncode == 0
    assert "OPEN" in cli(state, "exec", "edge-x", "--", "bash", "-c", reach_out).stdout
    # Latency: a TCP connect is one round trip (SYN out, SYN-ACK back).
    connect_ms = (
        f"s=$(date +%s%N); exec 3<>/dev/tcp/{rack}/22; echo $(( ($(date +%s%N) - s) / 1000000 ))"
    )
    assert cli(state, "net", "edge-x", "--latency", "200").returncode == 0
    slow = [int(cli(state, "exec", "edge-x", "--", "bash", "-c", connect_ms).stdout) for _ in "abc"]
    assert all(200 <= ms < 1000 for ms in slow), slow
    assert cli(state, "net", "edge-x", "--latency", "-1").returncode == 2
    assert cli(state, "net", "edge-x", "--latency", "0").returncode == 0
    fast = int(cli(state, "exec", "edge-x", "--", "bash", "-c", connect_ms).stdout)
    assert fast < 100, fast
    # Deleting a machine whose link is delayed stops the delayer too (checked below).
    assert cli(state, "net", "edge-x", "--latency", "50").returncode == 0

    # Delete leaves nothing: processes, cgroups, netns, veth, mounts, dir, iptables rules.
    kept = [machines.find(state, n) for n in ("edge-x", "rack-x")]
    for m in kept:
        assert cli(state, "delete", m.name).returncode == 0
        assert machines.leftovers(m) == []
    assert cli(state, "delete", "edge-x").returncode == 4
    assert cli(state, "delete", "edge-x", "--ignore-not-found").returncode == 0
    if not [d for d in Path("/run/netns").glob(f"{machines.NETNS_PREFIX}*")]:
        assert machines.host_network_leftovers() == []


def test_bad_names_and_duplicates_are_refused(state: Path) -> None:
    bad = cli(state, "create", "Bad_Name")
    assert bad.returncode == 1 and "not valid" in bad.stderr
    assert cli(state, "create", "dup").returncode == 0
    again = cli(state, "create", "dup")
    assert again.returncode == 1 and "exists already" in again.stderr
    assert cli(state, "delete", "dup").returncode == 0
    # The name of the machine a second real-node mothership's own node runs in is kept for it.
    reserved = cli(state, "create", "mothership-node")
    assert reserved.returncode == 2 and "own node runs in" in reserved.stderr


def test_dev_down_deletes_the_machines_of_its_mothership(tmp_path: Path) -> None:
    ms = LocalMothership.configure("machines-down", state_dir=tmp_path / "ms", nodes="none")
    ms.cfg.save()
    made = [machines.create(ms.cfg.state_dir, n) for n in ("down-a", "down-b")]
    ms.down()
    assert machines.list_machines(ms.cfg.state_dir) == []
    for m in made:
        assert machines.leftovers(m) == []


def test_a_systemd_machine_boots_its_own_systemd_without_touching_the_host(state: Path) -> None:
    host_inotify = Path("/proc/sys/fs/inotify/max_user_instances").read_text()
    made = cli(state, "create", "srv-x", "--reachable", "--systemd")
    assert made.returncode == 0, made.stderr
    assert "(reachable, systemd)" in made.stdout
    listed = json.loads(cli(state, "list", "-o", "json").stdout)
    assert [(m["name"], m["init"], m["state"]) for m in listed] == [("srv-x", "systemd", "running")]
    # systemd is PID 1 of the machine, its boot is over, nothing failed, and the machine's
    # sshd is one of its units (listening when `create` returned).
    comm = cli(state, "exec", "srv-x", "--", "cat", "/proc/1/comm")
    assert comm.stdout.strip() == "systemd"
    running = cli(state, "exec", "srv-x", "--", "systemctl", "is-system-running")
    assert running.stdout.strip() == "running", cli(
        state, "exec", "srv-x", "--", "systemctl", "--failed"
    ).stdout
    machine = machines.find(state, "srv-x")
    assert connect(machine.address, 22) == "open"
    # The host's own services are not started a second time in the machine.
    services = cli(
        state, "exec", "srv-x", "--", "systemctl", "list-units", "--type=service", "--state=active"
    ).stdout
    for host_service in ("postgresql", "mariadb", "containerd", "ssh.service"):
        assert host_service not in services, services
    # A unit started in the machine is systemd's, in the machine's cgroup subtree.
    unit = cli(state, "exec", "srv-x", "--", "systemd-run", "--unit=probe", "--", "sleep", "300")
    assert unit.returncode == 0, unit.stderr
    pid = cli(
        state, "exec", "srv-x", "--", "systemctl", "show", "-p", "MainPID", "--value", "probe"
    )
    inside = int(pid.stdout.strip())
    assert inside > 1
    cgroup = cli(state, "exec", "srv-x", "--", "cat", f"/proc/{inside}/cgroup").stdout
    assert (
        ":name=systemd:/system.slice/probe.service" in cgroup or "::/system.slice/probe" in cgroup
    )
    assert Path("/proc/sys/fs/inotify/max_user_instances").read_text() == host_inotify
    # Deleting powers systemd off and leaves nothing behind.
    assert cli(state, "delete", "srv-x").returncode == 0
    assert machines.leftovers(machine) == []
