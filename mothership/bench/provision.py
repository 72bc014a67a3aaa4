"""`mothership bench provision`: from a Cluster manifest to a serving control plane, timed.

On the real-node local mothership (pods really run), N `kubernetes`-distribution Clusters
are applied and each is timed from its apply to its `Available=True` condition, seen on a
watch. Then the kubelet's own memory figures of every control-plane pod and container are
read, and the Clusters are deleted and waited for. Next to the Cluster figures stands the
floor: a bare kube-apiserver started by hand on the same kind of datastore (floor.py), so
the overhead of everything between a manifest and a serving API is visible.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mothership.bench import floor as bench_floor
from mothership.bench import hostlock
from mothership.bench.podmemory import PodMemory
from mothership.bench.provision_result import (
    CONTROL_PLANE,
    PVC_SIZE,
    ClusterTiming,
    PodFigures,
    Result,
    Storage,
)
from mothership.bench.watching import follow, until_gone
from mothership.errors import InvalidInput, MissingPrerequisite, UserError

Report = Callable[[str], None]
FIELD_MANAGER = "mothership-bench"
RUN_LABEL = "bench.mothership.dev/provision"


# --- what is applied ----------------------------------------------------------------------------


def cluster_manifest(
    name: str, namespace: str, storage: Storage, run: str, kine_url: str = ""
) -> dict[str, Any]:
    """The Cluster `mothership cluster create` would apply for these flags, as it is.

    Built and checked by the code the CLI uses (specs/: the webhook's rules hold before sending).
    autoDeletePVCs stays off, as by default: the clean-up deletes the run's namespace, and its
    claims with it. (With it on, the StatefulSet controller writes owner references on each
    new claim while the scheduler annotates it: the scheduler's write conflicts and retries
    after a back-off, a second or two that users of the default never see.)
    """
    from mothership.specs.clusters import ClusterFlags, cluster_from_flags

    flags = ClusterFlags(distribution="kubernetes", labels={RUN_LABEL: run})
    if storage == Storage.kine:
        flags.storage, flags.persistence, flags.persistence_size = "kine", "pvc", PVC_SIZE
    elif storage == Storage.etcd:
        flags.storage = "etcd"
    else:
        flags.storage, flags.kine_url = "kine", kine_url
    return cluster_from_flags(name, namespace, flags).objects[0]


# --- the local mothership -----------------------------------------------------------------------


def _flag(name: str) -> str:
    return "" if name == "default" else f" --name {name}"


def ensure_mothership(
    name: str, state_dir: Path | None, report: Report, timeout: float
) -> tuple[Any, bool]:
    """The running real-node mothership `name`, or one started now; (it, started by us)."""
    from mothership.testenv.local import LocalMothership

    try:
        existing: LocalMothership | None = LocalMothership.load(name, state_dir)
    except FileNotFoundError:
        existing = None
    if existing is not None and existing.running():
        if existing.cfg.nodes != "real":
            raise MissingPrerequisite(
                f"mothership {name!r} runs with --nodes {existing.cfg.nodes}, where control "
                f"planes do not really run; stop it with `mothership dev down{_flag(name)}` "
                "and re-run: the bench then starts it with the real node"
            )
        sick = [s.name for s in existing.status() if not s.healthy]
        if sick:
            raise UserError(
                f"mothership {name!r} is running but not healthy ({', '.join(sick)}); see "
                f"`mothership dev status{_flag(name)}`, or restart it with "
                f"`mothership dev up{_flag(name)}`"
            )
        return existing, False
    datastore = existing.cfg.datastore if existing is not None else "etcd"
    ms = LocalMothership.configure(
        name, state_dir=state_dir, datastore=datastore, nodes="real", operator=None
    )
    report(f"starting the local mothership {name!r} with the real node (stopped again at the end)")
    ms.up(report, timeout=timeout)
    return ms, True


@contextmanager
def realnode_mothership(
    name: str, state_dir: Path | None, report: Report, timeout: float, keep: bool = False
) -> Iterator[tuple[Any, bool]]:
    """The frame every real-node bench runs in: yields (the mothership `name`, started by us).

    The real-node bench lock is taken first (hostlock.py: a second bench would measure the
    first one's load; `report` says whom it waits for), and only then is the mothership
    found or started, so two benches never race to start it. SIGTERM unwinds like Ctrl-C,
    so a mothership started here is stopped again on success, error, Ctrl-C or SIGTERM,
    unless `keep`: what the bench leaves behind for a look needs it running.
    """
    from mothership.bench.fleet import terminate_is_an_exit

    def waiting(pid: int | None) -> None:
        who = f"another real-node bench (pid {pid})" if pid else "another real-node bench"
        report(f"waiting for {who} to finish (lock {hostlock.realnode_bench_lock()})...")

    with terminate_is_an_exit(), hostlock.exclusive(hostlock.realnode_bench_lock(), waiting):
        ms, started = ensure_mothership(name, state_dir, report, timeout)
        try:
            yield ms, started
        finally:
            if started and not keep:
                report(f"stopping the local mothership {name!r} the bench started")
                ms.down(report)


def admin_client_config(ms: Any) -> Any:
    """The mothership's admin credentials, pinned to its own context.

    The state dir's kubeconfig may hold tenant contexts merged in by the user, and its
    current context may be one of them.
    """
    from lightkube import KubeConfig

    config = KubeConfig.from_file(ms.cfg.kubeconfig)
    return config.get(context_name=f"mothership-{ms.cfg.name}", default=config.get())


def check_operator(ms: Any, kc: Any) -> None:
    """Some operator must reconcile Clusters: the host one, or one installed in the cluster."""
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration

    from mothership.webhooks.registration import CONFIG_NAME

    if ms.cfg.operator:
        return
    try:
        kc.get(MutatingWebhookConfiguration, CONFIG_NAME)
    except ApiError as exc:
        if exc.status.code != 404:
            raise
        raise MissingPrerequisite(
            f"no operator reconciles Clusters on mothership {ms.cfg.name!r} (its operator is "
            f"off): start it with `mothership dev up --operator{_flag(ms.cfg.name)}` (or "
            "install one with `mothership install`), then re-run the bench"
        ) from None


def check_etcd_image(kc: Any, manifest: dict[str, Any]) -> None:
    """Managed etcd runs the etcd image the admission webhook fills in; fail now, not after
    the timeout, when no node has it (nothing can be pulled on the local mothership)."""
    from lightkube.codecs import from_dict
    from lightkube.resources.core_v1 import Node

    from mothership.controllers.cluster import ClusterResource  # noqa: F401 - registers the kind

    defaulted = kc.apply(from_dict(manifest), dry_run=True, force=True)
    image = (((defaulted.spec or {}).get("storage") or {}).get("etcd") or {}).get("image")
    if not image:
        return
    for node in kc.list(Node):
        for present in (node.status.images if node.status else None) or []:
            if image in (present.names or []):
                return
    raise MissingPrerequisite(
        f"--storage etcd: the etcd image {image} (the operator's default) is on no node of "
        "this mothership and cannot be pulled here; use --storage kine, postgres or mysql"
    )


# --- provisioning ------------------------------------------------------------------------------


def _condition(obj: Any, kind: str) -> dict[str, Any]:
    status = obj.status or {}
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


async def provision(
    config: Any,
    namespace: str,
    manifests: list[dict[str, Any]],
    concurrency: int,
    timeout: float,
    report: Report,
) -> tuple[dict[str, ClusterTiming], float, float]:
    """Apply every Cluster and watch them to Available; (timings, applied in, all Available)."""
    from lightkube import AsyncClient
    from lightkube.codecs import from_dict
    from lightkube.resources.core_v1 import Pod

    from mothership.controllers.cluster import ClusterResource

    client = AsyncClient(config=config, field_manager=FIELD_MANAGER)
    timings = {m["metadata"]["name"]: ClusterTiming(m["metadata"]["name"]) for m in manifests}
    # Set when a Cluster is Available: its place among the `concurrency` in flight frees up.
    served = {name: asyncio.Event() for name in timings}
    first_apply: list[float] = []
    applied_all = [0.0]

    def on_cluster(kind: str, obj: Any) -> None:
        t = timings.get(obj.metadata.name)
        if t is None or kind == "DELETED" or t.available is not None or t.applied is None:
            return
        cond = _condition(obj, "Available")
        if cond.get("status") == "True":
            t.available, t.available_at = time.monotonic(), datetime.now(UTC)
            t.version = (obj.status or {}).get("version") or ""
            served[t.name].set()
            done = sum(1 for x in timings.values() if x.available is not None)
            report(f"{t.name} Available {t.to_available:.1f} s after apply ({done}/{len(timings)})")
        elif cond:
            t.waiting_for = f"{cond.get('reason')}: {cond.get('message')}"

    def on_pod(kind: str, pod: Any) -> None:
        labels = pod.metadata.labels or {}
        t = timings.get(labels.get("cluster", ""))
        if t is None or kind == "DELETED" or labels.get("component") != CONTROL_PLANE:
            return
        now = time.monotonic()
        if t.pod_created is None:
            t.pod_created = now
        status = pod.status
        conditions = {c.type: c.status for c in (status.conditions if status else None) or []}
        containers = (status.containerStatuses if status else None) or []
        if t.pod_scheduled is None and conditions.get("PodScheduled") == "True":
            t.pod_scheduled = now
        running = bool(containers) and all(c.state and c.state.running for c in containers)
        if t.containers_running is None and running:
            t.containers_running = now
        if t.pod_ready is None and conditions.get("Ready") == "True":
            t.pod_ready = now

    async def apply_all() -> None:
        # `concurrency` Clusters provision at once: the next is applied when one is Available.
        sem = asyncio.Semaphore(concurrency)

        async def one(manifest: dict[str, Any]) -> None:
            async with sem:
                t = timings[manifest["metadata"]["name"]]
                t.applied = time.monotonic()
                first_apply.append(t.applied)
                await client.apply(from_dict(manifest), force=True)
                await served[t.name].wait()

        await asyncio.gather(*(one(m) for m in manifests))
        applied_all[0] = max(t.applied for t in timings.values() if t.applied) - min(first_apply)
        report(f"{len(manifests)} Clusters applied over {applied_all[0]:.1f} s")

    def all_available() -> bool:
        return all(t.available is not None for t in timings.values())

    # List-then-watch: a Cluster applied before a watch is up is seen in its list.
    pods = asyncio.create_task(follow(client, Pod, on_pod, lambda: False, namespace=namespace))
    clusters = asyncio.create_task(
        follow(client, ClusterResource, on_cluster, all_available, namespace=namespace)
    )
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(apply_all(), clusters)
    except TimeoutError:
        waiting = [t for t in timings.values() if t.available is None]
        raise TimeoutError(
            f"{len(timings) - len(waiting)} of {len(timings)} Clusters Available after "
            f"{timeout:.0f} s; still waiting: "
            + "; ".join(
                f"{t.name} ({t.waiting_for or 'no Available condition yet'})" for t in waiting
            )
            + ". With --keep they stay for a look (`mothership cluster get NAME -n NAMESPACE`)"
        ) from None
    finally:
        for task in (pods, clusters):
            task.cancel()
        await asyncio.gather(pods, clusters, return_exceptions=True)
        await client.close()
    last = max(t.available for t in timings.values() if t.available is not None)
    return timings, applied_all[0], last - min(first_apply)


async def delete_all(config: Any, namespace: str, names: list[str], timeout: float) -> None:
    """Delete the Clusters (foreground), their namespace, and wait for every trace to go."""
    from lightkube import AsyncClient
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.core_v1 import Namespace, PersistentVolume, Pod
    from lightkube.types import CascadeType

    from mothership.controllers.cluster import ClusterResource

    client = AsyncClient(config=config, field_manager=FIELD_MANAGER)

    async def delete(res: Any, name: str, ns: str | None = None) -> None:
        try:
            await client.delete(res, name, namespace=ns, cascade=CascadeType.FOREGROUND)
        except ApiError as exc:
            if exc.status.code != 404:
                raise

    def claimed_here(pv: Any) -> bool:
        ref = pv.spec.claimRef if pv.spec else None
        return bool(ref and ref.namespace == namespace)

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(delete(ClusterResource, n, namespace) for n in names))
            await until_gone(client, ClusterResource, namespace=namespace)
            await until_gone(client, Pod, namespace=namespace)
            await delete(Namespace, namespace)
            await until_gone(client, Namespace, fields={"metadata.name": namespace})
            await until_gone(client, PersistentVolume, mine=claimed_here)
    except TimeoutError:
        raise TimeoutError(
            f"the bench's Clusters in namespace {namespace} were not all gone after "
            f"{timeout:.0f} s; look with `mothership cluster list -n {namespace}`"
        ) from None
    finally:
        await client.close()


# --- memory -------------------------------------------------------------------------------------


def read_memory(
    ms: Any, kc: Any, namespace: str, after: datetime, timeout: float
) -> list[PodFigures]:
    """Every pod of the run, with figures the kubelet took after the last Cluster was Available."""
    from lightkube.resources.core_v1 import Pod

    from mothership.bench import podmemory
    from mothership.testenv import health, kube

    pods = list(kc.list(Pod, namespace=namespace))
    nodes = sorted({p.spec.nodeName for p in pods if p.spec and p.spec.nodeName})
    p = ms.cfg.pki_dir
    tls = health.tls_context(p / "ca.crt", p / "admin.crt", p / "admin.key")
    seen: dict[str, PodMemory] = {}

    def fresh() -> bool:
        seen.clear()
        for node in nodes:
            seen.update(podmemory.read(ms.cfg.api_url, node, namespace, tls))
        return all(
            pod.metadata.name in seen and seen[pod.metadata.name].taken_after(after) for pod in pods
        )

    kube.wait_until(
        "the kubelet's memory figures of every pod, taken after Available",
        fresh,
        timeout,
        interval=2.0,
    )
    out = []
    for pod in sorted(pods, key=lambda x: x.metadata.name):
        labels = pod.metadata.labels or {}
        out.append(
            PodFigures(
                labels.get("cluster", ""), labels.get("component", ""), seen[pod.metadata.name]
            )
        )
    return out


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Options:
    clusters: int
    storage: Storage
    concurrency: int
    keep: bool
    timeout: float
    floor_runs: int
    name: str = "default"
    state_dir: Path | None = None


def run(opts: Options, report: Report) -> Result:
    if opts.keep and opts.storage in (Storage.postgres, Storage.mysql):
        raise InvalidInput(
            f"--keep with --storage {opts.storage.value}: the bench's private SQL server stops "
            "when the bench ends, which would leave the kept Clusters without a datastore; "
            "drop --keep, or use --storage kine or etcd"
        )
    frame = realnode_mothership(opts.name, opts.state_dir, report, opts.timeout, keep=opts.keep)
    with frame as (ms, started):
        result = _run(ms, opts, report)
        result.mothership_started = started
        return result


def _floor_store(storage: Storage, sql: Any) -> bench_floor.Datastore:
    if storage == Storage.kine:
        return bench_floor.kine_sqlite()
    if storage == Storage.etcd:
        return bench_floor.etcd()

    def url(index: int) -> str:
        return str(sql.create_database(f"floor_{index}").url)

    return bench_floor.kine_sql(
        f"kine on {'PostgreSQL' if storage == Storage.postgres else 'MariaDB'}", url
    )


def _start_sql(storage: Storage, report: Report) -> Any:
    """The private SQL server of --storage postgres|mysql, or None."""
    from mothership.testenv import sqlservers

    if storage not in (Storage.postgres, Storage.mysql):
        return None
    kind: sqlservers.Kind = "postgres" if storage == Storage.postgres else "mysql"
    report(f"starting a private {kind} server")
    try:
        return sqlservers.start(kind)
    except sqlservers.SqlServerUnavailable as exc:
        raise MissingPrerequisite(str(exc)) from None


def _run(ms: Any, opts: Options, report: Report) -> Result:
    from lightkube import Client
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    from mothership.testenv import sqlservers

    run_id = uuid.uuid4().hex[:6]
    namespace = f"bench-provision-{run_id}"
    result = Result(opts.clusters, opts.storage, opts.concurrency, namespace, opts.name)
    config = admin_client_config(ms)
    kc = Client(config=config, field_manager=FIELD_MANAGER)
    check_operator(ms, kc)
    names = [f"bench-{i + 1}" for i in range(opts.clusters)]
    sql = _start_sql(opts.storage, report)
    try:
        manifests = [
            cluster_manifest(
                n,
                namespace,
                opts.storage,
                run_id,
                sql.create_database(sqlservers.database_name(n)).pod_url if sql else "",
            )
            for n in names
        ]
        kc.create(Namespace(metadata=ObjectMeta(name=namespace, labels={RUN_LABEL: run_id})))
        try:
            if opts.storage == Storage.etcd:
                check_etcd_image(kc, manifests[0])
            store = _floor_store(opts.storage, sql)
            result.floor_datastore = store.label
            if opts.floor_runs:
                report(f"floor: a bare kube-apiserver on {store.label}, {opts.floor_runs} runs")
                result.floor = bench_floor.measure(ms.cfg.bin_dir, store, opts.floor_runs, report)
            report(
                f"applying {opts.clusters} Clusters in namespace {namespace}, "
                f"{opts.concurrency} at a time"
            )
            timings, result.all_applied_seconds, result.total_seconds = asyncio.run(
                provision(config, namespace, manifests, opts.concurrency, opts.timeout, report)
            )
            result.timings = [timings[n] for n in names]
            last = max(t.available_at for t in result.timings if t.available_at is not None)
            report("reading the kubelet's memory figures of every pod")
            result.pods = read_memory(ms, kc, namespace, last, timeout=120.0)
        finally:
            if not opts.keep:
                report(f"deleting the {opts.clusters} Clusters and namespace {namespace}")
                started = time.monotonic()
                asyncio.run(delete_all(config, namespace, names, opts.timeout))
                result.cleanup_seconds = time.monotonic() - started
                result.cleaned_up = True
    finally:
        if sql is not None:
            sqlservers.remove(sql)
    return result
