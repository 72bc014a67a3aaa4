"""Names and labels of everything created for a Cluster, as k0smotron names them.

Keeping k0smotron's names means a cluster migrated from k0smotron keeps its Secrets
(CA, kubeconfig) and Services, and tools that look them up by name keep working.
"""

from __future__ import annotations

from mothership.api.mothership.v1alpha1 import tenant_secret_name

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


def datastore_secret(cluster: str) -> str:
    """The tenant's own credentials on a shared DataStore, as its kine URL (operator-written)."""
    return tenant_secret_name(cluster)


def encryption_secret(cluster: str) -> str:
    """The tenant API server's EncryptionConfiguration, keys included (kubernetes distribution)."""
    return f"kmc-{cluster}-encryption"


# --- length limits ----------------------------------------------------------------------------

DNS_LABEL_MAX = 63
# A StatefulSet's pods carry controller-revision-hash=<name>-<hash of up to 10 characters>, a
# label value (<= 63), and a CronJob's Jobs are named <name>-<11 characters>: both stop at 52.
WORKLOAD_NAME_MAX = 52


def length_limited(cluster: str) -> list[tuple[str, int, str]]:
    """(generated name, its length limit, what it is) for every generated name Kubernetes
    limits to a label's length, whatever the spec turns on: a name is not shortened (that
    would break k0smotron's names), so admission refuses a Cluster name that does not fit.
    ConfigMap and Secret names may be 253 long and are not listed."""
    svc = "a Service name, a DNS-1035 label"
    volume = "a pod volume name, a DNS-1123 label"
    sts = "a StatefulSet name (its pods' controller-revision-hash label adds 11 characters)"
    return [
        (cluster, DNS_LABEL_MAX, "the value of the cluster label"),
        (statefulset(cluster), WORKLOAD_NAME_MAX, sts),
        (etcd(cluster), WORKLOAD_NAME_MAX, sts),
        (etcd_defrag(cluster), WORKLOAD_NAME_MAX, "a CronJob name (its Jobs add 11 characters)"),
        (service(cluster, "NodePort"), DNS_LABEL_MAX, svc),
        (service(cluster, "LoadBalancer"), DNS_LABEL_MAX, svc),
        (nats_service(cluster), DNS_LABEL_MAX, svc),
        (data_volume(cluster), DNS_LABEL_MAX, volume),
        (config_map(cluster), DNS_LABEL_MAX, volume),
        (entrypoint_config_map(cluster), DNS_LABEL_MAX, volume),
        (telemetry_config_map(cluster), DNS_LABEL_MAX, volume),
        (monitoring_config_map(cluster), DNS_LABEL_MAX, volume),
        (endpoint_config_map(cluster), DNS_LABEL_MAX, volume),
        (ingress_manifests_config_map(cluster), DNS_LABEL_MAX, volume),
        (monitoring_nginx_volume(cluster), DNS_LABEL_MAX, "the monitoring volume name, a label"),
    ]


def max_cluster_name_length() -> int:
    """The longest Cluster name every entry of :func:`length_limited` fits."""
    return min(limit - len(name) + 1 for name, limit, _ in length_limited("x"))
