"""`mothership operator run`: the operator, out of cluster (kubeconfig) or in a pod."""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from pathlib import Path

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
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Debug logging."),
) -> None:
    """Reconcile k0smotron.io Clusters and JoinTokenRequests until interrupted.

    Examples:
      mothership operator run --kubeconfig ~/.local/state/mothership/default/kubeconfig
      mothership operator run -n tenants --metrics-port 9090
    """
    import asyncio

    import kopf
    from prometheus_client import start_http_server

    from mothership.controllers import cluster, join_token, operator  # noqa: F401 - registers handlers

    if kubeconfig:
        os.environ["KUBECONFIG"] = str(kubeconfig)
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == LogFormat.json else kopf.LogFormat.PLAIN,
    )
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if metrics_port:
        start_http_server(metrics_port)
    memo = kopf.Memo(resync_seconds=resync)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespace,
            namespaces=namespace or (),
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
            standalone=True,
            memo=memo,
        )
    )
