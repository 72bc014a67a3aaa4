"""The operator's key-making threads run behind everything else; only they do.

Linux keeps a niceness per thread: the pool's initializer lowers its own thread's, and the
thread that made the pool (the event loop, which spawns the webhook child) keeps its own.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading

from mothership.controllers.operator import PKI_NICENESS, yield_the_cpu


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_only_the_pool_threads_are_lowered() -> None:
    before = _niceness()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=yield_the_cpu) as pool:
        in_pool = pool.submit(_niceness).result(timeout=10)
    assert in_pool == max(before, PKI_NICENESS)
    assert _niceness() == before  # the caller's thread, and so its future children, kept theirs
