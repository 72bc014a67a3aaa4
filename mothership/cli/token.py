"""`mothership token create`: a node join token, through a JoinTokenRequest.

The operator mints a bootstrap token in the tenant and stores the k0s-format join token in
a Secret named after the request; this command creates the request, waits for that Secret
and prints the token, so `TOKEN=$(mothership token create demo)` works in scripts.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from lightkube.codecs import from_dict

from mothership.api.k0smotron import v1beta2
from mothership.cli import objects, progress
from mothership.cli.connection import ContextOpt, KubeconfigOpt, NamespaceOpt, Target, connect
from mothership.cli.errors import (
    EXIT_CODES_HELP,
    InvalidInput,
    friendly_errors,
    http_status_errors,
    status_code,
)
from mothership.cli.output import Output, OutputOpt, dump
from mothership.render.join_token import parse_duration
from mothership.specs.clusters import check_name

app = typer.Typer(
    help="Join tokens for the nodes of a hosted cluster.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    epilog=EXIT_CODES_HELP,
)

CREATE_EPILOG = f"""[bold]Examples[/]

  [dim]# a worker token that never expires[/]
  mothership token create demo

  [dim]# a one-hour token, straight into a k0s worker's token file[/]
  mothership token create demo --expiry 1h > /etc/k0s/join-token

  [dim]# the request and token as JSON[/]
  mothership token create demo --role controller --name demo-ctl -o json

The token needs a control plane that serves (Available); until then the command waits.
The JoinTokenRequest stays; deleting it revokes the token in the tenant.

{EXIT_CODES_HELP}"""


class Role(StrEnum):
    worker = "worker"
    controller = "controller"


@app.command(epilog=CREATE_EPILOG)
def create(
    cluster: str = typer.Argument(..., help="Cluster the node joins."),
    role: Role = typer.Option(Role.worker, "--role", help="Kind of node that joins."),
    expiry: str = typer.Option(
        "0s", "--expiry", help="Lifetime as a Go duration: 1h, 30m, 1h30m; 0s never expires."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Name of the JoinTokenRequest (default: <cluster>-<role>-xxxxx)."
    ),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the token."),
    output: Output = OutputOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Create a join token for a Cluster and print it (k0s token format)."""
    with friendly_errors(debug):
        request = _request(cluster, role.value, expiry, name)
        target = connect(kubeconfig, context, namespace)
        ns = target.namespace
        objects.get_cluster(target, cluster, ns)  # exit 4 when it does not exist
        request["metadata"]["namespace"] = ns
        created = _create(target, request)
        rname = created["metadata"]["name"]

        def poll() -> tuple[bool, str]:
            secret = objects.get_secret(target, rname, ns)
            if secret is not None and (secret.data or {}).get("token"):
                return True, "token ready"
            current = target.client.get(objects.JoinTokenRequestV2, rname, namespace=ns)
            conds = ((current.to_dict().get("status") or {}).get("conditions")) or []
            if not conds:
                return False, "waiting for the operator to pick it up"
            c = conds[-1]
            return False, f"{c.get('reason')} - {c.get('message')}"

        progress.wait(
            f"token {rname}",
            poll,
            timeout,
            hint=f"the request stays and the operator keeps trying; read the token later with "
            f"`kubectl get secret {rname} -n {ns} -o jsonpath={{.data.token}} | base64 -d`, or "
            f"revoke it with `kubectl delete jointokenrequest {rname} -n {ns}`",
        )
        secret = objects.get_secret(target, rname, ns)
        assert secret is not None and secret.data
        token = base64.b64decode(secret.data["token"]).decode()
        if output == Output.table:
            print(token)
            return
        final = target.client.get(objects.JoinTokenRequestV2, rname, namespace=ns).to_dict()
        dump(
            {
                "name": rname,
                "namespace": ns,
                "cluster": cluster,
                "role": role.value,
                "expiry": expiry,
                "tokenID": (final.get("status") or {}).get("tokenID"),
                "token": token,
            },
            output,
        )


def _request(cluster: str, role: str, expiry: str, name: str | None) -> dict[str, Any]:
    """The JoinTokenRequest, validated by its model before anything is sent."""
    check_name(cluster, "cluster name")
    if role not in ("worker", "controller"):
        raise InvalidInput(f"spec.role (--role): {role!r} is not valid; use worker or controller")
    try:
        parse_duration(expiry)
    except ValueError as exc:
        raise InvalidInput(f"spec.expiry (--expiry): {exc}") from None
    meta: dict[str, Any] = {"labels": {"app.kubernetes.io/managed-by": "mothership-cli"}}
    if name:
        check_name(name, "--name")
        meta["name"] = name
    else:
        meta["generateName"] = f"{cluster}-{role}-"
    body = {
        "apiVersion": v1beta2.API_VERSION,
        "kind": "JoinTokenRequest",
        "metadata": meta,
        "spec": {"clusterName": cluster, "role": role, "expiry": expiry},
    }
    v1beta2.JoinTokenRequest.model_validate(body)
    return body


def _create(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    try:
        return target.client.create(from_dict(body)).to_dict()
    except http_status_errors() as exc:
        if objects.kind_not_served(exc):
            raise objects.no_crds(target, "JoinTokenRequest") from None
        if status_code(exc) == 409:
            raise InvalidInput(
                f"JoinTokenRequest {body['metadata'].get('name')} exists already; pick another "
                "--name, or leave it out for a generated one"
            ) from None
        raise
