"""List, then watch from the list's resource version: waits that miss no change.

Used for every wait of `mothership bench provision`, so a time is taken when the API
server reports the change, not at the next tick of a polling loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.types import OnErrorAction, OnErrorResult


def _on_watch_error(exc: Exception, count: int) -> Any:
    """Re-watch after a second; give up after 30 failures in a row (the API is gone)."""
    if count > 30:
        return OnErrorResult(OnErrorAction.RAISE)
    return OnErrorResult(OnErrorAction.RETRY, sleep=1.0)


async def follow(
    client: Any,
    res: Any,
    on_event: Callable[[str, Any], None],
    done: Callable[[], bool],
    *,
    namespace: str | None = None,
    fields: dict[str, str] | None = None,
) -> None:
    """List, then watch from the list's version, until done(): no change is missed.

    A LIST answered 429 (the API server still filling its watch cache, or throttling) is
    asked again after a second, as client-go does, for up to 30 s.
    """
    for attempt in range(31):
        listing = client.list(res, namespace=namespace, fields=fields)
        try:
            async for obj in listing:
                on_event("ADDED", obj)
            break
        except ApiError as exc:
            if exc.status.code != 429 or attempt == 30:
                raise
            await asyncio.sleep(1.0)
    if done():
        return
    async for kind, obj in client.watch(
        res,
        namespace=namespace,
        fields=fields,
        resource_version=listing.resourceVersion,
        on_error=_on_watch_error,
    ):
        on_event(kind, obj)
        if done():
            return


async def until_gone(
    client: Any,
    res: Any,
    *,
    namespace: str | None = None,
    fields: dict[str, str] | None = None,
    mine: Callable[[Any], bool] = lambda _obj: True,
) -> None:
    present: set[str] = set()

    def on_event(kind: str, obj: Any) -> None:
        if kind == "DELETED" or not mine(obj):
            present.discard(obj.metadata.name)
        else:
            present.add(obj.metadata.name)

    await follow(client, res, on_event, lambda: not present, namespace=namespace, fields=fields)
