"""A lightkube client for the local mothership and small waits built on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Node


def client(kubeconfig: Path, field_manager: str = "mothership-testenv") -> Client:
    return Client(config=KubeConfig.from_file(kubeconfig), field_manager=field_manager)


def node_ready(node: Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            if check():
                return
        except Exception as exc:  # transient API errors while components start
            last = f" (last error: {exc})"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true after {timeout:.0f}s{last}")
        time.sleep(interval)


def wait_nodes_ready(kc: Client, names: list[str], timeout: float) -> None:
    def ready() -> bool:
        nodes = {n.metadata.name: n for n in kc.list(Node) if n.metadata}
        return all(name in nodes and node_ready(nodes[name]) for name in names)

    wait_until(f"nodes {', '.join(names)} Ready", ready, timeout)
