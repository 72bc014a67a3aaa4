"""The floor under a Cluster's start-up: a bare kube-apiserver started by hand on this host.

A Cluster cannot become Available faster than its kube-apiserver can start on its
datastore, so the bench times exactly that, with the same binaries and the same kind of
datastore, and nothing else in the way: no scheduling, no image, no pod, no operator.
Each run gets a fresh datastore (a new SQLite file, etcd data dir or SQL database), as a
new Cluster does, because an API server's first start also writes its bootstrap objects.

Readiness is polled (there is nothing to watch before the process listens) every
`POLL_INTERVAL` seconds, which bounds the measurement error.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mothership.render.kubernetes_control_plane import KINE_SQLITE_PARAMS
from mothership.testenv import components, health
from mothership.testenv.config import MothershipConfig
from mothership.testenv.pkiset import ensure_pki
from mothership.testenv.ports import free_ports
from mothership.testenv.procs import log_tail

POLL_INTERVAL = 0.02
PORTS = ["apiserver", "etcd", "etcd-peer", "kine-metrics"]
Report = Callable[[str], None]


@dataclass(frozen=True)
class FloorRun:
    """One start: datastore exec to serving, then kube-apiserver exec to /readyz ok."""

    datastore_seconds: float
    apiserver_seconds: float
    # Anonymous resident memory at the moment /readyz first said ok (what a cgroup's
    # `rss` counts, so it compares with the containers' figures).
    apiserver_rss_mib: float


@dataclass(frozen=True)
class Datastore:
    """How to start one fresh datastore for run `index` and tell when it serves."""

    label: str
    argv: Callable[[MothershipConfig, Path, int], list[str]]
    serving: Callable[[MothershipConfig], bool]


def kine_sqlite() -> Datastore:
    def argv(cfg: MothershipConfig, run_dir: Path, _index: int) -> list[str]:
        return _kine(cfg, f"sqlite://{run_dir / 'kine.db'}?{KINE_SQLITE_PARAMS}")

    return Datastore("kine on SQLite", argv, _listening)


def kine_sql(label: str, url_for_run: Callable[[int], str]) -> Datastore:
    """kine on a SQL server; `url_for_run(i)` creates run i's empty database and names it."""

    def argv(cfg: MothershipConfig, _run_dir: Path, index: int) -> list[str]:
        return _kine(cfg, url_for_run(index))

    return Datastore(label, argv, _listening)


def etcd() -> Datastore:
    def argv(cfg: MothershipConfig, run_dir: Path, _index: int) -> list[str]:
        client = f"http://127.0.0.1:{cfg.ports['etcd']}"
        peer = f"http://127.0.0.1:{cfg.ports['etcd-peer']}"
        # Like a tenant's etcd member, and unlike the local mothership's, it fsyncs.
        return [
            str(cfg.bin_dir / "etcd"),
            "--name=floor",
            f"--data-dir={run_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=floor={peer}",
            "--listen-metrics-urls=",
            "--log-level=warn",
        ]

    def serving(cfg: MothershipConfig) -> bool:
        return _ok(f"http://127.0.0.1:{cfg.ports['etcd']}/health", None)

    return Datastore("etcd", argv, serving)


def _kine(cfg: MothershipConfig, endpoint: str) -> list[str]:
    # The flags of a tenant pod's kine container, on loopback ports of our own.
    return [
        str(cfg.bin_dir / "kine"),
        f"--listen-address=127.0.0.1:{cfg.ports['etcd']}",
        "--metrics-bind-address=0",
        f"--endpoint={endpoint}",
    ]


def _listening(cfg: MothershipConfig) -> bool:
    return health.tcp_open("127.0.0.1", cfg.ports["etcd"], timeout=0.5)


def _ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        return health.http_ok(url, ctx, timeout=2.0)
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies, however it dies (no stray API servers)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _time_until(
    what: str,
    check: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
    started: float,
    timeout: float,
) -> float:
    """Seconds from `started` (just before exec) until check() holds; fails fast on exit."""
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log_tail(log)}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s:\n{log_tail(log)}")
        time.sleep(POLL_INTERVAL)
    return time.monotonic() - started


def _rss_anon_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(
    bin_dir: Path, store: Datastore, runs: int, report: Report, timeout: float = 120.0
) -> list[FloorRun]:
    """Start datastore + kube-apiserver `runs` times, each from nothing; time each step."""
    base = Path(tempfile.mkdtemp(prefix="mothership-bench-floor-"))
    try:
        cfg = MothershipConfig(
            name="bench-floor", state_dir=base, nodes="none", ports=free_ports(PORTS)
        )
        cfg.bin_dir = bin_dir
        ensure_pki(cfg)  # once: certificates are not what is being measured
        p = cfg.pki_dir
        tls = health.tls_context(p / "ca.crt", p / "admin.crt", p / "admin.key")
        out = []
        for index in range(runs):
            cfg.ports = free_ports(PORTS)
            run_dir = base / f"run-{index}"
            run_dir.mkdir()
            readyz = f"{cfg.api_url}/readyz"
            argv = store.argv(cfg, run_dir, index)
            started = time.monotonic()
            with _process(argv, run_dir / "datastore.log") as ds:
                ds_seconds = _time_until(
                    store.label,
                    functools.partial(store.serving, cfg),
                    ds,
                    run_dir / "datastore.log",
                    started,
                    timeout,
                )
                started = time.monotonic()
                with _process(components.apiserver(cfg), run_dir / "apiserver.log") as api:
                    api_seconds = _time_until(
                        "kube-apiserver",
                        functools.partial(_ok, readyz, tls),
                        api,
                        run_dir / "apiserver.log",
                        started,
                        timeout,
                    )
                    rss = _rss_anon_mib(api.pid)
            out.append(FloorRun(ds_seconds, api_seconds, rss))
            report(
                f"floor run {index + 1}/{runs}: {store.label} {ds_seconds:.2f} s, "
                f"kube-apiserver exec -> /readyz {api_seconds:.2f} s, RSS {rss:.0f} MiB"
            )
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)
