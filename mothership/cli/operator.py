"""`mothership operator run`: the operator, out of cluster (kubeconfig) or in a pod."""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Run the mothership operator.", no_args_is_help=True)


class LogFormat(StrEnum):
    json = "json"
    plain = "plain"


@app.command()
def run(
    kubeconfig: Path | None = typer.Option(
        None,
        "--kubeconfig",
        help="Kubeconfig of the mothership (default: in-cluster, then $KUBECONFIG).",
    ),
    namespace: list[str] = typer.Option(
        None, "-n", "--namespace", help="Watch only these namespaces (repeatable); default: all."
    ),
    metrics_port: int = typer.Option(
        8080, "--metrics-port", help="Prometheus metrics port (0: off)."
    ),
    health_port: int = typer.Option(8081, "--health-port", help="Liveness probe port (/healthz)."),
    resync: float = typer.Option(60.0, "--resync", help="Seconds between full resyncs."),
    log_format: LogFormat = typer.Option(LogFormat.json, "--log-format"),
    webhooks: bool = typer.Option(
        True, "--webhooks/--no-webhooks", help="Serve and register admission + conversion."
    ),
    webhook_host: str = typer.Option("127.0.0.1", "--webhook-host", help="Address to listen on."),
    webhook_port: int = typer.Option(9443, "--webhook-port", help="Port to listen on (0: any)."),
    webhook_service: str | None = typer.Option(
        None, "--webhook-service", help="namespace/name of the Service in front (in-cluster)."
    ),
    webhook_cert_dir: Path | None = typer.Option(
        None, "--webhook-cert-dir", help="Where the self-managed webhook certificates live."
    ),
    webhook_certs: str = typer.Option(
        "self",
        "--webhook-certs",
        help="self: own CA in --webhook-cert-dir; secret: one CA for every replica, kept in "
        "the Secret --webhook-cert-secret of the operator's namespace; provided: read "
        "tls.crt/tls.key (and ca.crt) from --webhook-cert-dir, e.g. written by cert-manager.",
    ),
    webhook_cert_secret: str = typer.Option(
        "mothership-webhook-tls", "--webhook-cert-secret", help="Secret for --webhook-certs=secret."
    ),
    webhook_registration: str = typer.Option(
        "full",
        "--webhook-registration",
        help="full: write webhook configurations and CRD conversion; ca-bundle: only fill in "
        "caBundle of those the install manifest created; none: leave it to cert-manager.",
    ),
    webhook_dns_name: list[str] = typer.Option(
        None, "--webhook-dns-name", help="Extra DNS name in the serving certificate (repeatable)."
    ),
    webhook_serving: str = typer.Option(
        "process",
        "--webhook-serving",
        envvar="MOTHERSHIP_WEBHOOK_SERVING",
        help="process: serve the webhooks from a child process of the operator (it never "
        "waits for the reconciles' GIL; restarted when it exits); thread: on an event loop "
        "thread inside the operator's process.",
    ),
    unregister_on_exit: bool = typer.Option(
        False, "--unregister-webhooks-on-exit", help="Remove the webhook registrations on exit."
    ),
    leader_elect: bool = typer.Option(
        True, "--leader-elect/--no-leader-elect", help="Run only while holding the Lease."
    ),
    leader_namespace: str | None = typer.Option(
        None, "--leader-election-namespace", help="Namespace of the Lease (default: own/default)."
    ),
    leader_identity: str | None = typer.Option(
        None, "--leader-identity", help="This replica's name in the Lease (default: hostname)."
    ),
    kubernetes_image_template: str | None = typer.Option(
        None,
        "--kubernetes-image-template",
        envvar="MOTHERSHIP_KUBERNETES_IMAGE_TEMPLATE",
        help=(
            "Image for the kubernetes distribution's control plane containers when a Cluster "
            "names none; {version} becomes the Cluster's version, e.g. "
            "localhost/mothership/control-plane:{version}. Default: the upstream images."
        ),
    ),
    default_etcd_image: str | None = typer.Option(
        None,
        "--default-etcd-image",
        envvar="MOTHERSHIP_DEFAULT_ETCD_IMAGE",
        help=(
            "etcd image a Cluster with storage etcd gets when it names none (filled in by the "
            "admission webhook on creation; a Cluster's own image is never replaced), e.g. "
            "localhost/mothership/control-plane:v1.35.4. Default: quay.io/k0sproject/etcd."
        ),
    ),
    k0s_image_repository: str | None = typer.Option(
        None,
        "--k0s-image-repository",
        envvar="MOTHERSHIP_K0S_IMAGE_REPOSITORY",
        help=(
            "Repository of the k0s image for Clusters that keep the default image "
            "(quay.io/k0sproject/k0s), tag unchanged, e.g. localhost/mothership/k0s; a "
            "Cluster's own image is never replaced. Default: quay.io/k0sproject/k0s."
        ),
    ),
    monitoring_prometheus_image: str | None = typer.Option(
        None,
        "--monitoring-prometheus-image",
        envvar="MOTHERSHIP_MONITORING_PROMETHEUS_IMAGE",
        help=(
            "Image of the Prometheus sidecar of Clusters with monitoring enabled that keep the "
            "default (quay.io/k0sproject/prometheus:v2.44.0); a Cluster's own image is never "
            "replaced, e.g. localhost/mothership/prometheus:v3.16.0. Default: that one."
        ),
    ),
    monitoring_proxy_image: str | None = typer.Option(
        None,
        "--monitoring-proxy-image",
        envvar="MOTHERSHIP_MONITORING_PROXY_IMAGE",
        help=(
            "Image of the nginx sidecar serving the scraped metrics, for Clusters that keep "
            "the default (nginx:1.19.10); a Cluster's own image is never replaced. "
            "Default: that one."
        ),
    ),
    node_download_url: str | None = typer.Option(
        None,
        "--node-download-url",
        envvar="MOTHERSHIP_NODE_DOWNLOAD_URL",
        help=(
            "Mirror the join commands download node components from (laid out like the "
            "upstream locations, host and path below it). Default: upstream (dl.k8s.io, GitHub)."
        ),
    ),
    node_registry_mirror: str | None = typer.Option(
        None,
        "--node-registry-mirror",
        envvar="MOTHERSHIP_NODE_REGISTRY_MIRROR",
        help=(
            "Registry the join commands make joined nodes pull registry.k8s.io, docker.io, "
            "quay.io and ghcr.io images from, e.g. http://10.200.0.1:5000. Default: none."
        ),
    ),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Debug logging."),
    log_level: str = typer.Option(
        "info", "--log-level", help="debug, info or warning (-v is --log-level=debug)."
    ),
) -> None:
    """Reconcile k0smotron.io Clusters and JoinTokenRequests until interrupted.

    Examples:
      mothership operator run --kubeconfig ~/.local/state/mothership/default/kubeconfig
      mothership operator run -n tenants --metrics-port 9090

    In a pod (what deploy/install.yaml runs): --webhook-host=0.0.0.0
    --webhook-service=mothership-system/mothership-webhook --webhook-certs=secret
    --webhook-registration=ca-bundle; the service account's credentials are used.
    """
    import asyncio

    import kopf
    from prometheus_client import start_http_server

    from mothership.controllers import cluster, join_token, operator  # noqa: F401 - registers handlers
    from mothership.webhooks.runtime import CertSource, Registration, Serving

    levels = ("debug", "info", "warning")
    if log_level not in levels:
        raise typer.BadParameter(f"must be one of {', '.join(levels)}", param_hint="--log-level")
    try:
        certs, registration = CertSource(webhook_certs), Registration(webhook_registration)
        serving = Serving(webhook_serving)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _limit_malloc_arenas()
    if kubernetes_image_template:
        from mothership.controllers.kubernetes_distribution import IMAGE_TEMPLATE_ENV

        os.environ[IMAGE_TEMPLATE_ENV] = kubernetes_image_template
    if default_etcd_image:
        from mothership.webhooks.defaults import DEFAULT_ETCD_IMAGE_ENV

        os.environ[DEFAULT_ETCD_IMAGE_ENV] = default_etcd_image
    for env, value in (
        ("MOTHERSHIP_K0S_IMAGE_REPOSITORY", k0s_image_repository),
        ("MOTHERSHIP_MONITORING_PROMETHEUS_IMAGE", monitoring_prometheus_image),
        ("MOTHERSHIP_MONITORING_PROXY_IMAGE", monitoring_proxy_image),
        ("MOTHERSHIP_NODE_DOWNLOAD_URL", node_download_url),
        ("MOTHERSHIP_NODE_REGISTRY_MIRROR", node_registry_mirror),
    ):
        if value:
            os.environ[env] = value
    if kubeconfig:
        os.environ["KUBECONFIG"] = str(kubeconfig)
    kopf.configure(
        verbose=verbose or log_level == "debug",
        quiet=log_level == "warning",
        log_format=kopf.LogFormat.JSON if log_format == LogFormat.json else kopf.LogFormat.PLAIN,
    )
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if metrics_port:
        start_http_server(metrics_port)
    memo = kopf.Memo(resync_seconds=resync, namespaces=tuple(namespace or ()))
    if webhooks:
        from mothership.controllers.operator import WebhookConfig
        from mothership.testenv.paths import state_root

        dns = ("localhost", *(webhook_dns_name or ()))
        if webhook_service:
            ns, name = webhook_service.split("/", 1)
            dns += (f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local")
        memo.webhooks = WebhookConfig(
            cert_dir=webhook_cert_dir or state_root() / "operator-webhook",
            host=webhook_host,
            port=webhook_port,
            service=webhook_service,
            dns_names=dns,
            ips=("127.0.0.1",) if webhook_host in ("127.0.0.1", "0.0.0.0") else (webhook_host,),
            unregister_on_exit=unregister_on_exit,
            certs=certs,
            cert_secret=webhook_cert_secret,
            namespace=_own_namespace(),
            registration=registration,
            serving=serving,
            log_format=log_format.value,
        )
    election = (
        (leader_namespace or _own_namespace(), leader_identity or _identity())
        if leader_elect
        else None
    )
    lost = asyncio.run(
        _operate(
            election,
            health_port,
            clusterwide=not namespace,
            namespaces=namespace or (),
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
            standalone=True,
            memo=memo,
        )
    )
    if lost:
        raise typer.Exit(1)


async def _operate(election: tuple[str, str] | None, health_port: int, **kopf_args: Any) -> bool:
    """Serve the webhooks, wait for leadership (answering liveness meanwhile), then run
    kopf until told to stop.

    Every replica serves the webhooks, the standby too: the Service in front of them
    picks any ready pod. Returns True when the lease was lost, so the process exits
    non-zero and is restarted.
    """
    from mothership.controllers.operator import start_webhook_service

    config = getattr(kopf_args["memo"], "webhooks", None)
    webhooks = await start_webhook_service(config) if config else None
    try:
        return await _lead_and_operate(election, health_port, **kopf_args)
    finally:
        if webhooks:
            await webhooks.stop()


async def _lead_and_operate(
    election: tuple[str, str] | None, health_port: int, **kopf_args: Any
) -> bool:
    import asyncio

    import kopf
    from lightkube import AsyncClient, KubeConfig

    from mothership.controllers import leader

    if election is None:
        await kopf.operator(**kopf_args)
        return False
    namespace, identity = election
    client = AsyncClient(config=KubeConfig.from_env())
    standby = await _standby_health(health_port) if health_port else None
    try:
        await leader.acquire(client, namespace, identity)
    finally:
        if standby:
            await standby.cleanup()
    lost = asyncio.Event()
    holder = asyncio.create_task(leader.hold(client, namespace, identity, lost))
    try:
        await kopf.operator(stop_flag=lost, **kopf_args)
    finally:
        holder.cancel()
        if not lost.is_set():
            await leader.release(client, namespace, identity)
        await client.close()
    return lost.is_set()


async def _standby_health(port: int) -> Any:
    """A /healthz for the standby: waiting for the lease is healthy, not a reason to restart."""
    from aiohttp import web

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "standby"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


def _own_namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return path.read_text().strip() if path.exists() else "default"


def _identity() -> str:
    import socket

    return os.environ.get("POD_NAME") or socket.gethostname()


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas before any thread starts.

    Key generation runs in worker threads; by default each thread gets its own arena and
    the freed memory stays mapped, which shows up as RSS that never comes back.
    """
    import contextlib
    import ctypes

    m_arena_max = -8
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, arenas)
