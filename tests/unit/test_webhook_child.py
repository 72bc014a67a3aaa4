"""The webhook server in a child process of the operator: real processes, real TLS.

It answers, its handling time shows in the operator's registry, a killed child comes back
on the same port, a renewed pair is served without a restart, and no child outlives an
operator killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from prometheus_client import REGISTRY, generate_latest

from mothership.webhooks import tls
from mothership.webhooks.child import WebhookChild

TIMEOUT = 60.0


def _kubeconfig(path: Path) -> Path:
    """Credentials for an API server nobody asks: these requests need no other Cluster."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def _until(what: str, condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that no longer reaps it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _get(url: str, ca: bytes) -> int:
    ctx = ssl.create_default_context(cadata=ca.decode())
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as response:
            return int(response.status)
    except OSError:
        return 0


def _served_serial(port: int) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    import socket

    with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der).serial_number


def _convert(url: str, ca: bytes) -> dict:
    review = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "u1", "desiredAPIVersion": "k0smotron.io/v1beta2", "objects": []},
    }
    request = urllib.request.Request(
        f"{url}/convert",
        data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json"},
    )
    ctx = ssl.create_default_context(cadata=ca.decode())
    with urllib.request.urlopen(request, context=ctx, timeout=5) as response:
        return json.loads(response.read())


def _metric(endpoint: str) -> float:
    text = generate_latest(REGISTRY).decode()
    prefix = f'mothership_webhook_duration_seconds_count{{endpoint="{endpoint}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_the_child_answers_records_metrics_and_comes_back_when_killed(tmp_path: Path) -> None:
    material = tls.webhook_tls(tmp_path / "certs")
    child = WebhookChild(
        "127.0.0.1", 0, tmp_path / "certs", kubeconfig=_kubeconfig(tmp_path / "kubeconfig")
    )

    async def scenario() -> None:
        await child.start()
        try:
            assert child.port and child.pid and child.pid != os.getpid()
            health = f"{child.url_base}/healthz"
            assert await asyncio.to_thread(_get, health, material.ca_pem) == 200
            before = _metric("convert")
            answer = await asyncio.to_thread(_convert, child.url_base, material.ca_pem)
            assert answer["response"]["result"]["status"] == "Success"
            # Observed in the child, read through the operator's own registry.
            assert _metric("convert") == before + 1

            # Killed: restarted on the same port, and answering again.
            first, port = child.pid, child.port
            os.kill(first, signal.SIGKILL)
            await asyncio.to_thread(
                _until,
                "a new child answers",
                lambda: child.pid != first and _get(health, material.ca_pem) == 200,
            )
            assert child.port == port and child.restarts == 1
            assert not _alive(first)
            # The first child's observations still count after the restart.
            assert _metric("convert") >= before + 1
        finally:
            await child.stop()
        assert child.proc and child.proc.returncode is not None

    asyncio.run(scenario())


def test_a_renewed_pair_is_served_without_a_restart(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    tls.webhook_tls(certs)
    child = WebhookChild("127.0.0.1", 0, certs, kubeconfig=_kubeconfig(tmp_path / "kubeconfig"))

    async def scenario() -> None:
        await child.start()
        try:
            pid = child.pid
            old = await asyncio.to_thread(_served_serial, child.port)
            other = tmp_path / "other"
            tls.webhook_tls(other)
            for name in (tls.CERT_FILE, tls.KEY_FILE):
                shutil.copy(other / name, certs / name.replace(".", ".new."))
            for name in (tls.CERT_FILE, tls.KEY_FILE):
                (certs / name.replace(".", ".new.")).replace(certs / name)
            new = x509.load_pem_x509_certificate((certs / tls.CERT_FILE).read_bytes())
            assert new.serial_number != old
            child.reload_certificate()
            await asyncio.to_thread(
                _until,
                "the new certificate served",
                lambda: _served_serial(child.port) == new.serial_number,
            )
            assert child.pid == pid
        finally:
            await child.stop()

    asyncio.run(scenario())


def test_no_child_outlives_an_operator_killed_with_sigkill(tmp_path: Path) -> None:
    tls.webhook_tls(tmp_path / "certs")
    operator = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from mothership.webhooks.child import WebhookChild

        async def main():
            child = WebhookChild("127.0.0.1", 0, Path({str(tmp_path / "certs")!r}),
                                 kubeconfig=Path({str(_kubeconfig(tmp_path / "kc"))!r}))
            await child.start()
            print(child.pid, flush=True)
            await asyncio.Event().wait()

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", operator], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"the operator stand-in did not start its child: {line!r}"
        child = int(line)
        assert _alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
        _until(f"child {child} gone after its operator's SIGKILL", lambda: not _alive(child))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_service_serves_from_a_child_or_a_thread(tmp_path: Path) -> None:
    from lightkube import AsyncClient, KubeConfig

    from mothership.webhooks.runtime import Registration, Serving, WebhookConfig, WebhookService

    kubeconfig = _kubeconfig(tmp_path / "kubeconfig")

    async def scenario(serving: Serving) -> tuple[object, int, int | None]:
        config = WebhookConfig(
            cert_dir=tmp_path / serving.value,
            port=0,
            registration=Registration.none,
            serving=serving,
        )
        service = WebhookService(config, AsyncClient(config=KubeConfig.from_file(kubeconfig)))
        await service.start()
        runner = service.runner
        try:
            assert runner is not None and service._ca_pem
            health = f"{runner.url_base}/healthz"
            status = await asyncio.to_thread(_get, health, service._ca_pem)
            pid = runner.pid if isinstance(runner, WebhookChild) else None
        finally:
            await service.stop()
        return runner, status, pid

    runner, status, pid = asyncio.run(scenario(Serving.process))
    assert isinstance(runner, WebhookChild) and status == 200
    # The child got our client's kubeconfig file (no KUBECONFIG in its environment needed).
    assert runner.kubeconfig == kubeconfig
    assert pid and not _alive(pid)  # stopped with the service

    runner, status, _ = asyncio.run(scenario(Serving.thread))
    assert not isinstance(runner, WebhookChild) and status == 200


def test_a_child_waits_for_a_port_its_predecessor_still_holds(tmp_path: Path, capfd) -> None:
    """An operator started again right after a SIGKILL finds the old child on its port."""
    import socket

    material = tls.webhook_tls(tmp_path / "certs")
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    child = WebhookChild(
        "127.0.0.1", port, tmp_path / "certs", kubeconfig=_kubeconfig(tmp_path / "kubeconfig")
    )
    seen: list[str] = []

    def told_to_wait() -> bool:
        seen.append(capfd.readouterr().err)
        return "in use; waiting" in "".join(seen)

    async def scenario() -> None:
        starting = asyncio.create_task(child.start())
        try:
            await asyncio.to_thread(_until, "the child says it waits for the port", told_to_wait)
            assert not starting.done()
            held.close()
            await asyncio.wait_for(starting, TIMEOUT)
            assert child.port == port
            health = f"{child.url_base}/healthz"
            assert await asyncio.to_thread(_get, health, material.ca_pem) == 200
        finally:
            held.close()
            await child.stop()

    asyncio.run(scenario())
