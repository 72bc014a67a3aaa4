"""The webhook server in a child process of the operator, and the parent's handle on it.

In one process with the operator, the webhooks waited for the GIL and the CPU the
reconciles hold: in ``bench admission`` (1,000 Clusters in one ``kubectl create -f``) the
API server saw p99 near 100 ms and worse while the operator reconciled what it admitted,
22-24 ms with the webhooks alone (issue 12). A process of its own shares only the CPU.

The parent (:class:`WebhookChild`, used by ``runtime.WebhookService``) keeps doing
everything but serving: it makes, adopts and renews the certificates in ``cert_dir`` and
registers the webhooks. The child (``python -m mothership.webhooks.child``, the same
Python) serves from ``cert_dir``, re-reads the pair when the files change (it looks every
:data:`RELOAD_SECONDS`, and at once on SIGHUP, which the parent sends when it wrote a new
pair), and has its own API client for the node port check (the parent's kubeconfig and
context, or the in-cluster service account).

Lifecycle: the child asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG),
so it never outlives a killed operator; the parent stops it with SIGTERM on shutdown, and
restarts it on the same port when it exits on its own (backing off up to
:data:`RESTART_MAX_SECONDS`); meanwhile the in-cluster readiness probe (HTTPS ``/healthz``
on the webhook port) fails, so the Service sends admission to another replica.

Metrics: the child records ``mothership_webhook_duration_seconds`` in prometheus_client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, a directory the parent makes); the
parent's registry collects them, so the operator's ``/metrics`` shows the histogram as
before, summed over restarts of the child.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import ctypes
import datetime
import errno
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("mothership.webhooks")

RELOAD_SECONDS = 2.0
READY_SECONDS = 60.0  # from spawn to listening (imports, the first TLS context)
STOP_SECONDS = 10.0
RESTART_MIN_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0
BIND_WAIT_SECONDS = 30.0  # the port held by the child of an operator that just died
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


# -- the parent's side ------------------------------------------------------------------


class WebhookChild:
    """Runs, watches and stops the webhook server process; quacks like ``server.Runner``."""

    def __init__(
        self,
        host: str,
        port: int,
        cert_dir: Path,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        log_format: str = "plain",
    ) -> None:
        self.host = host
        self.port = port
        self.cert_dir = cert_dir
        self.kubeconfig = kubeconfig
        self.context = context
        self.log_format = log_format
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def url_base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        """Spawn the child and wait until it listens; then watch it (restart on exit)."""
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="webhook-child")

    def _argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "mothership.webhooks.child",
            f"--host={self.host}", f"--port={self.port}", f"--cert-dir={self.cert_dir}",
            f"--parent-pid={os.getpid()}", f"--log-format={self.log_format}",
            f"--log-level={logging.getLevelName(logging.getLogger().getEffectiveLevel())}",
        ]  # fmt: skip
        if self.kubeconfig:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            argv.append(f"--context={self.context}")
        return argv

    async def _spawn(self) -> None:
        env = {**os.environ, MULTIPROC_ENV: str(metrics_dir())}
        # stdout carries one line (the bound port); logs go to the operator's stderr.
        proc = await asyncio.create_subprocess_exec(
            *self._argv(), stdout=asyncio.subprocess.PIPE, env=env
        )
        self.proc = proc
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), READY_SECONDS)
        except BaseException:
            await _terminate(proc)
            raise
        if not line:
            code = await proc.wait()
            raise RuntimeError(
                f"the webhook server process exited with {code} before listening on "
                f"{self.host}:{self.port} (its log is above)"
            )
        self.port = int(json.loads(line)["port"])  # port 0 at first: keep the bound one
        log.info("webhook server process %s listening on %s:%s", proc.pid, self.host, self.port)

    async def _supervise(self) -> None:
        delay = RESTART_MIN_SECONDS
        while not self._stopping:
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping:
                return
            log.error("webhook server process %s exited with %s; restarting", self.proc.pid, code)
            if time.monotonic() - started > RESTART_MAX_SECONDS:
                delay = RESTART_MIN_SECONDS  # it ran a good while: not a crash loop
            while not self._stopping:
                await asyncio.sleep(delay)
                delay = min(2 * delay, RESTART_MAX_SECONDS)
                try:
                    await self._spawn()
                    self.restarts += 1
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("restarting the webhook server process failed: %s", exc)

    def reload_certificate(self, _: Path | None = None) -> None:
        """Ask the child to re-read the pair now (it also looks by itself)."""
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGHUP)

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self.proc:
            await _terminate(self.proc)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


_METRICS_DIR: Path | None = None


def metrics_dir() -> Path:
    """This operator's multiprocess metrics directory, collected into its registry.

    One per operator process (every child of it writes its own files there); the
    in-process histogram of ``server`` leaves the registry, so ``/metrics`` shows
    ``mothership_webhook_duration_seconds`` once, from the children's files.
    """
    global _METRICS_DIR
    if _METRICS_DIR is None:
        from prometheus_client import REGISTRY
        from prometheus_client.multiprocess import MultiProcessCollector

        from mothership.webhooks.server import DURATION

        path = Path(tempfile.mkdtemp(prefix="mothership-webhook-metrics-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(DURATION)
        MultiProcessCollector(REGISTRY, path=str(path))
        _METRICS_DIR = path
    return _METRICS_DIR


# -- the child's side -------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the operator dies, however it dies; and leave if it already has."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if parent and os.getppid() != parent:
        sys.exit(0)


class _JsonFormatter(logging.Formatter):
    """Lines like the operator's (kopf's JSON format), plus the logger and process."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "message": record.getMessage(),
            "timestamp": stamp.isoformat(),
            "severity": record.levelname.lower(),
            "logger": record.name,
            "process": "webhooks",
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s")
        )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _read_pair(cert_dir: Path) -> tuple[bytes, bytes] | None:
    from mothership.webhooks.tls import CERT_FILE, KEY_FILE

    try:
        return (cert_dir / CERT_FILE).read_bytes(), (cert_dir / KEY_FILE).read_bytes()
    except OSError:
        return None


async def _serve(args: argparse.Namespace) -> None:
    from lightkube import AsyncClient, KubeConfig

    from mothership import heap_trim
    from mothership.webhooks.server import cluster_lister

    cert_dir = Path(args.cert_dir)
    config = KubeConfig.from_file(args.kubeconfig) if args.kubeconfig else KubeConfig.from_env()
    client = AsyncClient(config=config.get(context_name=args.context))
    stop = asyncio.Event()
    look = asyncio.Event()
    loop = asyncio.get_running_loop()

    def _stop() -> None:
        stop.set()
        look.set()  # leave the wait now: a new operator may be waiting for this port

    loop.add_signal_handler(signal.SIGTERM, _stop)
    loop.add_signal_handler(signal.SIGHUP, look.set)
    served = _read_pair(cert_dir)
    runner = await _serve_when_free(args.host, args.port, cert_dir, cluster_lister(client))
    trim = asyncio.create_task(heap_trim.trim_forever())
    try:
        # The one line the parent waits for; stdout is not used after it.
        sys.stdout.write(json.dumps({"port": runner.port}) + "\n")
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(look.wait(), RELOAD_SECONDS)
            look.clear()
            pair = _read_pair(cert_dir)
            if pair is None or pair == served:
                continue
            try:
                runner.reload_certificate(cert_dir)
            except (OSError, ValueError) as exc:  # half written (cert new, key old): next look
                log.warning("webhook serving certificate not reloaded yet: %s", exc)
                continue
            served = pair
            log.info("webhook serving certificate reloaded")
    finally:
        trim.cancel()
        await runner.stop()
        await client.close()


async def _serve_when_free(host: str, port: int, cert_dir: Path, lister: Any) -> Any:
    """``serve``, waiting up to :data:`BIND_WAIT_SECONDS` while the port is in use.

    An operator killed and started again at once (SIGKILL, a crash, a test) finds its
    port still held by its old child: the kernel sends that one SIGTERM when the old
    operator dies, and it lets go within moments. Failing at once would make the new
    operator exit; waiting a bounded time costs nothing when the port is free.
    """
    from mothership.webhooks.server import serve

    deadline = time.monotonic() + BIND_WAIT_SECONDS
    told = False
    while True:
        try:
            return await serve(host, port, cert_dir, lister)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0 or time.monotonic() > deadline:
                raise
            if not told:
                log.warning("port %s:%s in use; waiting for it to be free", host, port)
                told = True
            await asyncio.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mothership.webhooks.child")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-dir", required=True)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--context")
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--log-format", default="plain")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent_pid)
    # Ctrl-C reaches the whole process group: the parent stops us in its own time.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _configure_logging(args.log_format, args.log_level)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
