"""`mothership tools`: the pinned upstream binaries the local mothership runs."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from mothership.cli.errors import friendly_errors, reporter
from mothership.testenv import gobuild, monitoring_images, paths, pins

app = typer.Typer(help="Build and locate the pinned upstream binaries.", no_args_is_help=True)
console = Console()


@app.command()
def install(
    only: list[str] = typer.Option(
        None, "--only", help="Build just these binaries (repeatable), e.g. --only kubelet."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Build kube-apiserver, kubelet, etcd, kine, konnectivity and kwok from Go modules.

    Also builds the tenant control-plane binaries of the previous pinned Kubernetes
    version (the one tenants upgrade from) and CoreDNS (the real-node mothership's
    cluster DNS, only the plugins it uses), containerd, runc and the CNI plugins that
    the local mirror serves to joining workers, k0s, Prometheus, and Cluster API's
    controller manager and clusterctl, into sibling dirs; unpacks Debian's nginx package
    (the monitoring proxy image) into the cache. Build times are kept and
    shown by `mothership tools list`. Idempotent: binaries
    already in the cache are kept. The first run takes a while
    (tens of minutes on 2 cores); later runs return at once.

    Examples:
      mothership tools install
      MOTHERSHIP_BIN_DIR=/opt/ms/bin mothership tools install --only kubelet
    """
    with friendly_errors(debug):
        started = time.monotonic()
        results = gobuild.install(reporter(console), set(only) if only else None)
        built = [r for r in results if r.built]
        console.print(
            f"{len(built)} built, {len(results) - len(built)} already present, "
            f"in {time.monotonic() - started:.0f}s: {paths.bin_dir()}"
        )
        for family in pins.tenant_families():
            console.print(
                f"Kubernetes {family.version} (tenants): {paths.tenant_bin_dir(family.version)}"
            )
        for family in pins.addon_families():
            console.print(
                f"{family.name} {family.version} (local mothership add-on): "
                f"{paths.addon_bin_dir(family)}"
            )
        for family in pins.node_families():
            console.print(
                f"{family.name} {family.version} (for joining workers): "
                f"{paths.node_bin_dir(family)}"
            )
        console.print(f"k0s {pins.K0S_VERSION} (k0s distribution): {paths.k0s_bin_dir()}")
        nginx = monitoring_images.fetch_nginx(reporter(console))
        console.print(f"Debian's nginx (monitoring proxy image): {nginx}")
        console.print(
            f"Cluster API {pins.CAPI_VERSION} (`dev up --capi`, clusterctl): {paths.capi_bin_dir()}"
        )


@app.command("list")
def list_() -> None:
    """Show the pinned versions and whether each binary is built.

    Example:
      mothership tools list
    """
    bdir = paths.bin_dir()
    table = Table("binary", "module", "version", "built", "build time")
    for bdir, family in gobuild.plan():
        times = gobuild.build_times(bdir)
        for binary in family.binaries:
            present = (bdir / binary.name).exists()
            took = f"{times[binary.name]:.0f}s" if binary.name in times else ""
            table.add_row(
                binary.name, family.module, family.version, "yes" if present else "no", took
            )
    console.print(table)
    console.print(f"bin dir: {paths.bin_dir()}")
    for family in pins.tenant_families():
        console.print(f"tenant {family.version} bin dir: {paths.tenant_bin_dir(family.version)}")


@app.command()
def path() -> None:
    """Print the bin dir (for PATH=...)."""
    print(paths.bin_dir())
