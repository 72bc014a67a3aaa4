"""Names and labels of everything created for a Cluster, as k0smotron names them.

Keeping k0smotron's names means a cluster migrated from k0smotron keeps its Secrets
(CA, kubeconfig) and Services, and tools that look them up by name keep working.
"""

from __future__ import annotations

MANAGED_BY = "mothership"
FIELD_MANAGER = "mothership"
HASH_ANNOTATION = "mothership.io/desired-hash"

CAPI_SECRET_TYPE = "cluster.x-k8s.io/secret"
CAPI_CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"


def statefulset(cluster: str) -> str:
    return f"kmc-{cluster}"


def service(cluster: str, service_type: str = "ClusterIP") -> str:
    suffix = {"NodePort": "-nodeport", "LoadBalancer": "-lb"}.get(service_type, "")
    return f"kmc-{cluster}{suffix}"


def config_map(cluster: str) -> str:
    return f"kmc-{cluster}-config"


def entrypoint_config_map(cluster: str) -> str:
    return f"kmc-entrypoint-{cluster}-config"


def endpoint_config_map(cluster: str) -> str:
    return f"kmc-{cluster}-endpoint"


def etcd(cluster: str) -> str:
    return f"kmc-{cluster}-etcd"


def ingress(cluster: str) -> str:
    return f"kmc-{cluster}"


def kubernetes_config_map(cluster: str) -> str:
    """Config files of the kubernetes distribution's components (egress selector, NATS)."""
    return f"kmc-{cluster}-kubernetes"


def kubernetes_certs_secret(cluster: str) -> str:
    """Leaf certificates and kubeconfigs of the kubernetes distribution's components."""
    return f"{cluster}-kubernetes-certs"


def kubeconfig_secret(cluster: str) -> str:
    return f"{cluster}-kubeconfig"


def pki_secret(cluster: str, purpose: str) -> str:
    """CAPI's naming: <cluster>-ca, -proxy, -sa, -etcd, and etcd leaf purposes."""
    return f"{cluster}-{purpose}"


def labels(cluster: str, component: str | None = None) -> dict[str, str]:
    out = {
        "app": "k0smotron",
        "cluster": cluster,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if component:
        out["component"] = component
        out["app.kubernetes.io/component"] = component
    return out


def selector(cluster: str, component: str = "control-plane") -> dict[str, str]:
    """The immutable selector of a workload: never includes labels that may change."""
    return {"app": "k0smotron", "cluster": cluster, "component": component}


def data_volume(cluster: str) -> str:
    """The k0s data directory volume (and default claim template) of the control plane."""
    return f"kmc-{cluster}"


def telemetry_config_map(cluster: str) -> str:
    return f"kmc-{cluster}-telemetry-config"


def monitoring_config_map(cluster: str) -> str:
    return f"kmc-prometheus-{cluster}-config"


def monitoring_nginx_volume(cluster: str) -> str:
    """Volume name for the nginx.conf item of the monitoring ConfigMap (no object by this name)."""
    return f"kmc-prometheus-{cluster}-config-nginx"


def ingress_manifests_config_map(cluster: str) -> str:
    return f"kmc-{cluster}-ingress"


def konnectivity_ingress_config_map(cluster: str) -> str:
    return f"kmc-{cluster}-ingress-konnectivity"


def etcd_defrag(cluster: str) -> str:
    return f"kmc-{cluster}-defrag"


def nats_service(cluster: str) -> str:
    return f"kmc-{cluster}-nats"


def nats_token_secret(cluster: str) -> str:
    return f"kmc-{cluster}-nats-token"
