"""Independent API calls made at once, failing as one call would.

A reconcile that writes a handful of independent objects spends most of its time waiting
for round trips; made one after another on a busy machine they added up to seconds. A
TaskGroup runs them together but reports failures as an ExceptionGroup, which the callers'
`except ApiError` would not catch: the first failure is raised as itself instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def all_at_once(calls: list[Coroutine[Any, Any, T]], limit: int = 0) -> list[T]:
    """Their results in order; the first failure raised as itself, the others cancelled.
    With `limit`, at most that many run at a time."""
    gate = asyncio.Semaphore(limit) if limit > 0 else None

    async def bounded(call: Coroutine[Any, Any, T]) -> T:
        if gate is None:
            return await call
        try:
            async with gate:
                return await call
        finally:
            call.close()  # never started when cancelled at the gate; a no-op otherwise

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(call)) for call in calls]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
