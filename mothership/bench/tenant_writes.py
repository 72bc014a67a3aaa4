"""A stream of writes into a tenant, for the benches that fault it: which writes its API
server acknowledged, how many failed, and which acknowledged ones are missing at the end.

A write is the strongest thing to count: an acknowledged create that is gone afterwards is
data lost, whatever the fault was (a datastore stopped, replicas moved by a drain).
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import yaml

WARM_UP_WRITES = 10  # acknowledged before the fault, so "before" is never empty
WRITE_PAUSE = 0.2


def tenant_client(kc: Any, namespace: str, cluster: str) -> Any:
    """A client for the tenant, from the admin kubeconfig Secret the operator wrote."""
    from lightkube import Client, KubeConfig
    from lightkube.resources.core_v1 import Secret

    from mothership.render import names

    secret = kc.get(Secret, names.kubeconfig_secret(cluster), namespace=namespace)
    text = base64.b64decode((secret.data or {})["value"]).decode()
    return Client(config=KubeConfig.from_dict(yaml.safe_load(text)), field_manager="bench")


class Writer:
    """ConfigMaps created in the tenant one after another on a thread: which the API
    server acknowledged (the create answered), how many failed, when one last went in."""

    def __init__(self, tenant: Any) -> None:
        self.tenant = tenant
        self.acknowledged: list[str] = []
        self.failures = 0
        self.last_ok = 0.0
        self.last_error = ""  # why the latest write failed, for the report
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="tenant-writer")

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        from lightkube.core.exceptions import ApiError
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ConfigMap

        i = 0
        while not self.stop.is_set():
            name = f"w-{i:05d}"
            try:
                self.tenant.create(
                    ConfigMap(metadata=ObjectMeta(name=name), data={"i": str(i)}),
                    namespace="default",
                )
                self.acknowledged.append(name)
                self.last_ok = time.monotonic()
                i += 1
            except ApiError as exc:
                if exc.status.code == 409:  # an earlier try went in after all (answer lost)
                    self.acknowledged.append(name)
                    i += 1
                    continue
                self.failures += 1
                self.last_error = f"{exc.status.code} {exc.status.message}"
            except Exception as exc:  # cut off, timed out: the outage itself
                self.failures += 1
                self.last_error = f"{type(exc).__name__} {exc}"
            self.stop.wait(WRITE_PAUSE)


def started(tenant: Any, timeout: float) -> Writer:
    """A writer running, once WARM_UP_WRITES of its writes were acknowledged."""
    from mothership.testenv import kube

    writer = Writer(tenant)
    writer.thread.start()
    try:
        kube.wait_until(
            f"{WARM_UP_WRITES} writes acknowledged",
            lambda: len(writer.acknowledged) >= WARM_UP_WRITES,
            timeout,
        )
    except BaseException:
        writer.finish()
        raise
    return writer


def lost(tenant: Any, writer: Writer, timeout: float) -> list[str]:
    """The writer's acknowledged writes the tenant no longer lists."""
    from lightkube.resources.core_v1 import ConfigMap

    from mothership.testenv import kube

    stored: set[str] = set()

    def listed() -> bool:
        # Asked until it answers: the tenant's API server may be restarting just after the
        # fault (its liveness probe failed while the datastore was away). Seen in CI: the
        # writes went in again, then this LIST met "connection refused" and the run failed.
        items = tenant.list(ConfigMap, namespace="default")
        stored.update(c.metadata.name for c in items if c.metadata and c.metadata.name)
        return True

    kube.wait_until("the tenant's ConfigMaps listed", listed, timeout)
    return [n for n in writer.acknowledged if n not in stored]
