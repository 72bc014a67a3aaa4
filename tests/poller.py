"""A client asking a tenant's API every 100 ms on a thread, for tests that roll or break its
control plane and count what failed meanwhile.

A terminating API server answers requests on connections it still holds with 503 (or 429)
and a Retry-After header ("apiserver is shutting down"); client-go, so kubectl and every
controller, retries an answer with Retry-After. The poller does too (after a second, a few
times) and counts such a request as retried, not failed: a failure is what a Kubernetes
client would see. Likewise a GET on a kept-alive connection that the stopping server closed
before answering ("Server disconnected without sending a response") is sent again at once
on a new connection, as Go's HTTP transport does for idempotent requests (it failed one CI
run of a rolling upgrade, where every answer was fine)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx2
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace


def answers(client: Client) -> bool:
    return _error(client) is None


RETRIES_AFTER_RETRY_AFTER = 5


def _says_retry_after(exc: ApiError) -> bool:
    """429 or 5xx with a Retry-After header: what client-go waits out and retries."""
    code = exc.status.code or 0
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return (code == 429 or code >= 500) and "retry-after" in {k.lower() for k in headers}


def _get(client: Client) -> None:
    try:
        client.get(Namespace, "kube-system")
    except httpx2.RemoteProtocolError:
        client.get(Namespace, "kube-system")


def _error(client: Client, retried: list[int] | None = None) -> str | None:
    for attempt in range(RETRIES_AFTER_RETRY_AFTER + 1):
        try:
            _get(client)
            return None
        except ApiError as exc:
            if not _says_retry_after(exc) or attempt == RETRIES_AFTER_RETRY_AFTER:
                return f"ApiError {exc.status.code}: {exc}"[:300]
            if retried is not None:
                retried.append(attempt)
            time.sleep(1.0)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
    return None


class Poller:
    """GET of a Namespace every 100 ms (10 Hz); counts requests and when each failure was."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = Client(config=KubeConfig.from_file(str(kubeconfig)), timeout=2)
        self.failures: list[float] = []
        self.errors: list[str] = []  # what each failure said, for the test's message
        self.retried: list[int] = []  # one entry per retry after a Retry-After answer
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.requests += 1
            error = _error(self.client, self.retried)
            if error is not None:
                self.failures.append(time.monotonic())
                self.errors.append(error)
            self._stop.wait(0.1)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def window(self) -> float:
        return self.failures[-1] - self.failures[0] if self.failures else 0.0
