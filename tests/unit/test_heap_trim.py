"""The heap trim of the operator and its webhook child: found in this glibc, harmless to
call, and a task that stops."""

from __future__ import annotations

import asyncio
import contextlib

from mothership import heap_trim


def test_glibcs_malloc_trim_is_found_and_returns_nothing() -> None:
    trim = heap_trim._libc_trim()
    assert trim is not None, "this host runs glibc: malloc_trim must be found"
    held = [bytes(4096) for _ in range(2000)]
    del held[::2]  # holes in the heap, the case it is for
    assert trim() is None


def test_the_trim_task_runs_until_cancelled() -> None:
    async def scenario() -> bool:
        task = asyncio.create_task(heap_trim.trim_forever(interval=0.01))
        await asyncio.sleep(0.05)
        running = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return running and task.cancelled()

    assert asyncio.run(scenario())
