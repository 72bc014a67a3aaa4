"""A client asking a tenant's API every 100 ms on a thread, for tests that roll or break its
control plane and count what failed meanwhile."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Namespace


def answers(client: Client) -> bool:
    try:
        client.get(Namespace, "kube-system")
        return True
    except Exception:
        return False


class Poller:
    """GET of a Namespace every 100 ms (10 Hz); counts requests and when each failure was."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = Client(config=KubeConfig.from_file(str(kubeconfig)), timeout=2)
        self.failures: list[float] = []
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.requests += 1
            if not answers(self.client):
                self.failures.append(time.monotonic())
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
