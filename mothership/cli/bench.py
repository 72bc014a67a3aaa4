"""`mothership bench`: benchmarks that print figures."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from mothership.bench import provision
from mothership.bench.provision_result import Output, Storage
from mothership.cli.errors import friendly_errors, reporter
from mothership.errors import InvalidInput

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
    shared_postgres: bool = typer.Option(
        False,
        "--shared-postgres",
        help="Put every Cluster on one shared PostgreSQL DataStore (a private server from "
        "Debian's package) instead of etcd, and print the server's memory.",
    ),
    remote_host: bool = typer.Option(
        False,
        "--remote-host",
        help="Host every control plane in a second kwok mothership (spec.remoteHostCluster) "
        "and print the operator's requests to it.",
    ),
    debug: bool = typer.Option(False, "--debug"),
) -> None:
    """Create N Clusters on a fresh kwok mothership and measure the operator.

    Prints time to convergence, operator peak RSS and CPU, API requests per Cluster and
    writes per object (from the API server's audit log), and writes on a no-op resync.
    With --shared-postgres each Cluster's reconcile also makes its database and user on
    one PostgreSQL server, and the server's memory with all of them is printed. With
    --remote-host the control planes' objects go to a second kwok mothership through one
    kubeconfig Secret, and the requests there are printed too.

    Examples:
      mothership bench fleet --clusters 100
      mothership bench fleet --clusters 1000 --concurrency 50
      mothership bench fleet --clusters 100 --shared-postgres
      mothership bench fleet --clusters 100 --remote-host
    """
    from mothership.bench import fleet as bench_fleet

    with friendly_errors(debug):
        result = bench_fleet.run(
            clusters,
            concurrency,
            resync,
            state_dir,
            keep,
            timeout,
            reporter(console),
            shared_postgres=shared_postgres,
            remote_host=remote_host,
        )
    for line in result.lines():
        print(line)


@app.command("chaos")
def chaos_command(
    clusters: int = typer.Option(
        50, "--clusters", min=0, help="How many Clusters to create (0: no kwok faults)."
    ),
    kills: int = typer.Option(5, "--kills", min=0, help="SIGKILLs of the operator."),
    apiserver_restarts: int = typer.Option(
        1, "--apiserver-restarts", min=0, help="SIGKILLs (and restarts) of the API server."
    ),
    datastore_stalls: int = typer.Option(
        1, "--datastore-stalls", min=0, help="Times the datastore is frozen (SIGSTOP)."
    ),
    stall_seconds: float = typer.Option(
        30.0, "--stall-seconds", min=0.0, help="How long each datastore stall lasts."
    ),
    tenant_datastore_stop: float = typer.Option(
        0.0,
        "--tenant-datastore-stop",
        min=0.0,
        help="Then stop a tenant's own PostgreSQL this many seconds under writes, on the "
        "real-node mothership --name (0: not done).",
    ),
    node_drain: bool = typer.Option(
        False,
        "--node-drain",
        help="Then drain a second node of the real-node mothership --name under a "
        "three-replica tenant.",
    ),
    name: str = typer.Option(
        "default",
        "--name",
        help="The real-node local mothership of --tenant-datastore-stop and --node-drain.",
    ),
    mothership_state_dir: Path | None = typer.Option(
        None, "--mothership-state-dir", help="Its state dir."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the fault delays and order."),
    concurrency: int = typer.Option(5, "--concurrency", min=1, help="Creates in flight."),
    timeout: float = typer.Option(900.0, "--timeout", help="Give up after this many seconds."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Bench mothership state."),
    keep: bool = typer.Option(False, "--keep", help="Leave the bench mothership running."),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Faults at random moments while N Clusters are created on kwok; a tenant's datastore
    stopped under writes on the real node.

    The kwok faults: SIGKILLs of the operator (restarted at once), of the mothership's API
    server (restarted on the same flags) and datastore stalls (SIGSTOP, then SIGCONT).
    Clusters are created in one share per fault; each fault comes 1-8 s after the
    previous one ended. Then every Cluster must converge (as `bench fleet` judges it),
    every acknowledged create must still be there with its uid, no CA Secret may change
    (uid or certificate), no object may lose its owner Cluster, no object may be written
    more than 3 times (audit log; status writes counted apart) and the operator may not
    exit by itself. With --tenant-datastore-stop, a Cluster on its own PostgreSQL then
    takes writes while PostgreSQL is stopped and started again: it must write again by
    itself and lose no acknowledged write. With --node-drain, a second node is added to
    that mothership, a three-replica Cluster on PostgreSQL spreads over both, and `kubectl
    drain` of the second node must move its replicas with no acknowledged write lost and
    at most 2 % of writes failed. Prints the table and exits 1, naming each broken
    invariant, if one fails. Progress goes to stderr, figures to stdout.

    Examples:
      mothership bench chaos
      mothership bench chaos --clusters 8 --kills 2 --seed 1
      mothership bench chaos --apiserver-restarts 0 --datastore-stalls 0
      mothership bench chaos --clusters 0 --tenant-datastore-stop 60
      mothership bench chaos --clusters 0 --node-drain
    """
    from mothership.bench import chaos as bench_chaos
    from mothership.bench import node_drain as bench_node_drain
    from mothership.bench import tenant_outage

    err = Console(stderr=True)
    lines: list[str] = []
    failed = False
    with friendly_errors(debug):
        if clusters == 0 and tenant_datastore_stop == 0 and not node_drain:
            raise InvalidInput(
                "--clusters 0 and no --tenant-datastore-stop or --node-drain: nothing to do; "
                "give --clusters N for the kwok faults, --tenant-datastore-stop SECONDS for "
                "the tenant's or --node-drain for a node's"
            )
        if clusters:
            result = bench_chaos.run(
                clusters, kills, seed, concurrency, state_dir, keep, timeout, reporter(err),
                apiserver_restarts=apiserver_restarts, datastore_stalls=datastore_stalls,
                stall_seconds=stall_seconds,
            )  # fmt: skip
            lines += result.lines()
            failed = bool(result.failures())
        if tenant_datastore_stop:
            outage = tenant_outage.run(
                name, mothership_state_dir, tenant_datastore_stop, timeout, reporter(err)
            )
            lines += outage.lines()
            failed = failed or bool(outage.failures())
        if node_drain:
            drain = bench_node_drain.run(name, mothership_state_dir, timeout, reporter(err))
            lines += drain.lines()
            failed = failed or bool(drain.failures())
    for line in lines:
        print(line)
    if failed:
        raise typer.Exit(1)


@app.command("admission")
def admission_command(
    clusters: int = typer.Option(1000, "--clusters", min=1, help="How many Clusters to create."),
    concurrency: int = typer.Option(
        1,
        "--concurrency",
        min=1,
        help="1: one `kubectl create -f` of a List (kubectl sends them one after another); "
        "more: this many concurrent creates.",
    ),
    api_version: str = typer.Option(
        "v1beta1", "--api-version", help="v1beta1 (k0smotron's manifests) or v1beta2."
    ),
    reconcile: bool = typer.Option(
        True,
        "--reconcile/--no-reconcile",
        help="Let the operator reconcile the Clusters it admits (the real case), or only serve "
        "the webhooks.",
    ),
    baseline: bool = typer.Option(
        True, "--baseline/--no-baseline", help="First the same creates without webhooks."
    ),
    timeout: float = typer.Option(1800.0, "--timeout", help="Seconds for each burst."),
    output: Output = typer.Option(Output.table, "-o", "--output", help="table or json."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Bench mothership state."),
    keep: bool = typer.Option(False, "--keep", help="Leave the bench mothership running."),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Time a burst of Cluster creates through the admission webhooks on a kwok mothership.

    Creates N Clusters in one go (one `kubectl create -f`), first without webhooks (the
    baseline), then with the operator serving them and reconciling what it admits. Prints
    the wall time, objects/s and, per webhook (mutating, validating, conversion), the
    request count and p50/p95/p99 from the API server's admission histograms, and the
    operator's own handling time. Progress goes to stderr, figures to stdout.

    Examples:
      mothership bench admission
      mothership bench admission --clusters 200 --no-baseline -o json
    """
    from mothership.bench import admission as bench_admission

    if api_version not in ("v1beta1", "v1beta2"):
        raise typer.BadParameter("v1beta1 or v1beta2", param_hint="--api-version")
    err = Console(stderr=True)
    with friendly_errors(debug):
        result = bench_admission.run(
            bench_admission.Options(
                clusters, concurrency, api_version, reconcile, baseline, timeout, state_dir, keep
            ),
            reporter(err),
        )
    _print(result, output)


@app.command("provision")
def provision_command(
    clusters: int = typer.Option(5, "--clusters", min=1, help="How many Clusters to create."),
    storage: Storage = typer.Option(
        Storage.kine,
        "--storage",
        help="kine: SQLite on a pvc; etcd: managed etcd; postgres/mysql: kine on a private "
        "SQL server the bench starts (one database per Cluster).",
    ),
    concurrency: int = typer.Option(
        5,
        "--concurrency",
        min=1,
        help="Clusters provisioning at once: the next is applied when one is Available "
        "(1: one after another, each on a quiet machine).",
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Leave the Clusters (and a mothership the bench started) running."
    ),
    timeout: float = typer.Option(
        900.0, "--timeout", help="Seconds for every Cluster to be Available (and for clean-up)."
    ),
    floor_runs: int = typer.Option(
        3, "--floor-runs", min=0, help="Starts of the bare kube-apiserver (0: no floor)."
    ),
    output: Output = typer.Option(Output.table, "-o", "--output", help="table or json."),
    name: str = typer.Option("default", "--name", help="Which local mothership."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Its state dir."),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Time N kubernetes-distribution Clusters from apply to Available on the real node.

    Runs on the local mothership; one that is not running is started with the
    real node and stopped again at the end. Prints p50/p95/max of apply ->
    Available, the memory of each control-plane pod and container (RSS and
    working set, from the kubelet) and the floor: a bare kube-apiserver started
    by hand on the same kind of datastore. The Clusters are deleted at the end
    (--keep leaves them). Progress goes to stderr, figures to stdout.

    Examples:
      mothership bench provision --clusters 5
      mothership bench provision --clusters 3 --storage postgres -o json
    """
    err = Console(stderr=True)
    with friendly_errors(debug):
        result = provision.run(
            provision.Options(
                clusters, storage, concurrency, keep, timeout, floor_runs, name, state_dir
            ),
            reporter(err),
        )
    if output == Output.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        out = Console()
        if not out.is_terminal:
            out = Console(width=240)
        result.print_tables(out)


@app.command("density")
def density_command(
    max_clusters: int = typer.Option(
        40, "--max-clusters", min=1, help="Stop adding control planes after this many."
    ),
    rate: float = typer.Option(
        1.0, "--rate", min=0.05, help="Requests per second to each serving control plane."
    ),
    window: float = typer.Option(
        15.0, "--window", min=1.0, help="Seconds of load measured after each addition."
    ),
    p99_limit: float = typer.Option(
        1.0, "--p99-limit", min=0.01, help="Stop when a step's p99 latency exceeds this (s)."
    ),
    min_mem_available: float = typer.Option(
        1024.0, "--min-mem-available", help="Stop when the host's MemAvailable falls below (MiB)."
    ),
    idle_window: float = typer.Option(
        30.0, "--idle-window", min=5.0, help="Seconds over which idle CPU is measured at the end."
    ),
    settle: float = typer.Option(
        0.0,
        "--settle",
        min=0.0,
        help="Seconds the control planes rest, load stopped, before --idle-window begins "
        "(so that their start-up work is over).",
    ),
    timeout: float = typer.Option(
        300.0, "--timeout", help="Seconds for each Cluster to be Available (twice for clean-up)."
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Leave the Clusters (and a mothership the bench started) running."
    ),
    spec_file: Path | None = typer.Option(
        None,
        "--spec-file",
        help="YAML of Cluster spec fields merged into every Cluster (e.g. a "
        "kubernetes.tuning), to measure a tuning against the defaults.",
    ),
    output: Output = typer.Option(Output.table, "-o", "--output", help="table or json."),
    name: str = typer.Option("default", "--name", help="Which local mothership."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Its state dir."),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Add serving control planes one after another until one of them is too slow.

    On the real-node local mothership (started if not running, stopped again at the end):
    kubernetes-distribution Clusters on kine/SQLite, each given a steady light load (GET
    /readyz and LIST namespaces in turn at --rate) once Available. After each addition the
    p50/p99 latency of every request in --window is printed; the run stops at the first
    step over --p99-limit, with a failed request, a Cluster not Available in time, low host
    memory, or at --max-clusters, and says which. Then, load stopped, it prints each
    control plane's RSS and idle CPU (kubelet figures; per container too). The Clusters
    are deleted at the end (--keep leaves them).

    Examples:
      mothership bench density
      mothership bench density --max-clusters 10 --rate 2 -o json
      mothership bench density --spec-file tuning.yaml
    """
    from mothership.bench import density as bench_density

    err = Console(stderr=True)
    with friendly_errors(debug):
        spec = bench_density.read_spec_file(spec_file) if spec_file else None
        result = bench_density.run(
            bench_density.Options(
                max_clusters,
                rate,
                window,
                p99_limit,
                min_mem_available,
                idle_window,
                timeout,
                keep,
                spec,
                name,
                state_dir,
                settle,
            ),
            reporter(err),
        )
    _print(result, output)


class JoinDistribution(StrEnum):
    kubernetes = "kubernetes"
    k0s = "k0s"


@app.command("join")
def join_command(
    machines: int = typer.Option(3, "--machines", min=1, help="Edge machines that join."),
    cut_seconds: float = typer.Option(
        60.0, "--cut-seconds", min=0, help="How long the first machine's link is cut (0: no cut)."
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds for each step."),
    output: Output = typer.Option(Output.table, "-o", "--output", help="table or json."),
    name: str = typer.Option("default", "--name", help="Which local mothership."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Its state dir."),
    distribution: JoinDistribution = typer.Option(
        JoinDistribution.kubernetes,
        "--distribution",
        help="The Cluster's distribution; k0s runs the k0s this host builds, configured as "
        "at an air-gapped site.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Time workers joining a Cluster with the one-line command, and a link cut.

    On the real-node local mothership (started if not running, stopped again at the
    end): a NodePort Cluster, N edge machines joining one after
    another (token request -> node Ready, p50/max), then the first machine's link cut
    and restored (time until kubectl exec works again). Everything is removed at the end.

    Examples:
      mothership bench join --machines 3
      mothership bench join --machines 2 --cut-seconds 0 -o json
      mothership bench join --distribution k0s
    """
    from mothership.bench import join as bench_join

    err = Console(stderr=True)
    with friendly_errors(debug):
        result = bench_join.run(
            bench_join.Options(machines, cut_seconds, timeout, name, state_dir, distribution.value),
            reporter(err),
        )
    _print(result, output)


def _replica_steps(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give replica counts like 2,3,1") from None


@app.command("capi")
def capi_command(
    machines: int = typer.Option(3, "--machines", min=1, help="Reachable machines in the pool."),
    steps: str = typer.Option(
        "2,3,1", "--steps", help="Replica counts the MachineDeployment is scaled to, in order."
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds for each step."),
    output: Output = typer.Option(Output.table, "-o", "--output", help="table or json."),
    name: str = typer.Option("default", "--name", help="Which local mothership."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Its state dir."),
    debug: bool = typer.Option(False, "--debug", help="Show stack traces."),
) -> None:
    """Time a Cluster API MachineDeployment of machines reached over SSH.

    On the real-node local mothership with real Cluster API (each started if not running,
    stopped again at the end): a Cluster with a hosted K0smotronControlPlane, a pool of
    reachable machines and a MachineDeployment scaled through --steps. Prints, for every
    Node a scale-up brings, the time from the replicas change to the Node Ready (p50/max),
    and per step the time until Machines, Nodes and the pool agree. Everything is removed
    at the end.

    Examples:
      mothership bench capi
      mothership bench capi --machines 4 --steps 4,1 -o json
    """
    from mothership.bench import capi as bench_capi

    err = Console(stderr=True)
    with friendly_errors(debug):
        result = bench_capi.run(
            bench_capi.Options(machines, _replica_steps(steps), timeout, name, state_dir),
            reporter(err),
        )
    _print(result, output)


def _print(result: Any, output: Output) -> None:
    """A bench result as JSON, or its lines of figures."""
    if output == Output.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        for line in result.lines():
            print(line)
