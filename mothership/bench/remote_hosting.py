"""A hosting cluster for `bench fleet --remote-host`: every control plane in a second mothership.

The fleet's Clusters stay in the bench mothership and name one kubeconfig Secret
(spec.remoteHostCluster); the operator writes their workload objects into a second kwok
mothership through it. What that costs is printed beside the usual figures: the operator's
requests to the hosting cluster (its own audit log, the operator's identity only), writes per
object there, and the no-op resync's requests there (must be zero writes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Secret

from mothership.bench import audit
from mothership.testenv.local import LocalMothership

SECRET = "bench-hosting-kubeconfig"


@dataclass
class Hosting:
    """The second mothership and the Secret naming it; `spec` is what each Cluster gets."""

    ms: LocalMothership
    namespace: str

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "remoteHostCluster": {"kubeconfigRef": {"name": SECRET, "namespace": self.namespace}}
        }

    @property
    def audit_log(self) -> Path:
        return self.ms.cfg.state_dir / "audit.log"

    def requests(self, offset: int = 0) -> tuple[audit.Requests, int]:
        return audit.read(self.audit_log, offset)


@contextmanager
def hosting_mothership(
    kc: Client,
    namespace: str,
    state_dir: Path,
    configure: Callable[[Path, str], LocalMothership],
    operator_kubeconfig: Callable[[LocalMothership], Path],
    report: Callable[[str], None],
    keep: bool,
) -> Iterator[Hosting]:
    """Bring up the hosting mothership, put the operator's kubeconfig for it in a Secret of
    the bench mothership; down again afterwards (unless kept)."""
    ms = configure(state_dir, "bench-hosting")
    report(f"starting the hosting mothership in {state_dir}")
    ms.up(report, timeout=240)
    try:
        try:
            kc.create(Namespace(metadata=ObjectMeta(name=namespace)))
        except ApiError as exc:
            if exc.status.code != 409:
                raise
        kc.create(
            Secret(
                metadata=ObjectMeta(name=SECRET, namespace=namespace),
                stringData={"value": operator_kubeconfig(ms).read_text()},
            )
        )
        yield Hosting(ms, namespace)
    finally:
        if not keep:
            ms.down(report, purge=True)
