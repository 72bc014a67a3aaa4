"""`mothership bench`: benchmarks that print figures."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mothership.bench import provision
from mothership.cli.errors import friendly_errors, reporter

app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
console = Console()


@app.command()
def fleet(
    clusters: int = typer.Option(100, "--clusters", min=1, help="How many Clusters to create."),
    concurrency: int = typer.Option(20, "--concurrency", min=1, help="Creates in flight."),
    resync: float = typer.Option(30.0, "--resync", help="Operator resync period, seconds."),
    timeout: float = typer.Option(1800.0, "--timeout", help="Give up after this many seconds."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Bench mothership state."),
    keep: bool = typer.Option(False, "--keep", help="Leave the bench mothership running."),
    debug: bool = typer.Option(False, "--debug"),
) -> None:
    """Create N Clusters on a fresh kwok mothership and measure the operator.

    Prints time to convergence, operator peak RSS and CPU, API requests per Cluster and
    writes per object (from the API server's audit log), and writes on a no-op resync.

    Examples:
      mothership bench fleet --clusters 100
      mothership bench fleet --clusters 1000 --concurrency 50
    """
    from mothership.bench import fleet as bench_fleet

    with friendly_errors(debug):
        result = bench_fleet.run(
            clusters, concurrency, resync, state_dir, keep, timeout, reporter(console)
        )
    for line in result.lines():
        print(line)


app.command("provision")(provision.command)
