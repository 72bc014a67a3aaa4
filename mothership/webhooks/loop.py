"""An event loop in a thread of its own, for the webhook server.

The operator's loop runs kopf and every reconcile; under a burst of creates (each one
admitted, then reconciled: render, certificates, a dozen applies) it is busy most of the
time. Served from that loop, an admission request waited behind whole reconcile steps
before its handler ran: in ``bench admission`` the handler's own p99 stayed near 20 ms
while the API server measured 380 ms and more (issue 12). On a loop of its own the
webhook waits for the GIL only, which Python code must hand over every switch interval
and I/O and key generation release. C code that keeps the GIL still stalls it, e.g.
loading an RSA private key with its consistency check (40-120 ms on this host, see
``pki.CertKey.private_key``), and so does the CPU the reconciles take from the machine.

This is ``--webhook-serving=thread``; by default the webhooks run in a child process
(:mod:`mothership.webhooks.child`), which waits for no GIL of the operator's at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

JOIN_SECONDS = 10.0
# How long a thread that wants the GIL waits before the running one must hand it over
# (Python's default: 5 ms). A request takes the GIL several times (read, judge, write);
# the webhook thread asks for it only while it has a request in hand, so the reconciles
# rarely notice the shorter slice. Measured (`bench admission --clusters 400`, load 5-6,
# two runs each): 19.2 and 23.2 s at 5 ms, 17.6 and 19.4 s at 1 ms.
SWITCH_INTERVAL = 0.001
SWITCH_INTERVAL_ENV = "MOTHERSHIP_SWITCH_INTERVAL"  # seconds; 0.005 is Python's default


class LoopThread:
    """A daemon thread running its own event loop until :meth:`aclose`."""

    def __init__(self, name: str) -> None:
        override = os.environ.get(SWITCH_INTERVAL_ENV)
        if override:
            sys.setswitchinterval(float(override))
        else:
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this thread's loop; await its result from any other loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def aclose(self) -> None:
        """Cancel what still runs on this thread's loop, then stop the loop and the thread."""
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError, TimeoutError):
                done = asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop)
                await asyncio.wait_for(asyncio.wrap_future(done), JOIN_SECONDS)
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self._thread.join, JOIN_SECONDS)
        if not self._thread.is_alive():
            self.loop.close()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
