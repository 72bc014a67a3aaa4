"""`mothership bench density`: how many serving control planes fit on this mothership.

On the real-node local mothership (pods really run), kubernetes-distribution Clusters on
kine/SQLite are added one after another. Every control plane that is Available gets a
steady light load through its own kubeconfig (GET /readyz and LIST namespaces, in turn, at
a fixed rate), and after each addition the latencies of every request in a window are
collected: the run stops at the first step whose p99 is over the limit, where a request
fails, where the newest control plane does not become Available, where the host runs low
on memory, or at --max-clusters. Then, with the load stopped, the kubelet's figures give
each control-plane pod's RSS and idle CPU (per container too, to see where it goes).
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from mothership.bench import podcpu, podmemory
from mothership.bench import provision as bench_provision
from mothership.bench.density_result import (
    ControlPlaneFigures,
    Result,
    Sample,
    Step,
    over_limit,
)
from mothership.bench.provision import Report
from mothership.bench.provision_result import CONTROL_PLANE, Storage
from mothership.errors import InvalidInput

PATHS = ("/readyz", "/api/v1/namespaces")
REQUEST_TIMEOUT = 10.0


@dataclass
class Options:
    max_clusters: int
    rate: float  # requests per second per control plane
    window: float  # seconds of load measured after each addition
    p99_limit: float
    min_mem_available_mib: float
    idle_window: float
    timeout: float  # per Cluster, apply -> Available
    keep: bool
    spec: dict[str, Any] | None = None  # merged into every Cluster's spec (--spec-file)
    name: str = "default"
    state_dir: Path | None = None
    settle: float = 0.0  # seconds at rest before the idle window (start-up work done)


def with_spec(manifest: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """The Cluster with `extra` merged into its spec (maps merged key by key, the rest
    replaced): how a tuning is measured against the defaults."""

    def merge(a: Any, b: Any) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            return {**a, **{k: merge(a.get(k), v) for k, v in b.items()}}
        return b

    if not extra:
        return manifest
    return {**manifest, "spec": merge(manifest.get("spec") or {}, extra)}


def read_spec_file(path: Path) -> dict[str, Any]:
    """--spec-file: a YAML mapping of Cluster spec fields, e.g. a spec.kubernetes.tuning."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"--spec-file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"--spec-file {path}: give a mapping of spec fields, e.g. "
            "kubernetes: {tuning: {apiServer: {goGC: 50}}}"
        )
    # A whole Cluster's `spec:` section pasted in works too.
    inner = data.get("spec")
    return inner if isinstance(inner, dict) else data


# --- the host -----------------------------------------------------------------------------------


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load1() -> float:
    return os.getloadavg()[0]


# --- the steady load ----------------------------------------------------------------------------


def tenant_tls(kubeconfig: dict[str, Any], directory: Path) -> tuple[str, ssl.SSLContext]:
    """The server and a TLS context with the admin's client certificate of a tenant kubeconfig."""
    cluster = kubeconfig["clusters"][0]["cluster"]
    user = kubeconfig["users"][0]["user"]
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, name in (
        ("certificate-authority-data", "ca.crt"),
        ("client-certificate-data", "client.crt"),
        ("client-key-data", "client.key"),
    ):
        source = cluster if key.startswith("certificate-authority") else user
        path = directory / name
        path.write_bytes(base64.b64decode(source[key]))
        files[name] = path
    ctx = ssl.create_default_context(cafile=str(files["ca.crt"]))
    ctx.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
    return str(cluster["server"]), ctx


class Load:
    """GET /readyz and LIST namespaces, in turn, on every control plane added, at `rate`."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.samples: list[Sample] = []
        self.running = True
        self.tasks: list[asyncio.Task[None]] = []

    def add(self, cluster: str, server: str, ctx: ssl.SSLContext) -> None:
        self.tasks.append(asyncio.create_task(self._drive(cluster, server, ctx)))

    async def _drive(self, cluster: str, server: str, ctx: ssl.SSLContext) -> None:
        import httpx

        async with httpx.AsyncClient(verify=ctx, timeout=REQUEST_TIMEOUT) as http:
            turn = 0
            next_at = time.monotonic()
            while True:
                next_at += self.interval
                if self.running:
                    path = PATHS[turn % len(PATHS)]
                    turn += 1
                    started = time.monotonic()
                    try:
                        ok = (await http.get(server + path)).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    done = time.monotonic()
                    self.samples.append(Sample(cluster, path, done, done - started, ok))
                # A fixed schedule, not "sleep after each": a slow answer does not lower the rate.
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def since(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.at >= t]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# --- the run ------------------------------------------------------------------------------------


def run(opts: Options, report: Report) -> Result:
    frame = bench_provision.realnode_mothership(
        opts.name, opts.state_dir, report, opts.timeout, keep=opts.keep
    )
    with frame as (ms, started):
        result = _run(ms, opts, report)
        result.mothership_started = started
        return result


def _run(ms: Any, opts: Options, report: Report) -> Result:
    from lightkube import Client
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    run_id = uuid.uuid4().hex[:6]
    namespace = f"bench-density-{run_id}"
    result = Result(
        namespace,
        opts.name,
        opts.max_clusters,
        opts.rate,
        opts.window,
        opts.p99_limit,
        spec=opts.spec or {},
    )
    config = bench_provision.admin_client_config(ms)
    kc = Client(config=config, field_manager=bench_provision.FIELD_MANAGER)
    bench_provision.check_operator(ms, kc)
    names: list[str] = []
    kc.create(
        Namespace(metadata=ObjectMeta(name=namespace, labels={bench_provision.RUN_LABEL: run_id}))
    )
    try:
        with tempfile.TemporaryDirectory(prefix="mothership-density-") as tmp:
            asyncio.run(
                _grow(ms, kc, config, namespace, run_id, opts, result, names, Path(tmp), report)
            )
    finally:
        if not opts.keep:
            report(f"deleting the {len(names)} Clusters and namespace {namespace}")
            asyncio.run(bench_provision.delete_all(config, namespace, names, opts.timeout * 2))
            result.cleaned_up = True
    return result


async def _grow(
    ms: Any,
    kc: Any,
    config: Any,
    namespace: str,
    run_id: str,
    opts: Options,
    result: Result,
    names: list[str],
    tmp: Path,
    report: Report,
) -> None:
    from lightkube.resources.core_v1 import Secret

    from mothership.render import names as object_names

    load = Load(opts.rate)
    try:
        for index in range(1, opts.max_clusters + 1):
            name = f"density-{index}"
            names.append(name)
            manifest = with_spec(
                bench_provision.cluster_manifest(name, namespace, Storage.kine, run_id), opts.spec
            )
            to_available: float | None
            try:
                timings, _, _ = await bench_provision.provision(
                    config, namespace, [manifest], 1, opts.timeout, report
                )
                to_available = timings[name].to_available
            except TimeoutError as exc:
                report(str(exc))
                to_available = None
            if to_available is not None:
                secret = await asyncio.to_thread(
                    kc.get, Secret, object_names.kubeconfig_secret(name), namespace=namespace
                )
                text = base64.b64decode((secret.data or {})["value"]).decode()
                server, ctx = tenant_tls(yaml.safe_load(text), tmp / name)
                load.add(name, server, ctx)
            window_start = time.monotonic()
            await asyncio.sleep(opts.window)  # the measurement window itself
            step = Step.of(
                index, to_available, load.since(window_start), mem_available_mib(), load1()
            )
            result.steps.append(step)
            report(
                f"{index} serving: p99 {step.p99 * 1000:.0f} ms over {step.requests} requests, "
                f"{step.errors} errors, MemAvailable {step.mem_available_mib / 1024:.1f} GiB, "
                f"load {step.load1:.1f}"
            )
            result.limit = over_limit(step, opts.p99_limit, opts.min_mem_available_mib)
            if result.limit:
                break
        else:
            result.limit = f"--max-clusters {opts.max_clusters} reached"
    finally:
        load.running = False
        await load.stop()
    if opts.settle:
        report(f"the load is stopped; letting the control planes settle for {opts.settle:g} s")
        await asyncio.sleep(opts.settle)
    report(f"the load is stopped; measuring every control plane at rest for {opts.idle_window:g} s")
    result.idle_window = opts.idle_window
    result.settle = opts.settle
    result.control_planes = await asyncio.to_thread(at_rest, ms, kc, namespace, opts.idle_window)


def at_rest(ms: Any, kc: Any, namespace: str, idle_window: float) -> list[ControlPlaneFigures]:
    """RSS and idle CPU of every control-plane pod, from two kubelet readings `idle_window`
    apart (each one taken after the moment it is asked for: cAdvisor refreshes every 10-15 s)."""
    from lightkube.resources.core_v1 import Pod

    from mothership.testenv import health, kube

    pods = [
        p
        for p in kc.list(Pod, namespace=namespace)
        if (p.metadata.labels or {}).get("component") == CONTROL_PLANE
    ]
    nodes = sorted({p.spec.nodeName for p in pods if p.spec and p.spec.nodeName})
    pki = ms.cfg.pki_dir
    tls = health.tls_context(pki / "ca.crt", pki / "admin.crt", pki / "admin.key")

    def reading(after: datetime) -> tuple[dict[str, podcpu.PodCpu], dict[str, podmemory.PodMemory]]:
        cpu: dict[str, podcpu.PodCpu] = {}
        memory: dict[str, podmemory.PodMemory] = {}

        def fresh() -> bool:
            cpu.clear()
            memory.clear()
            for node in nodes:
                cpu.update(podcpu.read(ms.cfg.api_url, node, namespace, tls))
                memory.update(podmemory.read(ms.cfg.api_url, node, namespace, tls))
            return all(
                p.metadata.name in cpu and cpu[p.metadata.name].taken_after(after) for p in pods
            )

        kube.wait_until("the kubelet's figures of every pod", fresh, 120, interval=2.0)
        return cpu, memory

    first, _ = reading(datetime.now(UTC))
    second, memory = reading(latest(first) + timedelta(seconds=idle_window))
    out = []
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        name = pod.metadata.name
        a, b, m = first[name], second[name], memory.get(name)
        out.append(
            ControlPlaneFigures(
                cluster=(pod.metadata.labels or {}).get("cluster", ""),
                rss_mib=m.rss_mib if m else 0.0,
                idle_cores=podcpu.cores_between(a.pod, b.pod),
                container_rss_mib={k: v.rss_mib for k, v in (m.containers if m else {}).items()},
                container_idle_cores={
                    k: cores
                    for k in b.containers
                    if (cores := podcpu.cores_between(a.containers.get(k), b.containers[k]))
                    is not None
                },
            )
        )
    return out


def latest(readings: dict[str, podcpu.PodCpu]) -> datetime:
    """The latest time among a set of readings: the next set must start after all of them."""
    return max(
        t.taken
        for r in readings.values()
        for t in (*r.containers.values(), *([r.pod] if r.pod else []))
    )
