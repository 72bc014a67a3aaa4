"""NetworkPolicies that keep one tenant's control plane away from another's pods.

Many tenants' control planes share the mothership's pod network, and a namespace without
NetworkPolicies lets any pod dial any other: one tenant's control plane (or anything else
running in the mothership) could reach another tenant's etcd or embedded NATS peer port,
with only client certificates or a shared token in the way. Isolation is therefore on for
every Cluster, with no switch (and so no API field to convert between v1beta1 and
v1beta2): it costs nothing where the mothership's CNI enforces no policy.

One or two policies per Cluster, Ingress only, owned by the Cluster like every child:

- `kmc-<name>` on the control-plane pods: the ports clients must reach are open to every
  source (the API and konnectivity ports that the Service, NodePort, load balancer or
  ingress controller forward to, and the monitoring proxy that the mothership's Prometheus
  scrapes by pod annotation); the embedded NATS cluster port only to the same Cluster's
  control-plane pods. Everything else is closed: controller-manager, scheduler and the
  konnectivity admin and health ports serve the pod itself and its kubelet; the k0s join
  API (9443, named by a controller JoinTokenRequest as in k0smotron) is forwarded by no
  Service, so only a direct dial of the pod's address loses it.
- `kmc-<name>-etcd` on the managed etcd members (storage type etcd only): the client port
  from this Cluster's control-plane pods (API server, k0s, the monitoring sidecar's etcd
  scrape), from its etcd members (a joining member's init container runs `etcdctl member
  add` against the others) and from its defrag Job pods; the peer port from its members
  only. The operator never dials etcd (it reads the StatefulSet's status; backups go
  through `kubectl port-forward`, which enters the pod's own network namespace), so no
  rule for it is needed.

Peers are matched by `podSelector` without a `namespaceSelector`, that is in the Cluster's
own namespace only, on the immutable selector labels the workloads already carry. Labels
prove nothing about who made a pod: whoever may create pods in that namespace can wear
them, so the namespace stays the trust boundary between tenants that do not trust each
other; within it these policies keep control planes (which carry only their own labels)
apart.

Egress stays open: a control plane dials out to what no selector here can name (its
own etcd through the Service, SQL servers and other external datastores, DNS, an identity
provider, workers where konnectivity is not in the path), and a tenant's datastore is
guarded by its own ingress rules, which closing egress would not make any tighter.
Traffic from the pod's own node (the kubelet's probes of the health ports) is
allowed whatever the policy, as the NetworkPolicy API specifies.

Where the mothership runs something else that must reach a control plane's closed ports,
`spec.patches` can add a rule (target kind NetworkPolicy, component `control-plane` or
`etcd`), like any other rendered object.
"""

from __future__ import annotations

from typing import Any

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import configmaps, etcd, names
from mothership.render.facts import identity, object_meta

CONTROL_PLANE = "control-plane"
API_VERSION = "networking.k8s.io/v1"


def control_plane_policy_name(cluster: str) -> str:
    """The StatefulSet's name: one policy per workload, named after it."""
    return names.statefulset(cluster)


def etcd_policy_name(cluster: str) -> str:
    return names.etcd(cluster)


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _pods(cluster: str, component: str) -> dict[str, Any]:
    """A peer: pods of this Cluster's component, in the policy's (the Cluster's) namespace."""
    return {"podSelector": {"matchLabels": names.selector(cluster, component)}}


def public_ports(cluster: Cluster) -> list[int]:
    """What anyone may dial on a control-plane pod: what Services, ingress and scrapes reach."""
    spec = cluster.spec
    ports = [spec.service.api_port, spec.service.konnectivity_port]
    if spec.monitoring.enabled:
        ports.append(configmaps.METRICS_PROXY_PORT)
    return ports


def control_plane_policy(cluster: Cluster) -> dict[str, Any]:
    cluster_name, _ = identity(cluster)
    ingress: list[dict[str, Any]] = [{"ports": _tcp(*public_ports(cluster))}]
    if cluster.spec.storage.type == "nats":
        ingress.append(
            {
                "from": [_pods(cluster_name, CONTROL_PLANE)],
                "ports": _tcp(configmaps.NATS_CLUSTER_PORT),
            }
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": object_meta(cluster, control_plane_policy_name(cluster_name), CONTROL_PLANE),
        "spec": {
            "podSelector": {"matchLabels": names.selector(cluster_name, CONTROL_PLANE)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def etcd_policy(cluster: Cluster) -> dict[str, Any]:
    cluster_name, _ = identity(cluster)
    members = _pods(cluster_name, etcd.COMPONENT)
    return {
        "apiVersion": API_VERSION,
        "kind": "NetworkPolicy",
        "metadata": object_meta(cluster, etcd_policy_name(cluster_name), etcd.COMPONENT),
        "spec": {
            "podSelector": {"matchLabels": names.selector(cluster_name, etcd.COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        _pods(cluster_name, CONTROL_PLANE),
                        members,
                        _pods(cluster_name, etcd.DEFRAG_COMPONENT),
                    ],
                    "ports": _tcp(etcd.CLIENT_PORT),
                },
                {"from": [members], "ports": _tcp(etcd.PEER_PORT)},
            ],
        },
    }


def render_network_policies(cluster: Cluster) -> list[dict[str, Any]]:
    """The control plane's policy, and etcd's when the Cluster runs managed etcd."""
    out = [control_plane_policy(cluster)]
    if cluster.spec.storage.managed_etcd:
        out.append(etcd_policy(cluster))
    return out
