"""`mothership dev machine`: separate hosts on this box, for workers to join from.

Thin over `mothership.testenv.machines`, which the test fixtures use too. Machines belong
to a local mothership (`--name`, default `default`) and go with `mothership dev down`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mothership.cli.errors import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    friendly_errors,
)
from mothership.testenv import machines, node_host
from mothership.testenv.local import default_state_dir

app = typer.Typer(
    help="Machines on this host (network namespaces with their own filesystem view, "
    "processes and cgroups) where workers join as on real hosts.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

NameOpt = typer.Option("default", "--name", help="Which local mothership the machines belong to.")
StateOpt = typer.Option(None, "--state-dir", help="Its state dir (default: per name).")
DebugOpt = typer.Option(False, "--debug", help="Show stack traces.")


class Output(StrEnum):
    table = "table"
    json = "json"


def _state(name: str, state_dir: Path | None) -> Path:
    return state_dir or default_state_dir(name)


@contextmanager
def _machine_errors(code: int = EXIT_FAILED) -> Iterator[None]:
    """A MachineError in the block leaves as a CliError exiting with `code`.

    Its message is already written for the user, so it is passed on as it is. A value out
    of range (MachineUsageError: `--loss`, `--latency`) exits EXIT_USAGE instead, since the
    flag was wrong, not the machine.
    """
    try:
        yield
    except machines.MachineError as exc:
        usage = isinstance(exc, machines.MachineUsageError)
        raise CliError(str(exc), EXIT_USAGE if usage else code) from None


def _machine(state: Path, machine: str) -> machines.Machine:
    with _machine_errors(EXIT_NOT_FOUND):
        return machines.find(state, machine)


@app.command()
def create(
    machine: str = typer.Argument(..., help="Machine name (also its host name)."),
    edge: bool = typer.Option(
        True,
        "--edge/--reachable",
        help="edge: behind NAT, it reaches out but nothing can connect to it (default); "
        "reachable: an address the mothership can reach (SSH).",
    ),
    systemd: bool = typer.Option(
        False,
        "--systemd",
        help="Boot systemd as the machine's init, as on a real server: a join then "
        "installs its components as systemd units (default: a light init, the join "
        "supervises them itself).",
    ),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Create and start a machine.

    Examples:
      mothership dev machine create edge-1
      mothership dev machine create rack-1 --reachable
      mothership dev machine create server-1 --systemd
    """
    with friendly_errors(debug):
        if machine == node_host.NODE_MACHINE:
            raise CliError(
                f"{machine!r} is the name of the machine a local mothership's own node runs in "
                "when the host's network holds another one; pick another name",
                EXIT_USAGE,
            )
        with _machine_errors():
            m = machines.create(
                _state(name, state_dir),
                machine,
                "edge" if edge else "reachable",
                init="systemd" if systemd else "plain",
            )
        init = ", systemd" if m.init == "systemd" else ""
        console.print(f"machine {m.name} ({m.flavour}{init}) is running at {m.address}")
        console.print(f"run commands in it: mothership dev machine exec {m.name} -- sh")


@app.command("list")
def list_(
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    output: Output = typer.Option(Output.table, "-o", "--output"),
    debug: bool = DebugOpt,
) -> None:
    """List the machines: name, flavour, address, state, init.

    Examples:
      mothership dev machine list
      mothership dev machine list -o json
    """
    with friendly_errors(debug):
        found = machines.list_machines(_state(name, state_dir))
    if output == Output.json:
        print(json.dumps([m.to_json() for m in found], indent=2))
        return
    table = Table("name", "flavour", "address", "state", "init")
    for m in found:
        table.add_row(m.name, m.flavour, m.address, m.state, m.init)
    console.print(table)


@app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_(
    ctx: typer.Context,
    machine: str = typer.Argument(..., help="Machine name."),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Run a command inside a machine as root; its exit code is passed through.

    Examples:
      mothership dev machine exec edge-1 -- hostname
      mothership dev machine exec edge-1 -- sh -c 'curl -sk https://10.200.0.1:6443/healthz'
    """
    command = list(ctx.args)
    if not command:
        err.print("error: no command given; e.g. `mothership dev machine exec NAME -- sh`")
        raise typer.Exit(EXIT_USAGE)
    with friendly_errors(debug):
        m = _machine(_state(name, state_dir), machine)
        with _machine_errors():
            code = machines.exec_interactive(m, command)
    raise typer.Exit(code)


@app.command()
def ssh(
    machine: str = typer.Argument(..., help="Machine name (a --reachable one)."),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Open an SSH session to a reachable machine, with the mothership's machine key.

    Example:
      mothership dev machine ssh rack-1
    """
    with friendly_errors(debug):
        state = _state(name, state_dir)
        m = _machine(state, machine)
        with _machine_errors(EXIT_USAGE):
            argv = machines.ssh_argv(state, m)
    os.execvp(argv[0], argv)


@app.command()
def delete(
    machine: str = typer.Argument(..., help="Machine name."),
    ignore_not_found: bool = typer.Option(False, "--ignore-not-found"),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Stop a machine and remove everything of it (processes, mounts, network, cgroups).

    Example:
      mothership dev machine delete edge-1
    """
    with friendly_errors(debug):
        state = _state(name, state_dir)
        if ignore_not_found and not (machines.machines_dir(state) / machine).exists():
            return
        _machine(state, machine)
        if machine == node_host.NODE_MACHINE:
            raise CliError(
                f"machine {machine!r} holds the real node of mothership {name!r}; it goes "
                f"with `mothership dev down --name {name}`",
                EXIT_USAGE,
            )
        with _machine_errors():
            machines.delete(state, machine)
        console.print(f"machine {machine} deleted")


@app.command()
def net(
    machine: str = typer.Argument(..., help="Machine name."),
    link: str = typer.Option("", "--link", help="up or down: restore or cut the machine's link."),
    loss: float | None = typer.Option(
        None, "--loss", help="Percent of packets dropped each way (0 clears)."
    ),
    latency: int | None = typer.Option(
        None, "--latency", help="Milliseconds added to each round trip (0 clears)."
    ),
    name: str = NameOpt,
    state_dir: Path | None = StateOpt,
    debug: bool = DebugOpt,
) -> None:
    """Impair a machine's network, for tests of edge conditions.

    Examples:
      mothership dev machine net edge-1 --link down
      mothership dev machine net edge-1 --link up --loss 5 --latency 200
    """
    with friendly_errors(debug):
        m = _machine(_state(name, state_dir), machine)
        if link not in ("", "up", "down"):
            raise CliError(f"--link {link!r}: use up or down", EXIT_USAGE)
        if not link and loss is None and latency is None:
            raise CliError("nothing to change: give --link, --loss or --latency", EXIT_USAGE)
        with _machine_errors():
            if link:
                machines.set_link(m, link == "up")
            if loss is not None:
                machines.set_loss(m, loss)
            if latency is not None:
                machines.set_latency(m, latency)
