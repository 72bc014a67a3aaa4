"""The Services in front of the control plane pods.

The Service name carries its type (`kmc-N`, `kmc-N-nodeport`, `kmc-N-lb`) as in k0smotron,
so kubeconfigs and tooling written against k0smotron find the same object.
"""

from __future__ import annotations

import json
from typing import Any

from mothership.api.k0smotron import v1beta2
from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import names
from mothership.render.configmaps import NATS_CLUSTER_PORT
from mothership.render.facts import identity, object_meta

CONTROL_PLANE = "control-plane"


def _legacy(cluster: Cluster, key: str) -> Any:
    """A Service field a k0smotron v1beta1→v1beta2 conversion parked in an annotation.

    Clusters exported from k0smotron carry them there (JSON-encoded); a malformed value is
    ignored as k0smotron ignores it.
    """
    raw = (cluster.metadata.get("annotations") or {}).get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _string_map(value: Any) -> dict[str, str] | None:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return None


def control_plane_service(cluster: Cluster) -> dict[str, Any]:
    cluster_name, _ = identity(cluster)
    service = cluster.spec.service
    annotations = service.annotations
    if annotations is None:
        annotations = _string_map(_legacy(cluster, v1beta2.LEGACY_SERVICE_ANNOTATIONS_ANNOTATION))
    labels = service.labels
    if labels is None:
        labels = _string_map(_legacy(cluster, v1beta2.LEGACY_SERVICE_LABELS_ANNOTATION))

    ports: list[dict[str, Any]] = []
    for port_name, port in (("api", service.api_port), ("konnectivity", service.konnectivity_port)):
        entry: dict[str, Any] = {
            "name": port_name,
            "port": port,
            "protocol": "TCP",
            "targetPort": port,
        }
        if service.type == "NodePort":
            # The node port equals the service port so workers can use the same number
            # whichever way they come in; the defaults sit inside the node port range.
            entry["nodePort"] = port
        ports.append(entry)

    spec: dict[str, Any] = {
        "type": service.type,
        "selector": names.selector(cluster_name, CONTROL_PLANE),
        "ports": ports,
    }
    if service.type in ("NodePort", "LoadBalancer"):
        policy = service.external_traffic_policy or _legacy(
            cluster, v1beta2.LEGACY_SERVICE_TRAFFIC_POLICY_ANNOTATION
        )
        if isinstance(policy, str) and policy:
            spec["externalTrafficPolicy"] = policy
    if service.type == "LoadBalancer":
        lb_class = service.load_balancer_class or _legacy(
            cluster, v1beta2.LEGACY_SERVICE_LB_CLASS_ANNOTATION
        )
        if isinstance(lb_class, str) and lb_class:
            spec["loadBalancerClass"] = lb_class

    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            cluster,
            names.service(cluster_name, service.type),
            CONTROL_PLANE,
            annotations=annotations,
            extra_labels=labels,
        ),
        "spec": spec,
    }


def nats_service(cluster: Cluster) -> dict[str, Any]:
    """Headless Service giving each control plane pod the DNS name its NATS peers dial.

    Not-ready pods are published: the members must find each other before any of them can
    become ready.
    """
    cluster_name, _ = identity(cluster)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(cluster, names.nats_service(cluster_name), "nats"),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": names.selector(cluster_name, CONTROL_PLANE),
            "ports": [
                {
                    "name": "cluster",
                    "port": NATS_CLUSTER_PORT,
                    "protocol": "TCP",
                    "targetPort": NATS_CLUSTER_PORT,
                }
            ],
        },
    }


def render_services(cluster: Cluster) -> list[dict[str, Any]]:
    """Control plane Service, plus the NATS headless Service for embedded NATS storage.

    The etcd headless Service belongs to etcd.py with the rest of etcd.
    """
    out = [control_plane_service(cluster)]
    if cluster.spec.storage.type == "nats":
        out.append(nats_service(cluster))
    return out
