"""`mothership bench chaos`: the operator SIGKILLed at random moments while N Clusters are made.

What a real mothership does to an operator (OOM kills, node loss, evictions) happens at
any instruction: between creating a CA Secret and recording it, between two applies.
Every object must still be explained by the spec alone, so a restarted operator must pick
up where the dead one stopped: the bench checks that every Cluster converges, no CA
Secret ever changes (uid or certificate), nothing is left without its owner, and the
restarts cause no storm of rewrites (writes per object from the API server's audit log).

Same frame as `bench fleet` (kwok mothership with an audit policy for the operator's
user, convergence as fleet judges it); the operator keeps its ports across restarts so its
webhook registrations stay valid, and creates refused while it is down are retried, as
a user or a GitOps tool would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from lightkube import AsyncClient, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.batch_v1 import CronJob
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret, Service
from lightkube.resources.networking_v1 import Ingress, NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget

from mothership.api.crdgen import all_crds
from mothership.bench import audit, chaos_result, fleet
from mothership.bench.chaos_result import CaLedger, Result, Writes, orphans, shares
from mothership.controllers.children import KINDS, SELECTOR
from mothership.controllers.cluster import ClusterResource
from mothership.render import pki_secrets
from mothership.testenv import kube
from mothership.testenv.local import LocalMothership, default_state_dir
from mothership.testenv.ports import free_ports

NAMESPACE = fleet.NAMESPACE
PKI_SELECTOR = f"{SELECTOR},component=pki"
Report = fleet.Report
# The kinds the operator owns (children.KINDS), as lightkube knows them.
CHILD_KINDS: dict[str, Any] = {
    r.__name__: r
    for r in (StatefulSet, Service, ConfigMap, Secret, Ingress, CronJob, PodDisruptionBudget,
              NetworkPolicy)
}  # fmt: skip


class _Operator:
    """`mothership operator run` restarted on the same ports after each kill.

    Like a kubelet, it is also restarted when it exits by itself, at once and at any
    time (each such exit is recorded: the run fails on it, since none of the faults is a
    reason for an operator to give up, but the rest of the table stays meaningful).
    """

    def __init__(self, ms: LocalMothership, report: Report) -> None:
        self.ms = ms
        self.report = report
        self.ports = free_ports(["metrics", "health", "webhook"])
        self.kubeconfig = fleet.operator_kubeconfig(ms)
        self.proc: subprocess.Popen[bytes] | None = None
        self.exits: list[int] = []  # codes of the exits nobody caused
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> None:
        (self.ms.cfg.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        log = open(self.ms.cfg.state_dir / "logs" / "operator.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                "mothership", "operator", "run",
                f"--kubeconfig={self.kubeconfig}",
                f"--metrics-port={self.ports['metrics']}",
                f"--health-port={self.ports['health']}",
                f"--webhook-port={self.ports['webhook']}",
                f"--webhook-cert-dir={self.ms.cfg.state_dir / 'webhook'}",
            ],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=fleet._die_with_parent,
        )  # fmt: skip
        log.close()

    def kill_and_restart(self) -> None:
        with self._lock:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.start()

    def supervise(self) -> None:
        """Until stop(): an operator that exited without our kill is started again."""
        while not self._stopping.wait(0.5):
            with self._lock:
                if self.proc is None or self.proc.poll() is None or self._stopping.is_set():
                    continue
                self.exits.append(self.proc.returncode)
                self.report(f"operator exited by itself ({self.proc.returncode}); restarting it")
                self.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self.proc is not None:
                fleet._stop(self.proc)


def _watch_cas(ms: LocalMothership, ledger: CaLedger, lock: threading.Lock) -> None:
    """Every change of a PKI Secret as the API server announces it, into the ledger."""
    purposes = set(pki_secrets.ALL_PURPOSES)
    client = kube.client(ms.cfg.kubeconfig)
    while True:
        try:
            for _, obj in client.watch(Secret, namespace=NAMESPACE, labels=_labels(PKI_SELECTOR)):
                d = obj.to_dict()
                name = d["metadata"]["name"]
                if name.rsplit("-", 1)[-1] in purposes:
                    with lock:
                        ledger.observe(d)
        except Exception:  # the mothership going down ends the bench anyway
            time.sleep(1.0)


def _labels(selector: str) -> dict[str, Any]:
    return dict(part.split("=", 1) for part in selector.split(","))


async def _create(admin: Path, indices: range, concurrency: int, result: Result) -> None:
    """Clusters c<i>; a create refused while the operator (its webhooks) is down is retried."""
    client = AsyncClient(config=KubeConfig.from_file(admin), field_manager="bench")
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        name = f"c{i:05d}"
        body = ClusterResource(
            metadata=ObjectMeta(name=name, namespace=NAMESPACE),
            spec={"replicas": 1, "version": "v1.35.4-k0s.0"},
        )
        async with sem:
            while True:
                try:
                    created = await client.create(body)
                    result.acknowledged[name] = (created.metadata and created.metadata.uid) or ""
                    return
                except ApiError as exc:
                    if exc.status.code == 409:
                        # The retried create had gone through after all (its answer lost).
                        result.acknowledged.setdefault(name, "")
                        return
                    result.create_retries += 1
                except httpx.HTTPError:
                    result.create_retries += 1
                await asyncio.sleep(0.5)

    try:
        await asyncio.gather(*(one(i) for i in indices))
    finally:
        await client.close()


def run(
    clusters: int,
    kills: int,
    seed: int | None,
    concurrency: int,
    state_dir: Path | None,
    keep: bool,
    timeout: float,
    report: Report,
    *,
    apiserver_restarts: int = 0,
    datastore_stalls: int = 0,
    stall_seconds: float = 30.0,
) -> Result:
    faults = chaos_result.plan(kills, apiserver_restarts, datastore_stalls, random.Random(seed))
    with fleet.terminate_is_an_exit():
        return _run(
            clusters, faults, seed, concurrency, state_dir, keep, timeout, report, stall_seconds
        )


def _inject(
    kind: str, ms: LocalMothership, op: _Operator, stall_seconds: float, report: Report
) -> float:
    """One fault, over when this returns; the seconds it lasted."""
    began = time.monotonic()
    if kind == chaos_result.OPERATOR_KILL:
        op.kill_and_restart()
    elif kind == chaos_result.APISERVER_RESTART:
        return ms.restart_apiserver(report)
    elif kind == chaos_result.DATASTORE_STALL:
        with ms.datastore_stalled():
            time.sleep(stall_seconds)  # the fault itself: the datastore frozen this long
    return time.monotonic() - began


WHAT = {
    chaos_result.OPERATOR_KILL: "SIGKILL of the operator; restarting it",
    chaos_result.APISERVER_RESTART: "SIGKILL of the API server; restarting it",
    chaos_result.DATASTORE_STALL: "datastore stalled (SIGSTOP)",
}


def _run(
    clusters: int,
    faults: list[str],
    seed: int | None,
    concurrency: int,
    state_dir: Path | None,
    keep: bool,
    timeout: float,
    report: Report,
    stall_seconds: float,
) -> Result:
    rng = random.Random(seed)
    state = state_dir or default_state_dir("bench")
    ms = fleet.configure_mothership(state, clusters)
    result = Result(clusters)
    op: _Operator | None = None
    lock = threading.Lock()
    try:
        ms.up(report, timeout=240)
        kc = kube.client(ms.cfg.kubeconfig)
        for crd in all_crds():
            kc.apply(from_dict(crd), field_manager="bench", force=True)
        with contextlib.suppress(ApiError):
            kc.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
        threading.Thread(target=_watch_cas, args=(ms, result.ca, lock), daemon=True).start()
        op = _Operator(ms, report)
        op.start()
        threading.Thread(target=op.supervise, daemon=True).start()
        report(
            f"creating {clusters} Clusters, {concurrency} at a time; faults to come: "
            + (", ".join(faults) or "none")
        )
        started = time.monotonic()
        creators = []
        last_fault = started
        chunks = shares(clusters, len(faults))
        for k in range(max(1, len(faults))):
            if k < len(chunks):
                creators.append(
                    threading.Thread(
                        target=lambda c=chunks[k]: asyncio.run(
                            _create(ms.cfg.kubeconfig, c, concurrency, result)
                        ),
                        daemon=True,
                    )
                )
                creators[-1].start()
            if k >= len(faults):
                break
            # A new share of Clusters is being created and reconciled: the fault lands
            # mid-work (or, when short, while the operator still starts up).
            time.sleep(rng.uniform(1.0, 8.0))
            done = sum(
                1
                for o in kc.list(ClusterResource, namespace=NAMESPACE)
                if fleet.converged(o.to_dict())
            )
            at = time.monotonic() - started
            report(f"fault {k + 1}/{len(faults)} at {at:.1f}s ({done}/{clusters} converged): "
                   + WHAT[faults[k]])  # fmt: skip
            lasted = _inject(faults[k], ms, op, stall_seconds, report)
            last_fault = time.monotonic()
            result.faults.append(chaos_result.Fault(faults[k], at, lasted))
            if faults[k] == chaos_result.OPERATOR_KILL:
                result.kills += 1
                result.kill_times.append(at)
        for creator in creators:
            creator.join(max(1.0, started + timeout - time.monotonic()))
        deadline = started + timeout
        last_report = 0.0
        while True:
            items = [o.to_dict() for o in kc.list(ClusterResource, namespace=NAMESPACE)]
            result.converged = sum(1 for d in items if fleet.converged(d))
            now = time.monotonic()
            if result.converged == clusters and len(items) == clusters:
                result.recover_seconds = now - last_fault
                break
            if now > deadline:
                report(f"timed out: {result.converged}/{clusters} converged")
                break
            if now - last_report > 10:
                report(f"{result.converged}/{clusters} converged after {now - started:.0f}s")
                last_report = now
            time.sleep(1.0)
        result.operator_exits = list(op.exits)
        _judge(ms, kc, result, lock)
    finally:
        if op:
            op.stop()
        if not keep:
            ms.down(report, purge=state_dir is None)
    return result


def _judge(ms: LocalMothership, kc: Client, result: Result, lock: threading.Lock) -> None:
    """The end state: CA Secrets once more, orphans, writes per object."""
    purposes = set(pki_secrets.ALL_PURPOSES)
    with lock:
        for secret in kc.list(Secret, namespace=NAMESPACE, labels=_labels(PKI_SELECTOR)):
            d = secret.to_dict()
            if d["metadata"]["name"].rsplit("-", 1)[-1] in purposes:
                result.ca.observe(d)
        result.ca_secrets = len(result.ca.first)
    uids = {
        (NAMESPACE, o.metadata.name): o.metadata.uid
        for o in kc.list(ClusterResource, namespace=NAMESPACE)
        if o.metadata and o.metadata.name and o.metadata.uid
    }
    result.lost = chaos_result.lost(result.acknowledged, {n: u for (_, n), u in uids.items()})
    children = []
    for kind in KINDS:
        for obj in kc.list(CHILD_KINDS[kind.kind], namespace=NAMESPACE, labels=_labels(SELECTOR)):
            d = obj.to_dict()
            d["kind"] = kind.kind
            children.append(d)
    result.orphans = orphans(uids, children)
    requests, _ = audit.read(ms.cfg.state_dir / "audit.log")
    result.writes = Writes.from_counts(requests.writes_by_object, NAMESPACE)
    result.verbs = requests.by_verb
