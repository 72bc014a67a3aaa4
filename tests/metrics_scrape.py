"""What a management cluster's Prometheus sees of a control plane with monitoring enabled.

It scrapes the pod where the pod's `prometheus.io/*` annotations say; the monitoring proxy
answers with what the Prometheus sidecar scraped from the components, each series labelled
with its component and cluster. From the real node's network namespace, where pod IPs route.
"""

from __future__ import annotations

import subprocess

from lightkube import Client
from lightkube.resources.core_v1 import Pod

from mothership.testenv import kube, netns

# component label -> a series every such component exports
COMPONENT_SERIES = {
    "kube-apiserver": "apiserver_request_total{",
    "kube-scheduler": "scheduler_",
    "kube-controller-manager": "workqueue_adds_total{",
    "etcd": "etcd_server_has_leader{",
}


def scrape_url(kc: Client, pod: str, ns: str) -> str:
    """http://<pod IP>:<prometheus.io/port><prometheus.io/path>, as annotation-based
    discovery builds it."""
    obj = kc.get(Pod, pod, namespace=ns)
    annotations = (obj.metadata.annotations if obj.metadata else None) or {}
    assert annotations.get("prometheus.io/scrape") == "true", annotations
    ip = obj.status.podIP if obj.status else None
    return f"http://{ip}:{annotations['prometheus.io/port']}{annotations['prometheus.io/path']}"


def wait_for_components(
    node_netns: str, url: str, cluster: str, components: tuple[str, ...], timeout: float = 120
) -> None:
    """Until the proxy serves a series of each component labelled with the cluster."""
    label = f'k0smotron_cluster="{cluster}"'
    seen: dict[str, str] = {}

    def every_component() -> bool:
        got = subprocess.run(
            netns.argv(node_netns, ["curl", "-sf", "--max-time", "5", url]),
            capture_output=True,
            text=True,
            timeout=30,
        )
        seen["last"] = (got.stdout[-400:] + got.stderr[-400:]).strip()
        lines = [line for line in got.stdout.splitlines() if label in line]
        found = {
            c
            for c in components
            if any(f'component="{c}"' in ln and COMPONENT_SERIES[c] in ln for ln in lines)
        }
        seen["found"] = ", ".join(sorted(found)) or "none"
        return found == set(components)

    try:
        kube.wait_until(f"metrics of {', '.join(components)} at {url}", every_component, timeout)
    except TimeoutError as exc:
        found, last = seen.get("found"), seen.get("last")
        raise AssertionError(f"{exc}; found: {found}; last answer: {last}") from exc
