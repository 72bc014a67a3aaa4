"""`mothership bench fleet`: N Clusters on a kwok mothership, reconciled by the operator.

Measures what the issue's targets are about: time until every Cluster has all its
objects and a ready StatefulSet, the operator's peak RSS and CPU time, its API requests
per Cluster and writes per object (from the API server's audit log, operator user only),
and the writes a no-op resync makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lightkube import AsyncClient, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from mothership import pki
from mothership.api.crdgen import all_crds
from mothership.bench import audit, procstat, remote_hosting, shared_datastore
from mothership.controllers.cluster import ClusterResource
from mothership.errors import InvalidInput
from mothership.testenv import health, kube
from mothership.testenv.config import CONFIG_FILE
from mothership.testenv.local import LocalMothership, default_state_dir
from mothership.testenv.ports import free_ports

OPERATOR_USER = "mothership-operator"
NAMESPACE = "bench"
CONVERGED = ("CertificatesAvailable", "KubeconfigSecretAvailable", "ControlPlaneUpToDate")
Report = Callable[[str], None]


@dataclass
class Result:
    clusters: int
    concurrency: int
    create_seconds: float = 0.0
    converge_seconds: float = 0.0
    per_cluster: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    settled_rss_mib: float = 0.0
    cpu_seconds: float = 0.0
    # The operator's child processes (the webhook server), measured apart.
    child_peak_rss_mib: float = 0.0
    child_cpu_seconds: float = 0.0
    requests: audit.Requests = field(default_factory=audit.Requests)
    resync_writes: int = -1
    resync_requests: int = -1
    # --shared-postgres: tenant databases on the one server, and its memory (PSS) then.
    shared_databases: int = -1
    shared_server_mib: float = 0.0
    shared_server_processes: int = 0
    # --remote-host: the operator's requests to the hosting mothership, and on the resync.
    hosting: audit.Requests | None = None
    hosting_resync_writes: int = -1
    hosting_resync_requests: int = -1

    def lines(self) -> list[str]:
        pc = sorted(self.per_cluster)
        p50 = statistics.median(pc) if pc else 0.0
        p95 = pc[min(len(pc) - 1, math.ceil(0.95 * len(pc)) - 1)] if pc else 0.0
        writes = self.requests.writes_by_object
        return (
            [
                f"clusters                      {self.clusters} (concurrency {self.concurrency})",
                f"create all (API accepted)     {self.create_seconds:.1f} s",
                f"all converged after           {self.converge_seconds:.1f} s",
                f"per-cluster converge p50/p95  {p50:.1f} s / {p95:.1f} s",
                f"operator peak RSS             {self.peak_rss_mib:.1f} MiB "
                f"(after the resync round: {self.settled_rss_mib:.1f} MiB)",
                f"operator CPU                  {self.cpu_seconds:.1f} s",
                f"webhook process (child)       peak RSS {self.child_peak_rss_mib:.1f} MiB, "
                f"CPU {self.child_cpu_seconds:.1f} s",
                f"operator API requests         {self.requests.total} "
                f"({self.requests.total / max(1, self.clusters):.1f} per cluster) "
                f"{dict(sorted(self.requests.by_verb.items()))}",
                f"writes per object             max {max(writes.values(), default=0)}, "
                f"mean {statistics.mean(writes.values()) if writes else 0:.2f} "
                f"over {len(writes)} objects (+{self.requests.events} events posted, "
                f"{self.requests.lease_renewals} lease renewals)",
                f"no-op resync                  {self.resync_writes} writes, "
                f"{self.resync_requests} requests (incl. lease renewals)",
            ]
            + (
                [
                    f"shared PostgreSQL             {self.shared_databases} tenant databases, "
                    f"server memory {self.shared_server_mib:.1f} MiB PSS over "
                    f"{self.shared_server_processes} processes",
                ]
                if self.shared_databases >= 0
                else []
            )
            + (self._hosting_lines() if self.hosting is not None else [])
        )

    def _hosting_lines(self) -> list[str]:
        assert self.hosting is not None
        writes = self.hosting.writes_by_object
        return [
            f"hosting cluster requests      {self.hosting.total} "
            f"({self.hosting.total / max(1, self.clusters):.1f} per cluster) "
            f"{dict(sorted(self.hosting.by_verb.items()))}",
            f"hosting writes per object     max {max(writes.values(), default=0)}, "
            f"mean {statistics.mean(writes.values()) if writes else 0:.2f} "
            f"over {len(writes)} objects",
            f"hosting no-op resync          {self.hosting_resync_writes} writes, "
            f"{self.hosting_resync_requests} requests",
        ]


def operator_kubeconfig(ms: LocalMothership) -> Path:
    """A kubeconfig with the operator's own identity, so the audit log can single it out."""
    p = ms.cfg.pki_dir
    ca = pki.CertKey((p / "ca.crt").read_bytes(), (p / "ca.key").read_bytes())
    cert = pki.issue_cert(ca, OPERATOR_USER, organizations=("system:masters",), client=True)
    path = ms.cfg.state_dir / "operator.kubeconfig"
    path.write_text(
        pki.kubeconfig(
            cluster_name="bench",
            server=ms.cfg.api_url,
            ca_pem=ca.cert_pem,
            user=OPERATOR_USER,
            client_cert_pem=cert.cert_pem,
            client_key_pem=cert.key_pem,
        )
    )
    return path


def configure_mothership(state_dir: Path, clusters: int, name: str = "bench") -> LocalMothership:
    refuse_a_kept_mothership(state_dir, name)
    state_dir.mkdir(parents=True, exist_ok=True)
    policy = state_dir / "audit-policy.json"
    policy.write_text(audit.policy(OPERATOR_USER))
    # Two pods per Cluster (control plane and etcd); kwok nodes hold 250 pods each.
    nodes = max(3, math.ceil(2 * clusters / 200))
    ms = LocalMothership.configure(
        name,
        state_dir=state_dir,
        nodes="kwok",
        kwok_nodes=nodes,
        apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={state_dir / 'audit.log'}",
            "--audit-log-maxsize=0",
            "--max-requests-inflight=800",
            "--max-mutating-requests-inflight=400",
        ],
    )
    return ms


def refuse_a_kept_mothership(state_dir: Path, name: str) -> None:
    """A bench counts what it creates on a mothership of its own. One kept by an earlier run
    (--keep, or an explicit --state-dir, which is never purged) still holds that run's
    Clusters, which would be counted again, and CRDs whose conversion its operator registered,
    which the bench's own CRD apply then fails on; and its processes may still run."""
    if (state_dir / CONFIG_FILE).exists():
        raise InvalidInput(
            f"{state_dir} holds the mothership of an earlier bench run; remove it with "
            f"`mothership dev down --name {name} --state-dir {state_dir} --purge`, or give "
            "another --state-dir"
        )


def start_operator(ms: LocalMothership, resync: float) -> tuple[subprocess.Popen[bytes], dict]:
    ports = free_ports(["metrics", "health", "webhook"])
    log = open(ms.cfg.state_dir / "logs" / "operator.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            "mothership",
            "operator",
            "run",
            f"--kubeconfig={operator_kubeconfig(ms)}",
            f"--metrics-port={ports['metrics']}",
            f"--health-port={ports['health']}",
            f"--resync={resync}",
            f"--webhook-port={ports['webhook']}",
            f"--webhook-cert-dir={ms.cfg.state_dir / 'webhook'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    kube.wait_until(
        "operator healthz",
        lambda: (
            proc.poll() is None and health.http_ok(f"http://127.0.0.1:{ports['health']}/healthz")
        ),
        120,
    )
    return proc, ports


def _die_with_parent() -> None:
    """In the operator's process: get SIGTERM when the bench dies, however it dies."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextlib.contextmanager
def terminate_is_an_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks stop the operator and mothership."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def metric(ports: dict, name: str) -> float:
    _, text = health.http_get(f"http://127.0.0.1:{ports['metrics']}/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def create_clusters(
    admin: Path, n: int, concurrency: int, extra: dict | None = None
) -> dict[str, float]:
    client = AsyncClient(config=KubeConfig.from_file(admin), field_manager="bench")
    try:
        await client.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))
    except ApiError as exc:
        if exc.status.code != 409:
            raise
    sem = asyncio.Semaphore(concurrency)
    created: dict[str, float] = {}

    async def one(i: int) -> None:
        name = f"c{i:05d}"
        async with sem:
            await client.create(
                ClusterResource(
                    metadata=ObjectMeta(name=name, namespace=NAMESPACE),
                    spec={
                        "replicas": 1,
                        "version": "v1.35.4-k0s.0",
                        **(extra or {}),
                    },
                )
            )
            created[name] = time.monotonic()

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()
    return created


def converged(obj: dict) -> bool:
    status = obj.get("status") or {}
    conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return status.get("readyReplicas", 0) >= 1 and all(conds.get(t) == "True" for t in CONVERGED)


def run(
    clusters: int,
    concurrency: int,
    resync: float,
    state_dir: Path | None,
    keep: bool,
    timeout: float,
    report: Report,
    shared_postgres: bool = False,
    remote_host: bool = False,
) -> Result:
    with terminate_is_an_exit():
        return _run(
            clusters,
            concurrency,
            resync,
            state_dir,
            keep,
            timeout,
            report,
            shared_postgres,
            remote_host,
        )


def _run(
    clusters: int,
    concurrency: int,
    resync: float,
    state_dir: Path | None,
    keep: bool,
    timeout: float,
    report: Report,
    shared: bool = False,
    remote: bool = False,
) -> Result:
    state = state_dir or default_state_dir("bench")
    ms = configure_mothership(state, clusters)
    result = Result(clusters, concurrency)
    proc = None
    with contextlib.ExitStack() as stack:
        stack.callback(_down, ms, keep, state_dir is None, report, lambda: proc)
        ms.up(report, timeout=240)
        kc = kube.client(ms.cfg.kubeconfig)
        for crd in all_crds():
            kc.apply(from_dict(crd), field_manager="bench", force=True)
        shared_pg = None
        if shared:
            report("starting a PostgreSQL server and a DataStore on it for every Cluster")
            shared_datastore.ensure_namespace(kc, NAMESPACE)
            shared_pg = stack.enter_context(shared_datastore.shared_postgres(kc, NAMESPACE))
        hosting = None
        if remote:
            hosting = stack.enter_context(
                remote_hosting.hosting_mothership(
                    kc,
                    NAMESPACE,
                    state / "hosting",
                    lambda path, name: configure_mothership(path, clusters, name),
                    operator_kubeconfig,
                    report,
                    keep,
                )
            )
        proc, ports = start_operator(ms, resync)
        audit_log = ms.cfg.state_dir / "audit.log"
        report(f"creating {clusters} Clusters, {concurrency} at a time")
        started = time.monotonic()
        extra = {
            **({"storage": shared_pg.storage} if shared_pg else {}),
            **(hosting.spec if hosting else {}),
        }
        created = asyncio.run(create_clusters(ms.cfg.kubeconfig, clusters, concurrency, extra))
        result.create_seconds = time.monotonic() - started
        done: dict[str, float] = {}
        deadline = started + timeout
        last_report = 0.0
        while len(done) < clusters:
            if proc.poll() is not None:
                raise RuntimeError(f"operator exited ({proc.returncode}); see {audit_log.parent}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(done)} of {clusters} converged in {timeout:.0f}s")
            now = time.monotonic()
            for obj in kc.list(ClusterResource, namespace=NAMESPACE):
                d = obj.to_dict()
                name = d["metadata"]["name"]
                if name not in done and converged(d):
                    done[name] = now - created.get(name, started)
            if now - last_report > 10:
                report(f"{len(done)}/{clusters} converged after {now - started:.0f}s, "
                       f"operator RSS {procstat.rss_mib(proc.pid):.0f} MiB")  # fmt: skip
                last_report = now
            time.sleep(1.0)
        result.converge_seconds = time.monotonic() - started
        result.per_cluster = list(done.values())
        result.requests, offset = audit.read(audit_log)
        hosting_offset = 0
        if hosting:
            result.hosting, hosting_offset = hosting.requests()
        # A full resync round of a converged fleet: must write nothing.
        before = metric(ports, "mothership_reconciles_total")
        report(f"all converged; waiting for a full resync round (every {resync:.0f}s)")
        kube.wait_until(
            "a full resync round",
            lambda: metric(ports, "mothership_reconciles_total") >= before + clusters,
            resync * 3 + timeout / 4,
            interval=1.0,
        )
        resync_requests, _ = audit.read(audit_log, offset)
        result.resync_writes = resync_requests.writes
        result.resync_requests = resync_requests.total
        if hosting:
            there, _ = hosting.requests(hosting_offset)
            result.hosting_resync_writes, result.hosting_resync_requests = there.writes, there.total
        result.peak_rss_mib = procstat.peak_rss_mib(proc.pid)
        result.settled_rss_mib = procstat.rss_mib(proc.pid)
        result.cpu_seconds = procstat.cpu_seconds(proc.pid)
        result.child_peak_rss_mib = procstat.child_rss_mib(proc.pid, peak=True)
        result.child_cpu_seconds = procstat.child_cpu_seconds(proc.pid)
        if shared_pg:
            result.shared_databases = shared_pg.tenant_databases()
            mib, processes = shared_pg.memory_mib()
            result.shared_server_mib, result.shared_server_processes = mib, processes
    return result


def _down(
    ms: LocalMothership,
    keep: bool,
    purge: bool,
    report: Report,
    proc: Callable[[], subprocess.Popen[bytes] | None],
) -> None:
    """The operator first, then the mothership (the SQL server went just before, if any)."""
    running = proc()
    if running:
        _stop(running)
    if not keep:
        ms.down(report, purge=purge)
