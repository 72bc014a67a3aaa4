"""The webhook server's own event loop: it answers while the operator's loop is blocked."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import urllib.request
from pathlib import Path

from mothership.webhooks import server, tls
from mothership.webhooks.loop import LoopThread


async def _no_clusters() -> list[dict]:
    return []


async def _thread_name() -> str:
    return threading.current_thread().name


def test_a_coroutine_runs_on_the_thread_and_its_result_comes_back() -> None:
    async def run() -> str:
        thread = LoopThread("webhooks-test")
        try:
            return await thread.call(_thread_name())
        finally:
            await thread.aclose()

    assert asyncio.run(run()) == "webhooks-test"


def test_healthz_answers_while_the_callers_loop_is_blocked(tmp_path: Path) -> None:
    material = tls.webhook_tls(tmp_path)
    trust = ssl.create_default_context(cadata=material.ca_pem.decode())

    async def run() -> tuple[int, float]:
        thread = LoopThread("webhooks-test")
        runner = await thread.call(server.serve("127.0.0.1", 0, tmp_path, _no_clusters))
        answered: dict[str, float | int] = {}

        def ask() -> None:
            started = time.monotonic()
            with urllib.request.urlopen(f"{runner.url_base}/healthz", context=trust) as r:
                answered["status"] = r.status
            answered["seconds"] = time.monotonic() - started

        client = threading.Thread(target=ask)
        client.start()
        time.sleep(1.0)  # the caller's loop (the operator's, in production) is stuck
        client.join(5)
        try:
            return int(answered["status"]), float(answered["seconds"])
        finally:
            await thread.call(runner.stop())
            await thread.aclose()

    status, seconds = asyncio.run(run())
    assert status == 200
    assert seconds < 1.0  # answered before the blocked loop let go
