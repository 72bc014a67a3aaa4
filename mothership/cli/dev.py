"""`mothership dev`: the local mothership, the embedded default when you have no cluster."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mothership.cli import machine, node
from mothership.cli.errors import EXIT_FAILED, friendly_errors, reporter
from mothership.testenv.local import LocalMothership

app = typer.Typer(help="Run a local mothership on this host.", no_args_is_help=True)
app.add_typer(machine.app, name="machine")
app.add_typer(node.app, name="node")
console = Console()

NameOpt = typer.Option("default", "--name", help="Which local mothership (several can coexist).")
StateOpt = typer.Option(None, "--state-dir", help="Where its state lives (default: per name).")
DebugOpt = typer.Option(False, "--debug", help="Show stack traces.")


class Nodes(StrEnum):
    real = "real"
    kwok = "kwok"
    none = "none"


class Datastore(StrEnum):
    etcd = "etcd"
    kine = "kine"


class Output(StrEnum):
    table = "table"
    json = "json"


@app.command()
def up(
    name: str = NameOpt,
    nodes: Nodes = typer.Option(
        Nodes.real,
        "--nodes",
        help="real: containerd + kubelet on this host (pods really run; needs root); "
        "kwok: simulated nodes (for scale); none: API only.",
    ),
    kwok_nodes: int = typer.Option(3, "--kwok-nodes", min=1, help="How many kwok nodes."),
    datastore: Datastore = typer.Option(Datastore.etcd, "--datastore"),
    state_dir: Path | None = StateOpt,
    timeout: float = typer.Option(180.0, "--timeout", help="Seconds to wait per component."),
    operator: bool | None = typer.Option(
        None,
        "--operator/--no-operator",
        help="Run the mothership operator as a component (CRDs applied, webhooks registered, "
        "log in <state-dir>/logs/operator.log). --no-operator when you run your own. "
        "Default: on for a new mothership, else as last chosen (`mothership install` turns "
        "it off when the operator runs in the cluster).",
        show_default=False,
    ),
    capi: bool | None = typer.Option(
        None,
        "--capi/--no-capi",
        help="Also run Cluster API's core controller manager (its CRDs and webhooks applied, "
        "certificates from the mothership's CA; log in <state-dir>/logs/cluster-api.log). "
        "Default: off for a new mothership, else as last chosen.",
        show_default=False,
    ),
    cert_manager: bool | None = typer.Option(
        None,
        "--cert-manager/--no-cert-manager",
        help="Also run cert-manager (its controllers and CA injector; log in "
        "<state-dir>/logs/cert-manager.log), for providers that clusterctl installs. "
        "Default: off for a new mothership, else as last chosen.",
        show_default=False,
    ),
    network_policy: bool | None = typer.Option(
        None,
        "--network-policy/--no-network-policy",
        help="Enforce NetworkPolicies on the real node's pod network (iptables chains MSNP-*, "
        "log in <state-dir>/logs/network-policy.log), as a policy-enforcing CNI would. "
        "Default: off for a new mothership, else as last chosen.",
        show_default=False,
    ),
    debug: bool = DebugOpt,
) -> None:
    """Build the binaries if needed and start a local mothership; idempotent.

    Examples:
      mothership dev up && mothership cluster create demo --wait
      mothership dev up --nodes kwok --kwok-nodes 10
      mothership dev up --name scale --nodes kwok --datastore kine --no-operator
      mothership dev up --capi
      mothership dev up --network-policy
      mothership dev up --cert-manager --no-operator   # then clusterctl init (docs/quickstart.md)
    """
    with friendly_errors(debug):
        ms = LocalMothership.configure(
            name,
            state_dir=state_dir,
            datastore=datastore.value,
            nodes=nodes.value,
            kwok_nodes=kwok_nodes,
            operator=operator,
            capi=capi,
            cert_manager=cert_manager,
            network_policy=network_policy,
        )
        ms.up(reporter(console), timeout=timeout)
        console.print(f"kubeconfig: {ms.cfg.kubeconfig}")
        console.print(f'use it:     eval "$(mothership dev env{_name_flag(name)})"')
        if not ms.cfg.operator:
            console.print("operator:   not on this host (--operator starts it)")
        elif name == "default":
            console.print("clusters:   mothership cluster create demo --wait")


def _name_flag(name: str) -> str:
    return "" if name == "default" else f" --name {name}"


@app.command()
def down(
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    purge: bool = typer.Option(False, "--purge", help="Also delete its data, PKI and logs."),
    debug: bool = DebugOpt,
) -> None:
    """Stop every process the local mothership started (and nothing else).

    Examples:
      mothership dev down
      mothership dev down --purge
    """
    with friendly_errors(debug):
        ms = LocalMothership.load(name, state_dir)
        stopped = ms.down(reporter(console), purge=purge)
        console.print(f"stopped {len(stopped)} processes" + (" and removed state" if purge else ""))


@app.command()
def status(
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    output: Output = typer.Option(Output.table, "-o", "--output"),
    debug: bool = DebugOpt,
) -> None:
    """Show each component, its pid and its health. Exit 1 if any is unhealthy.

    Examples:
      mothership dev status
      mothership dev status -o json
    """
    with friendly_errors(debug):
        ms = LocalMothership.load(name, state_dir)
        rows = ms.status()
    if output == Output.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        table = Table("component", "pid", "state", title=f"mothership {ms.cfg.name}")
        for r in rows:
            colour = "green" if r.healthy else "red"
            table.add_row(r.name, str(r.pid or "-"), f"[{colour}]{r.detail}[/]")
        console.print(table)
        console.print(f"api: {ms.cfg.api_url}  kubeconfig: {ms.cfg.kubeconfig}")
        if ms.cfg.nodes == "real" and ms.cfg.node_machine:
            console.print(
                f"node: in machine {ms.cfg.node_machine} ({ms.cfg.node_ip}), pods "
                f"{ms.cfg.pod_cidr}, Services {ms.cfg.service_cidr}"
            )
    if not all(r.healthy for r in rows):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def env(name: str = NameOpt, state_dir: Path | None = StateOpt, debug: bool = DebugOpt) -> None:
    """Print shell exports for KUBECONFIG and the pinned kubectl.

    Example:
      eval "$(mothership dev env)"; kubectl get nodes
    """
    with friendly_errors(debug):
        print(LocalMothership.load(name, state_dir).env())


@app.command("clusterctl-repository")
def clusterctl_repository(
    directory: Path | None = typer.Argument(
        None, help="Where to write it. Default: <state-dir>/clusterctl.", show_default=False
    ),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Write a clusterctl repository for this local mothership and print `clusterctl init`.

    The repository holds Cluster API's core provider (the pinned release) and mothership's
    control-plane, bootstrap and infrastructure providers; their images are imported into
    the node's containerd, and the operator `dev up` runs on the host is stopped (the one
    clusterctl installs replaces it). Needs a real node and cert-manager running.

    Example:
      mothership dev up --cert-manager --no-operator
      mothership dev clusterctl-repository
      clusterctl init --config ~/.local/state/mothership/default/clusterctl/clusterctl.yaml ...
    """
    from mothership.cli.errors import CliError
    from mothership.cli.install import local_settings
    from mothership.install import local as local_ms
    from mothership.install import manifests
    from mothership.testenv import localclusterctl, paths

    with friendly_errors(debug):
        ms = LocalMothership.load(name, state_dir)
        cfg = ms.cfg
        if cfg.nodes != "real":
            raise CliError(
                f"mothership {cfg.name!r} has {cfg.nodes} nodes: what clusterctl installs runs "
                "in pods; start it with `mothership dev up --nodes real`"
            )
        if not cfg.cert_manager:
            raise CliError(
                "clusterctl installs providers whose certificates cert-manager issues: run "
                f"`mothership dev up{_name_flag(name)} --cert-manager` first"
            )
        if cfg.capi:
            raise CliError(
                "Cluster API already runs on the host (`dev up --capi`); clusterctl would "
                f"install a second one: `mothership dev up{_name_flag(name)} --no-capi` first"
            )
        report = reporter(console)
        root = directory or cfg.state_dir / "clusterctl"
        settings = local_settings(manifests.Settings(cert_manager=True), ms)
        local_ms.stop_host_operator(ms, report)
        from mothership.testenv import localcapi

        if handed := localcapi.hand_over_crds(cfg):
            report(f"{len(handed)} Cluster API CRDs left by --capi handed over to clusterctl")
        local_ms.load_image(ms, report)
        localclusterctl.import_core_image(cfg, report)
        config = local_ms.clusterctl_repository(root, cfg.bin_dir / "kubectl", settings)
        clusterctl = paths.capi_bin_dir() / "clusterctl"
        console.print(f"repository: {root}")
        console.print(
            f"install:    KUBECONFIG={cfg.kubeconfig} {clusterctl} "
            + " ".join(local_ms.clusterctl_init_args(config)),
            highlight=False,
            soft_wrap=True,
        )
