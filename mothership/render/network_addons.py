"""The tenant's pod network and metrics, deployed into it as k0s does: pure.

`spec.k0sConfig.spec.network.provider` chooses the pod network, as in k0s:

| value | what runs |
|---|---|
| unset or `flannel` | flannel, VXLAN overlay over the nodes' own addresses (default) |
| `custom` | nothing: bring your own CNI |
| `kuberouter`, `calico` | refused by the webhook (see `UNSUPPORTED_PROVIDERS`) |

k0s's default, kube-router, is refused rather than replaced: the only kube-router release
the module proxy serves has reported security flaws, and flannel enforces no
NetworkPolicy, so silently running flannel in its place would drop a guarantee the
manifest asked for.

flannel runs as a DaemonSet on the host network (`--kube-subnet-mgr`: each node's subnet is
its `spec.podCIDR`, which the controller manager allocates). Its CNI plugin is not
deployed; a second container writes the equivalent configuration (the standard `bridge`
plugin with `host-local` addresses from the node's subnet, the MTU flannel chose) once
flanneld has written `/run/flannel/subnet.env`. The node needs the standard CNI plugins
(bridge, host-local, loopback, portmap), which the join installs.

metrics-server runs unless `spec.controlPlaneFlags` has `--disable-components` naming
`metrics-server` (k0s's switch). The API server reaches it through Konnectivity, like
everything on the nodes (`--enable-aggregator-routing`: by endpoint, not cluster IP).
"""

from __future__ import annotations

import json
from typing import Any

from mothership.api.k0smotron.v1beta2 import (
    FLANNEL_VERSION,
    METRICS_SERVER_VERSION,
    UPSTREAM_REGISTRY,
    Cluster,
)
from mothership.render import network
from mothership.render.facts import Facts, RenderError, external_address
from mothership.render.tenant_digest import CONFIG_HASH, config_digest
from mothership.render.tenant_meta import tenant_meta

SYSTEM = "kube-system"
FLANNEL_IMAGE = f"docker.io/flannel/flannel:{FLANNEL_VERSION}"
METRICS_SERVER_IMAGE = f"{UPSTREAM_REGISTRY}/metrics-server/metrics-server:{METRICS_SERVER_VERSION}"
DEFAULT_PROVIDER = "flannel"
PROVIDERS = ("flannel", "custom")
UNSUPPORTED_PROVIDERS = {
    "kuberouter": "no kube-router release without reported security flaws can be built here",
    "calico": "Calico is not built by this project",
}
VXLAN_PORT = 8472
CNI_CONF = "10-flannel.conflist"
METRICS_PORT = 10250


def provider(cluster: Cluster) -> str:
    """The network provider the spec asks for (validated by the webhook)."""
    raw = network.network_settings(cluster.spec).get("provider")
    return raw.strip() if isinstance(raw, str) and raw.strip() else DEFAULT_PROVIDER


def disabled_components(cluster: Cluster) -> set[str]:
    """Components named by `--disable-components` in spec.controlPlaneFlags (k0s's switch)."""
    out: set[str] = set()
    flags = list(cluster.spec.control_plane_flags or [])
    for i, flag in enumerate(flags):
        value = None
        if flag.startswith("--disable-components="):
            value = flag.split("=", 1)[1]
        elif flag == "--disable-components" and i + 1 < len(flags):
            value = flags[i + 1]
        if value:
            out.update(v.strip() for v in value.split(",") if v.strip())
    return out


# --- flannel ------------------------------------------------------------------------------------

# Writes the CNI configuration from what flanneld decided for this node, and again whenever
# that changes; runs beside flanneld for as long as it does.
_CNI_WRITER = r"""set -eu
trap 'exit 0' TERM INT
conf=/etc/cni/net.d/10-flannel.conflist
while :; do
  if [ -s /run/flannel/subnet.env ]; then
    . /run/flannel/subnet.env
    gw=${FLANNEL_SUBNET%/*}
    subnet="${gw%.*}.0/${FLANNEL_SUBNET#*/}"
    body='{"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"bridge","bridge":"cni0",'
    body=$body'"isGateway":true,"ipMasq":false,"hairpinMode":true,"mtu":'$FLANNEL_MTU','
    body=$body'"ipam":{"type":"host-local","ranges":[[{"subnet":"'$subnet'"}]],'
    body=$body'"routes":[{"dst":"0.0.0.0/0"}]}},'
    body=$body'{"type":"portmap","capabilities":{"portMappings":true}}]}'
    if [ "$(cat "$conf" 2>/dev/null)" != "$body" ]; then
      printf '%s' "$body" > "$conf.tmp" && mv "$conf.tmp" "$conf"
      echo "wrote $conf for subnet $subnet, mtu $FLANNEL_MTU"
    fi
  fi
  sleep 5
done
"""


def _host_path(name: str, path: str, kind: str) -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def flannel(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    labels = {"k8s-app": "flannel"}
    address = external_address(cluster.spec, facts)
    if not address:
        raise RenderError("flannel needs the external address, which is not known")
    net_conf = {
        "Network": network.pod_cidr(cluster.spec),
        "Backend": {"Type": "vxlan", "Port": VXLAN_PORT},
    }
    image = FLANNEL_IMAGE
    flanneld = {
        "name": "flanneld",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/opt/bin/flanneld"],
        "args": ["--ip-masq", "--kube-subnet-mgr", "--subnet-file=/run/flannel/subnet.env"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "EVENT_QUEUE_DEPTH", "value": "5000"},
            # The API server at its external address, not through the `kubernetes` Service:
            # that needs kube-proxy's rules on the node, which a new node may not have yet,
            # and a first dial that times out costs flanneld (and the node's Ready) 30 s.
            {"name": "KUBERNETES_SERVICE_HOST", "value": address},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(cluster.spec.service.api_port)},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
        "securityContext": {"privileged": True},
        "volumeMounts": [
            {"name": "run-flannel", "mountPath": "/run/flannel"},
            {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
        ],
    }
    writer = {
        "name": "install-cni",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", _CNI_WRITER],
        "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
        "volumeMounts": [
            {"name": "run-flannel", "mountPath": "/run/flannel", "readOnly": True},
            {"name": "cni-conf", "mountPath": "/etc/cni/net.d"},
        ],
    }
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": tenant_meta("kube-flannel", SYSTEM, **labels),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {CONFIG_HASH: config_digest(net_conf)},
                },
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "hostNetwork": True,
                    "serviceAccountName": "flannel",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [flanneld, writer],
                    "volumes": [
                        _host_path("run-flannel", "/run/flannel", "DirectoryOrCreate"),
                        _host_path("cni-conf", "/etc/cni/net.d", "DirectoryOrCreate"),
                        _host_path("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
                        {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
                    ],
                },
            },
        },
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": tenant_meta("mothership:flannel"),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": tenant_meta("mothership:flannel"),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "mothership:flannel",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "flannel", "namespace": SYSTEM}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": tenant_meta("flannel", SYSTEM)},
        role,
        binding,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": tenant_meta("kube-flannel-cfg", SYSTEM, **labels),
            "data": {"net-conf.json": json.dumps(net_conf, indent=2) + "\n"},
        },
        daemonset,
    ]


# --- metrics-server -------------------------------------------------------------------------------


def metrics_server(cluster: Cluster) -> list[dict[str, Any]]:
    labels = {"k8s-app": "metrics-server"}
    name = "metrics-server"
    rbac = "rbac.authorization.k8s.io"
    container = {
        "name": name,
        "image": METRICS_SERVER_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/metrics-server"],
        "args": [
            "--cert-dir=/tmp",
            f"--secure-port={METRICS_PORT}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
            # Kubelets joined by the mothership serve with self-signed certificates.
            "--kubelet-insecure-tls",
        ],
        "ports": [{"name": "https", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": "https", "scheme": "HTTPS"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp-dir", "mountPath": "/tmp"}],
    }
    sa = {"kind": "ServiceAccount", "name": name, "namespace": SYSTEM}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": tenant_meta(name, SYSTEM, **labels),
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": tenant_meta(
                "system:aggregated-metrics-reader",
                **{
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                    "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                    "rbac.authorization.k8s.io/aggregate-to-view": "true",
                },
            ),
            "rules": [
                {
                    "apiGroups": ["metrics.k8s.io"],
                    "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": tenant_meta("system:metrics-server"),
            "rules": [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {
                    "apiGroups": [""],
                    "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": tenant_meta("metrics-server-auth-reader", SYSTEM),
            "roleRef": {
                "apiGroup": rbac,
                "kind": "Role",
                "name": "extension-apiserver-authentication-reader",
            },
            "subjects": [sa],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": tenant_meta("metrics-server:system:auth-delegator"),
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [sa],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": tenant_meta("system:metrics-server"),
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "system:metrics-server"},
            "subjects": [sa],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": tenant_meta(name, SYSTEM, **labels),
            "spec": {
                "selector": labels,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": tenant_meta(name, SYSTEM, **labels),
            "spec": {
                "selector": {"matchLabels": labels},
                "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "priorityClassName": "system-cluster-critical",
                        "serviceAccountName": name,
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [container],
                        "volumes": [{"name": "tmp-dir", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": tenant_meta("v1beta1.metrics.k8s.io", **labels),
            "spec": {
                "service": {"name": name, "namespace": SYSTEM},
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


def render_network_addons(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """The pod network (per provider) and metrics-server (unless disabled), in apply order."""
    objects: list[dict[str, Any]] = []
    if provider(cluster) == "flannel":
        objects += flannel(cluster, facts)
    if "metrics-server" not in disabled_components(cluster):
        objects += metrics_server(cluster)
    return objects
