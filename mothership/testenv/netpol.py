"""The local mothership's NetworkPolicy enforcer: keeps netpol_rules' chains in iptables.

Started by `mothership dev up --network-policy` in the real node's network namespace and
supervised like the storage provisioner. Watches on NetworkPolicies, Pods and Namespaces
wake it; each pass lists the three, renders the rules and, when they changed, replaces its
chains in one `iptables-restore --noflush` transaction (kube-proxy's chains are not
touched). Its jump must be the first rule of FORWARD: kube-proxy's KUBE-FORWARD accepts
Service traffic marked for masquerade, which would pass by any rule after it; kube-proxy
prepends its jumps when it starts, so every pass puts the jump back on top. On SIGTERM it
removes its jump and chains: a stopped enforcer leaves an open network, not a closed one.

Run: python -m mothership.testenv.netpol --kubeconfig K --node NAME --state DIR
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from lightkube import Client
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.resources.networking_v1 import NetworkPolicy

from mothership.testenv import kube, passloop
from mothership.testenv import netpol_rules as rules
from mothership.testenv.passloop import log

COMPONENT = "network-policy"
RESYNC_SECONDS = 30.0
HEARTBEAT = "heartbeat"
HEARTBEAT_STALE_SECONDS = 3 * RESYNC_SECONDS


def state_dir(mothership_state: Path) -> Path:
    return mothership_state / COMPONENT


def healthy(state: Path, pid: int | None = None) -> bool:
    """A pass finished recently, by process ``pid`` when given (not a previous run's file)."""
    path = state / HEARTBEAT
    try:
        written = path.read_text().split()
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    if pid is not None and written[:1] != [str(pid)]:
        return False
    return age < HEARTBEAT_STALE_SECONDS


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _iptables(*args: str) -> str:
    # -w: kube-proxy holds the xtables lock while it writes; wait for it.
    return _run(["iptables", "-w", "5", *args])


def _has_jump() -> bool:
    argv = ["iptables", "-w", "5", "-C", "FORWARD", "-j", rules.TOP]
    return subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0


def our_chains() -> list[str]:
    return [
        line.split()[1]
        for line in _iptables("-S").splitlines()
        if line.startswith("-N ") and line.split()[1].startswith(rules.PREFIX)
    ]


def apply(ruleset: rules.Ruleset, existing: list[str] | None = None) -> None:
    """Install ``ruleset``; ``existing``: our chains now in the table, when already read."""
    text = ruleset.restore_text(our_chains() if existing is None else existing)
    _run(["iptables-restore", "-w", "5", "--noflush"], stdin=text)


def ensure_jump_first() -> bool:
    """Our jump as FORWARD's first rule, exactly once; whether it had to be moved."""
    mine = f"-A FORWARD -j {rules.TOP}"
    forward = [line for line in _iptables("-S", "FORWARD").splitlines() if line.startswith("-A ")]
    if forward[:1] == [mine] and forward.count(mine) == 1:
        return False
    for _ in range(forward.count(mine)):
        _iptables("-D", "FORWARD", "-j", rules.TOP)
    _iptables("-I", "FORWARD", "1", "-j", rules.TOP)
    return True


def remove_all() -> None:
    """No jump and no chain of ours left."""
    while _has_jump():
        _iptables("-D", "FORWARD", "-j", rules.TOP)
    existing = our_chains()
    if existing:
        apply(rules.Ruleset({}), existing)


class Enforcer:
    def __init__(self, client: Client, node: str, state: Path) -> None:
        self.client = client
        self.node = node
        self.state = state
        self.applied = ""

    def world(self) -> rules.World:
        pods = []
        for pod in self.client.list(Pod, namespace="*"):
            info = rules.pod_info(pod.to_dict())
            if info is not None:
                pods.append(info)
        namespaces = {
            str(ns.metadata.name): dict(ns.metadata.labels or {})
            for ns in self.client.list(Namespace)
            if ns.metadata is not None
        }
        policies = tuple(p.to_dict() for p in self.client.list(NetworkPolicy, namespace="*"))
        return rules.World(policies, tuple(pods), namespaces)

    def reconcile(self) -> None:
        world = self.world()
        ruleset = rules.render(world, node=self.node)
        text = ruleset.restore_text(())
        existing = our_chains()
        if text != self.applied or set(existing) != set(ruleset.chains):
            apply(ruleset, existing)
            log(
                f"applied: {len(ruleset.chains) - 1} isolated pod directions, "
                f"{len(world.policies)} policies, {len(world.pods)} pods"
            )
            self.applied = text
        if ensure_jump_first():
            log(f"put the jump to {rules.TOP} first in FORWARD")
        (self.state / HEARTBEAT).write_text(f"{os.getpid()}\n")

    def run(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        log(f"enforcing NetworkPolicies for the pods of node {self.node}")
        passloop.run(
            self.client,
            ((Pod, "*"), (NetworkPolicy, "*"), (Namespace, None)),
            self.reconcile,
            resync=RESYNC_SECONDS,
            settle=0.1,
        )


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node", required=True, help="the node whose pods are enforced")
    parser.add_argument("--state", type=Path, required=True, help="heartbeat directory")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    client = kube.client(args.kubeconfig, field_manager=COMPONENT)
    try:
        Enforcer(client, args.node, args.state).run()
    finally:
        remove_all()
        log("removed the rules: NetworkPolicies are no longer enforced")
    return 0


def argv(kubeconfig: Path, node: str, state: Path) -> list[str]:
    """The command line LocalMothership supervises."""
    return [
        sys.executable,
        "-m",
        "mothership.testenv.netpol",
        f"--kubeconfig={kubeconfig}",
        f"--node={node}",
        f"--state={state}",
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
