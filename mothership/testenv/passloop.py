"""The loop of the local mothership's small controllers (the storage provisioner, the
NetworkPolicy enforcer): a full pass over what they manage, run again when a watch reports
a change and at least every `resync` seconds, so a missed event costs one resync at most."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from lightkube import Client


def log(message: str) -> None:
    print(f"{time.strftime('%FT%T')} {message}", flush=True)


def _watch(client: Client, resource: Any, namespace: str | None, wake: threading.Event) -> None:
    while True:
        try:
            for _ in client.watch(resource, namespace=namespace):
                wake.set()
        except Exception as exc:  # the API restarting; resume after a pause
            log(f"watch on {resource.__name__} ended ({exc}); resuming")
            time.sleep(1.0)
        wake.set()


def run(
    client: Client,
    watches: Sequence[tuple[Any, str | None]],
    one_pass: Callable[[], None],
    *,
    resync: float,
    settle: float,
) -> NoReturn:
    """Pass after pass, forever; a failed pass is logged and retried a second later.
    ``settle``: a pause after a wake-up, so a burst of events makes one pass."""
    wake = threading.Event()
    for resource, namespace in watches:
        threading.Thread(
            target=_watch, args=(client, resource, namespace, wake), daemon=True
        ).start()
    while True:
        wake.clear()
        try:
            one_pass()
        except Exception as exc:
            log(f"pass failed: {type(exc).__name__}: {exc}")
            time.sleep(1.0)
            continue
        wake.wait(resync)
        time.sleep(settle)
