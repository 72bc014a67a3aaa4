"""`mothership token create`: a node join token, through a JoinTokenRequest.

The operator mints a bootstrap token in the tenant and stores the k0s-format join token in
a Secret named after the request; this command creates the request, waits for that Secret
and prints the token, so `TOKEN=$(mothership token create demo)` works in scripts.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
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
    err,
    friendly_errors,
    http_status_errors,
    status_code,
)
from mothership.cli.output import Output, OutputOpt, dump
from mothership.render import join_token, node_join
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

  [dim]# one command to run as root on a machine (kubernetes or k0s distribution)[/]
  mothership token create demo --expiry 1h --join-command

  [dim]# ... for a site with its own mirrors, or with the node components installed[/]
  mothership token create demo --join-command --download-url http://mirror:8080 \\
      --registry-mirror http://mirror:5000 --node-label site=edge-7
  mothership token create demo --join-command --preinstalled

  [dim]# the join script itself, to read or to put into cloud-init[/]
  mothership token create demo --join-script > join.sh

  [dim]# a token that one node can join with, revoked once that node is registered[/]
  mothership token create demo --expiry 1h --join-command --single-use

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
    single_use: bool = typer.Option(
        False,
        "--single-use",
        help="Revoke the token once one node has joined with it (worker tokens only).",
    ),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the token."),
    join_command: bool = typer.Option(
        False,
        "--join-command",
        help="Print one command to run as root on the machine instead of the token: it "
        "checks the token, installs and starts the node components (kubelet and containerd; "
        "for a k0s Cluster, `k0s worker`), and joins.",
    ),
    join_script: bool = typer.Option(
        False, "--join-script", help="Print the join script itself (what --join-command runs)."
    ),
    download_url: str | None = typer.Option(
        None,
        "--download-url",
        help="Mirror of the node components' upstream locations (default: the operator's "
        "setting, else dl.k8s.io and GitHub releases).",
    ),
    registry_mirror: str | None = typer.Option(
        None,
        "--registry-mirror",
        help="Registry the node pulls registry.k8s.io, docker.io, quay.io and ghcr.io images "
        "from (default: the operator's setting, else none).",
    ),
    preinstalled: bool = typer.Option(
        False,
        "--preinstalled",
        help="Use kubelet, containerd, runc and CNI plugins already installed.",
    ),
    node_name: str = typer.Option("", "--node-name", help="Node name (default: host name)."),
    node_label: list[str] = typer.Option(
        None, "--node-label", help="key=value label of the node (repeatable)."
    ),
    node_taint: list[str] = typer.Option(
        None, "--node-taint", help="key[=value]:Effect taint of the node (repeatable)."
    ),
    kubelet_arg: list[str] = typer.Option(
        None, "--kubelet-arg", help="Extra kubelet flag, --name=value (repeatable)."
    ),
    output: Output = OutputOpt,
    kubeconfig: Path | None = KubeconfigOpt,
    context: str | None = ContextOpt,
    namespace: str | None = NamespaceOpt,
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Create a join token for a Cluster and print it (k0s token format), or a join command."""
    with friendly_errors(debug):
        request = _request(cluster, role.value, expiry, name, single_use=single_use)
        wants_join = join_command or join_script
        flags = _join_flags(
            download_url, registry_mirror, preinstalled, node_name, node_label, node_taint,
            kubelet_arg,
        )  # fmt: skip
        if wants_join and role != Role.worker:
            raise InvalidInput("--join-command and --join-script are for --role worker")
        target = connect(kubeconfig, context, namespace)
        ns = target.namespace
        cluster_obj = objects.get_cluster(target, cluster, ns)  # exit 4 when it does not exist
        if wants_join:
            _check_joinable(cluster_obj, ns)
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
        if wants_join:
            print(_join_text(cluster_obj, ns, secret, token, flags, script=join_script))
            return
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


def _join_flags(
    download_url: str | None,
    registry_mirror: str | None,
    preinstalled: bool,
    node_name: str,
    labels: list[str] | None,
    taints: list[str] | None,
    kubelet_args: list[str] | None,
) -> dict[str, Any]:
    """The join options given on the command line, checked before anything is created."""
    parsed: dict[str, str] = {}
    for item in labels or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--node-label {item!r}: write key=value")
        parsed[key] = value
    flags: dict[str, Any] = {
        "preinstalled": preinstalled,
        "node_name": node_name,
        "labels": parsed,
        "taints": tuple(taints or ()),
        "kubelet_args": tuple(kubelet_args or ()),
    }
    if download_url is not None:
        flags["download_url"] = download_url
    if registry_mirror is not None:
        flags["registry_mirror"] = registry_mirror
    try:
        node_join.validate_options(node_join.JoinOptions(**flags))
    except node_join.JoinError as exc:
        raise InvalidInput(str(exc)) from None
    return flags


def _check_joinable(cluster: dict[str, Any], namespace: str) -> None:
    spec = cluster.get("spec") or {}
    name = cluster["metadata"]["name"]
    service = (spec.get("service") or {}).get("type") or "ClusterIP"
    if service == "ClusterIP":
        err.print(
            f"warning: Cluster {namespace}/{name} is exposed on a ClusterIP Service, which only "
            "the mothership's own nodes can reach; a worker elsewhere cannot join. Expose it "
            "with spec.service.type NodePort or LoadBalancer (or spec.externalAddress)."
        )


def _join_text(
    cluster: dict[str, Any],
    namespace: str,
    secret: Any,
    token: str,
    flags: dict[str, Any],
    *,
    script: bool,
) -> str:
    """The operator's join command as is, or rendered again with this command's options."""
    annotations = (secret.metadata.annotations if secret.metadata else None) or {}
    stored = (secret.data or {}).get(join_token.JOIN_COMMAND_KEY)
    overrides = {k: v for k, v in flags.items() if v not in ("", (), {}, False)}
    if stored and not overrides and not script:
        return base64.b64decode(stored).decode()
    options = node_join.JoinOptions(
        **{
            "download_url": annotations.get(join_token.DOWNLOAD_URL_ANNOTATION, ""),
            "registry_mirror": annotations.get(join_token.REGISTRY_MIRROR_ANNOTATION, ""),
            **flags,
        }
    )
    expires_text = annotations.get(join_token.EXPIRES_ANNOTATION)
    expires = (
        datetime.strptime(expires_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if expires_text
        else None
    )
    try:
        model = v1beta2.Cluster.model_validate(cluster)
        facts = node_join.join_facts(model, namespace, token, expires)
        text = node_join.render_join_script(facts, options)
    except node_join.JoinError as exc:
        raise InvalidInput(str(exc)) from None
    return text if script else node_join.join_command(text)


def _request(
    cluster: str, role: str, expiry: str, name: str | None, *, single_use: bool = False
) -> dict[str, Any]:
    """The JoinTokenRequest, validated by its model before anything is sent."""
    check_name(cluster, "cluster name")
    if role not in ("worker", "controller"):
        raise InvalidInput(f"spec.role (--role): {role!r} is not valid; use worker or controller")
    if single_use and role != "worker":
        raise InvalidInput("spec.singleUse (--single-use): only worker tokens can be single-use")
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
    spec: dict[str, Any] = {"clusterName": cluster, "role": role, "expiry": expiry}
    if single_use:
        spec["singleUse"] = True
    body = {
        "apiVersion": v1beta2.API_VERSION,
        "kind": "JoinTokenRequest",
        "metadata": meta,
        "spec": spec,
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
