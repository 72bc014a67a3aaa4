"""`mothership dev node`: more real nodes for a real-node local mothership.

Thin over `mothership.testenv.extra_node`, which the tests and `bench chaos --node-drain`
use too. A node added here is a kubelet in a machine of its own; it goes with
`mothership dev node delete` or `mothership dev down`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mothership.cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, CliError, friendly_errors, reporter
from mothership.testenv import extra_node, machines
from mothership.testenv.local import LocalMothership

app = typer.Typer(
    help="More real nodes for the local mothership (a kubelet each, in a machine of its "
    "own), to drain, cordon or lose one as a platform does.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

NameOpt = typer.Option("default", "--name", help="Which local mothership the node joins.")
StateOpt = typer.Option(None, "--state-dir", help="Its state dir (default: per name).")
DebugOpt = typer.Option(False, "--debug", help="Show stack traces.")


def _running(name: str, state_dir: Path | None) -> LocalMothership:
    ms = LocalMothership.load(name, state_dir)
    if ms.cfg.nodes != "real" or "kubelet" not in ms.running():
        raise CliError(
            f"mothership {name!r} has no running real node to add one beside; start it with "
            "`mothership dev up` (real nodes are the default)",
            EXIT_USAGE,
        )
    return ms


@app.command()
def add(
    node: str = typer.Argument("mothership-node-2", help="Node name (also its machine's)."),
    timeout: float = typer.Option(240.0, "--timeout", help="Seconds until the node is Ready."),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Add a real node and wait until it is Ready.

    The node is a machine with containerd, a kubelet and kube-proxy, joined with a node
    certificate from the mothership's CA; its pods get a range of their own.

    Examples:
      mothership dev node add
      mothership dev node add mothership-node-3
    """
    with friendly_errors(debug):
        ms = _running(name, state_dir)
        if extra_node.find(ms.cfg, node) is not None:
            raise CliError(f"node {node!r} exists already", EXIT_USAGE)
        try:
            added = extra_node.start(ms.cfg, node, reporter(err), timeout=timeout)
        except machines.MachineError as exc:
            raise CliError(str(exc)) from None
        console.print(
            f"node {node} is Ready at {added.cfg.node_ip} (pods {added.cfg.pod_cidr}); "
            f"drain it with `kubectl drain {node} --ignore-daemonsets`"
        )


@app.command("list")
def list_(
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    json_output: bool = typer.Option(False, "--json", help="JSON instead of a table."),
    debug: bool = DebugOpt,
) -> None:
    """List the nodes added with `dev node add` (the first node is not listed).

    Example:
      mothership dev node list
    """
    with friendly_errors(debug):
        found = extra_node.list_nodes(LocalMothership.load(name, state_dir).cfg)
    rows = [
        {"name": n.name, "address": n.cfg.node_ip, "pods": n.cfg.pod_cidr, "state": n.machine.state}
        for n in found
    ]
    if json_output:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "address", "pods", "state")
    for row in rows:
        table.add_row(*row.values())
    console.print(table)


@app.command()
def delete(
    node: str = typer.Argument(..., help="Node name."),
    ignore_not_found: bool = typer.Option(False, "--ignore-not-found"),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Remove an added node and everything of it.

    Its processes, containers, mounts, machine, route and Node object go. Its pods are not
    drained first: drain it before, as on a real platform, or they are lost with it.

    Example:
      mothership dev node delete mothership-node-2
    """
    with friendly_errors(debug):
        ms = LocalMothership.load(name, state_dir)
        found = extra_node.find(ms.cfg, node)
        if found is None:
            if ignore_not_found:
                return
            raise CliError(
                f"no added node {node!r} (see `mothership dev node list`)", EXIT_NOT_FOUND
            )
        extra_node.stop(ms.cfg, found, reporter(err))
        console.print(f"node {node} deleted")
