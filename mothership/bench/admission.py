"""`mothership bench admission`: a burst of Cluster creates through the webhooks.

Reproduces issue 12's case (1,000 Clusters in one `kubectl create -f`, on a kwok
mothership with the operator reconciling what it admits) and prints what each webhook
cost: request count and p50/p95/p99 from the API server's own admission histograms
(scraped before and after the burst, so only the burst counts) and, beside them, the
operator's handling time from its ``mothership_webhook_duration_seconds``. The same
burst without the operator (no webhooks registered yet) is the baseline.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace

from mothership.api.crdgen import all_crds
from mothership.api.k0smotron.v1beta2 import GROUP
from mothership.bench import admission_result as figures
from mothership.bench.fleet import _die_with_parent, _stop, terminate_is_an_exit
from mothership.controllers.cluster import ClusterResource
from mothership.testenv import health, kube
from mothership.testenv.local import LocalMothership, default_state_dir
from mothership.testenv.ports import free_ports

Report = Callable[[str], None]
NAMESPACE = "bench"
BASELINE_NAMESPACE = "bench-baseline"
# Watched by the operator when --no-reconcile: nothing is ever created there.
IDLE_NAMESPACE = "bench-idle"
CRD_NAME = "clusters.k0smotron.io"
WEBHOOK_SUFFIX = f".mothership.{GROUP}"


@dataclass(frozen=True)
class Options:
    clusters: int = 1000
    concurrency: int = 1  # 1: one `kubectl create -f` (sequential, as kubectl sends them)
    api_version: str = "v1beta1"
    reconcile: bool = True
    baseline: bool = True
    timeout: float = 1800.0
    state_dir: Path | None = None
    keep: bool = False


def manifest(n: int, api_version: str, namespace: str) -> dict[str, Any]:
    """A List of ``n`` minimal Clusters, as a user would write them (defaults left out)."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": f"{GROUP}/{api_version}",
                "kind": "Cluster",
                "metadata": {"name": f"c{i:05d}", "namespace": namespace},
                "spec": {"replicas": 1, "version": "v1.35.4-k0s.0"},
            }
            for i in range(n)
        ],
    }


def run(options: Options, report: Report) -> figures.Result:
    with terminate_is_an_exit():
        return _run(options, report)


def _run(options: Options, report: Report) -> figures.Result:
    state = options.state_dir or default_state_dir("bench-admission")
    state.mkdir(parents=True, exist_ok=True)
    nodes = max(3, math.ceil(2 * options.clusters / 200))
    ms = LocalMothership.configure(
        "bench-admission",
        state_dir=state,
        nodes="kwok",
        kwok_nodes=nodes,
        apiserver_args=["--max-requests-inflight=800", "--max-mutating-requests-inflight=400"],
    )
    kubectl = ms.cfg.bin_dir / "kubectl"
    use_kubectl = options.concurrency == 1 and kubectl.is_file()
    client = "kubectl create -f (one List)" if use_kubectl else (
        f"{options.concurrency} concurrent creates")  # fmt: skip
    result = figures.Result(options.clusters, client, options.api_version, options.reconcile)
    proc = None
    try:
        ms.up(report, timeout=240)
        kc = kube.client(ms.cfg.kubeconfig)
        for crd in all_crds():
            kc.apply(from_dict(crd), field_manager="bench", force=True)
        kube.wait_until("the Cluster CRD established", lambda: _established(ms), 60)
        create = _creator(ms, kubectl if use_kubectl else None, options)
        if options.baseline:
            report(f"baseline: {options.clusters} Clusters, no webhooks, no operator")
            result.runs.append(_burst(ms, None, create, BASELINE_NAMESPACE, "without webhooks"))
            _delete_all(ms, BASELINE_NAMESPACE, options.timeout)
        proc, ports = _start_operator(ms, options.reconcile)
        report(f"{options.clusters} Clusters through the webhooks")
        result.runs.append(_burst(ms, ports, create, NAMESPACE, "through the webhooks"))
    finally:
        if proc:
            _stop(proc)
        if not options.keep:
            ms.down(report, purge=options.state_dir is None)
    return result


Create = Callable[[str], None]


def _creator(ms: LocalMothership, kubectl: Path | None, options: Options) -> Create:
    """Creates every Cluster of the bench in a namespace: kubectl, or concurrent creates."""

    def create(namespace: str) -> None:
        _ensure_namespace(ms, namespace)
        if _count(ms, namespace):
            raise RuntimeError(
                f"namespace {namespace} of {ms.cfg.state_dir} already holds Clusters (a run "
                "with --keep?): give another --state-dir"
            )
        body = manifest(options.clusters, options.api_version, namespace)
        if kubectl is None:
            asyncio.run(_create_concurrently(ms.cfg.kubeconfig, body, options.concurrency))
            return
        path = ms.cfg.state_dir / f"clusters-{namespace}.json"
        path.write_text(json.dumps(body))
        done = subprocess.run(
            [str(kubectl), f"--kubeconfig={ms.cfg.kubeconfig}", "create", "-f", str(path),
             "-o", "name"],
            capture_output=True, text=True, timeout=options.timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"kubectl create -f {path}: {done.stderr.strip()[-2000:]}")

    return create


def _burst(
    ms: LocalMothership, ports: dict[str, int] | None, create: Create, namespace: str, label: str
) -> figures.Run:
    """One burst of creates, with the webhook histograms scraped around it."""
    ctx = _apiserver_context(ms)
    before = _apiserver_metrics(ms, ctx)
    op_before = _operator_metrics(ports) if ports else ""
    started = time.monotonic()
    create(namespace)
    seconds = time.monotonic() - started
    load = os.getloadavg()
    after = _apiserver_metrics(ms, ctx)
    op_after = _operator_metrics(ports) if ports else ""
    run = figures.Run(label, _count(ms, namespace), seconds, load)
    apiserver = figures.grouped(
        figures.parse(before, figures.ADMISSION),
        figures.parse(after, figures.ADMISSION),
        figures.admission_key(WEBHOOK_SUFFIX),
    )
    apiserver |= figures.grouped(
        figures.parse(before, figures.CONVERSION),
        figures.parse(after, figures.CONVERSION),
        figures.conversion_key(CRD_NAME),
    )
    run.apiserver = figures.figures(apiserver)
    if ports:
        run.operator = figures.figures(
            figures.grouped(
                figures.parse(op_before, figures.OPERATOR),
                figures.parse(op_after, figures.OPERATOR),
                figures.operator_key,
            )
        )
    return run


def _apiserver_context(ms: LocalMothership) -> ssl.SSLContext:
    pki = ms.cfg.pki_dir
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return ctx


def _apiserver_metrics(ms: LocalMothership, ctx: ssl.SSLContext) -> str:
    status, text = health.http_get(f"{ms.cfg.api_url}/metrics", ctx, timeout=30)
    if status != 200:
        raise RuntimeError(f"GET {ms.cfg.api_url}/metrics: HTTP {status}: {text[:300]}")
    return text


def _operator_metrics(ports: dict[str, int]) -> str:
    status, text = health.http_get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=30)
    return text if status == 200 else ""


def _start_operator(
    ms: LocalMothership, reconcile: bool
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """`mothership operator run` with its webhooks registered at a free port.

    Without ``reconcile`` it watches only a namespace that stays empty: the webhooks still
    judge every namespace, but no reconcile competes with them.
    """
    ports = free_ports(["metrics", "health", "webhook"])
    (ms.cfg.state_dir / "logs").mkdir(parents=True, exist_ok=True)
    log = open(ms.cfg.state_dir / "logs" / "operator.log", "ab")  # noqa: SIM115
    argv = [
        "mothership", "operator", "run",
        f"--kubeconfig={ms.cfg.kubeconfig}",
        f"--metrics-port={ports['metrics']}",
        f"--health-port={ports['health']}",
        f"--webhook-port={ports['webhook']}",
        f"--webhook-cert-dir={ms.cfg.state_dir / 'webhook'}",
        "--unregister-webhooks-on-exit",
    ]  # fmt: skip
    if not reconcile:
        argv.append(f"--namespace={IDLE_NAMESPACE}")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    kube.wait_until(
        "operator healthz",
        lambda: (
            proc.poll() is None and health.http_ok(f"http://127.0.0.1:{ports['health']}/healthz")
        ),
        120,
    )
    return proc, ports


def _ensure_namespace(ms: LocalMothership, namespace: str) -> None:
    kc = kube.client(ms.cfg.kubeconfig)
    try:
        kc.create(Namespace(metadata=ObjectMeta(name=namespace)))
    except ApiError as exc:
        if exc.status.code != 409:
            raise


def _established(ms: LocalMothership) -> bool:
    crd = kube.client(ms.cfg.kubeconfig).get(CustomResourceDefinition, CRD_NAME)
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _count(ms: LocalMothership, namespace: str) -> int:
    kc = kube.client(ms.cfg.kubeconfig)
    return sum(1 for _ in kc.list(ClusterResource, namespace=namespace, chunk_size=500))


def _delete_all(ms: LocalMothership, namespace: str, timeout: float) -> None:
    """Remove the baseline's Clusters, so the operator started next has only the bench's."""
    kc = kube.client(ms.cfg.kubeconfig)
    kc.deletecollection(ClusterResource, namespace=namespace)
    kube.wait_until(
        f"Clusters in {namespace} deleted", lambda: _count(ms, namespace) == 0, timeout, 1.0
    )


async def _create_concurrently(kubeconfig: Path, body: dict[str, Any], concurrency: int) -> None:
    client = AsyncClient(config=KubeConfig.from_file(kubeconfig), field_manager="bench")
    sem = asyncio.Semaphore(concurrency)

    group, version = body["items"][0]["apiVersion"].split("/")
    resource = create_namespaced_resource(group, version, "Cluster", "clusters")

    async def one(item: dict[str, Any]) -> None:
        async with sem:
            await client.create(resource.from_dict(item))

    try:
        await asyncio.gather(*(one(item) for item in body["items"]))
    finally:
        await client.close()
