"""Handing freed heap back to the kernel while a burst of reconciles runs.

A burst of creations leaves glibc's heap full of holes: request and response bodies, rendered
objects and certificates larger than Python's small-object allocator takes are freed between
chunks still in use, and glibc returns memory to the kernel only from the top of its heap. So
the operator's resident memory followed its busiest moment, not what it holds. `malloc_trim`
releases the free pages inside the heap too (madvise); a few milliseconds every few seconds.
The webhook server's child process has the same bursts (a `kubectl create -f` of a thousand
Clusters), so this lives beside both rather than in either layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import Callable

TRIM_SECONDS = 5.0


def _libc_trim() -> Callable[[], None] | None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim

        def trim() -> None:
            malloc_trim(0)  # returns whether memory was released: nothing to act on

        return trim
    return None


async def trim_forever(interval: float = TRIM_SECONDS) -> None:
    trim = _libc_trim()
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval)
        trim()
