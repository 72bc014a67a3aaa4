"""What a fresh kubernetes-distribution tenant needs inside it before nodes can join.

k0s sets these up itself; upstream components do not, so the operator applies them into
the tenant, much as kubeadm's bootstrap phases would:

- bootstrap tokens may ask for kubelet client certificates, and those requests (and the
  kubelets' own renewals) are approved automatically;
- `cluster-info` in kube-public: the CA and the address a joining node trusts, readable
  anonymously (the controller manager's bootstrap signer adds token signatures to it);
- the API server may call kubelets, and konnectivity-server may check agent tokens;
- kube-proxy, CoreDNS and the konnectivity agent, pointed at the external address.

Pure: everything comes from the spec, the facts and the CA certificate. The whole set is
summarised by one digest kept as an annotation on `cluster-info`, which is applied last:
when the annotation carries the current digest, everything before it is in place. A
tenant whose data store was lost has no `cluster-info`, which is how the operator notices.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import yaml

from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_COREDNS_IMAGE,
    DEFAULT_KONNECTIVITY_AGENT_IMAGE,
    UPSTREAM_REGISTRY,
    Cluster,
)
from mothership.render import kubernetes_certs, network, network_addons
from mothership.render import kubernetes_control_plane as kcp
from mothership.render.facts import Facts, RenderError, external_address, kubernetes_version
from mothership.render.tenant_digest import CONFIG_HASH, config_digest
from mothership.render.tenant_meta import tenant_meta

DIGEST_ANNOTATION = "mothership.io/tenant-bootstrap-digest"
SYSTEM = "kube-system"
PUBLIC = "kube-public"
BOOTSTRAPPERS = "system:bootstrappers"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
AGENT_TOKEN_DIR = "/var/run/secrets/tokens"
AGENT_TOKEN = "konnectivity-agent-token"
AGENT_ADMIN_PORT = 8133
AGENT_HEALTH_PORT = 8134
KUBE_PROXY_DIR = "/var/lib/kube-proxy"


def _crb(name: str, role: str, subject: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": tenant_meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }


def _group(name: str) -> dict[str, Any]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


def _user(name: str) -> dict[str, Any]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}


def _service_account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": tenant_meta(name, SYSTEM)}


def _sa_subject(name: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": name, "namespace": SYSTEM}


def server_url(cluster: Cluster, facts: Facts) -> str:
    address = external_address(cluster.spec, facts)
    if not address:
        raise RenderError("the tenant bootstrap needs the external address, which is not known")
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{cluster.spec.service.api_port}"


def _image(cluster: Cluster, field: str, default: str) -> str:
    images = cluster.spec.kubernetes.images if cluster.spec.kubernetes else None
    value = getattr(images, field, None) if images is not None else None
    return value or default


# --- joining ----------------------------------------------------------------------------------


def bootstrap_rbac() -> list[dict[str, Any]]:
    """Bootstrap tokens create CSRs that are approved; kubelets renew their own."""
    return [
        _crb("mothership:kubelet-bootstrap", "system:node-bootstrapper", _group(BOOTSTRAPPERS)),
        _crb(
            "mothership:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            _group(BOOTSTRAPPERS),
        ),
        _crb(
            "mothership:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            _group("system:nodes"),
        ),
        # The API server's client certificate for kubelets (logs, exec, port-forward).
        _crb(
            "mothership:apiserver-kubelet-client",
            "system:kubelet-api-admin",
            _user(kubernetes_certs.KUBELET_CLIENT_USER),
        ),
        # konnectivity-server reviews agent tokens through the API.
        _crb(
            "mothership:konnectivity-server",
            "system:auth-delegator",
            _user(kubernetes_certs.KONNECTIVITY_USER),
        ),
    ]


def cluster_info_kubeconfig(cluster: Cluster, facts: Facts, ca_pem: bytes) -> str:
    """The kubeconfig joining nodes fetch: the CA and the server, no credentials."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "",
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "server": server_url(cluster, facts),
                },
            }
        ],
        "contexts": [],
        "current-context": "",
        "preferences": {},
        "users": [],
    }
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def cluster_info(cluster: Cluster, facts: Facts, ca_pem: bytes) -> list[dict[str, Any]]:
    """Role and binding first, the ConfigMap last (it carries the digest)."""
    role_name = "mothership:bootstrap-signer-clusterinfo"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": tenant_meta(role_name, PUBLIC),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": ["cluster-info"],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": tenant_meta(role_name, PUBLIC),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
            "subjects": [_user("system:anonymous")],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": tenant_meta("cluster-info", PUBLIC),
            "data": {"kubeconfig": cluster_info_kubeconfig(cluster, facts, ca_pem)},
        },
    ]


# --- kube-proxy ---------------------------------------------------------------------------------


def kube_proxy(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    spec = cluster.spec
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "bindAddress": "0.0.0.0",
        "clientConnection": {"kubeconfig": f"{KUBE_PROXY_DIR}/kubeconfig.conf"},
        "clusterCIDR": network.pod_cidr(spec),
        "mode": "iptables",
        # The conntrack table size is host-wide and read-only outside the host's own network
        # namespace (containers, sandboxes): leave it to the node, like its other sysctls.
        "conntrack": {"maxPerCore": 0, "min": 0},
    }
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {
                    "certificate-authority": f"{SA_DIR}/ca.crt",
                    "server": server_url(cluster, facts),
                },
            }
        ],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"tokenFile": f"{SA_DIR}/token"}}],
    }
    labels = {"k8s-app": "kube-proxy"}
    config_hash = config_digest(config, kubeconfig)
    image = _image(
        cluster, "kube_proxy", f"{UPSTREAM_REGISTRY}/kube-proxy:{kubernetes_version(spec, facts)}"
    )
    container = {
        "name": "kube-proxy",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "/usr/local/bin/kube-proxy",
            f"--config={KUBE_PROXY_DIR}/config.conf",
            "--hostname-override=$(NODE_NAME)",
        ],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "securityContext": {"privileged": True},
        "volumeMounts": [
            {"name": "kube-proxy", "mountPath": KUBE_PROXY_DIR},
            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
            {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
        ],
    }
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": tenant_meta("kube-proxy", SYSTEM, **labels),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels, "annotations": {CONFIG_HASH: config_hash}},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "hostNetwork": True,
                    "serviceAccountName": "kube-proxy",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [container],
                    "volumes": [
                        {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                        {
                            "name": "xtables-lock",
                            "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"},
                        },
                        {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                    ],
                },
            },
        },
    }
    return [
        _service_account("kube-proxy"),
        _crb("mothership:node-proxier", "system:node-proxier", _sa_subject("kube-proxy")),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": tenant_meta("kube-proxy", SYSTEM, **labels),
            "data": {
                "config.conf": yaml.safe_dump(config, sort_keys=False),
                "kubeconfig.conf": yaml.safe_dump(kubeconfig, sort_keys=False),
            },
        },
        daemonset,
    ]


# --- CoreDNS ------------------------------------------------------------------------------------


def corefile(domain: str) -> str:
    """Cluster names answered from the API, everything else forwarded to the node's resolver."""
    return f""".:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
        max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""


def coredns(cluster: Cluster) -> list[dict[str, Any]]:
    spec = cluster.spec
    labels = {"k8s-app": "kube-dns"}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": tenant_meta("system:coredns"),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["endpoints", "services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    }
    container = {
        "name": "coredns",
        "image": _image(cluster, "core_dns", DEFAULT_COREDNS_IMAGE),
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "70Mi"},
            "limits": {"memory": "170Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
            "initialDelaySeconds": 60,
            "timeoutSeconds": 5,
            "failureThreshold": 5,
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": tenant_meta("coredns", SYSTEM, **labels),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "dnsPolicy": "Default",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": labels},
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "config-volume",
                            "configMap": {
                                "name": "coredns",
                                "items": [{"key": "Corefile", "path": "Corefile"}],
                            },
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": tenant_meta("kube-dns", SYSTEM, **labels, **{"kubernetes.io/name": "CoreDNS"}),
        "spec": {
            "clusterIP": network.service_ip(spec, network.DNS_SERVICE_INDEX),
            "selector": labels,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
        },
    }
    return [
        _service_account("coredns"),
        role,
        _crb("system:coredns", "system:coredns", _sa_subject("coredns")),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": tenant_meta("coredns", SYSTEM),
            "data": {"Corefile": corefile(network.cluster_domain(spec))},
        },
        deployment,
        service,
    ]


# --- konnectivity agent -------------------------------------------------------------------------


def konnectivity_agent(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """One agent per node, on the host network so it works before any CNI does; it dials
    the external address and proves itself with a token only konnectivity-server accepts."""
    address = external_address(cluster.spec, facts)
    if not address:
        raise RenderError("the konnectivity agent needs the external address, which is not known")
    labels = {"k8s-app": "konnectivity-agent"}
    container = {
        "name": "konnectivity-agent",
        "image": _image(cluster, "konnectivity_agent", DEFAULT_KONNECTIVITY_AGENT_IMAGE),
        "imagePullPolicy": "IfNotPresent",
        "command": ["/proxy-agent"],
        "args": [
            "--logtostderr=true",
            f"--ca-cert={SA_DIR}/ca.crt",
            f"--proxy-server-host={address}",
            f"--proxy-server-port={cluster.spec.service.konnectivity_port}",
            f"--admin-server-port={AGENT_ADMIN_PORT}",
            f"--health-server-port={AGENT_HEALTH_PORT}",
            f"--service-account-token-path={AGENT_TOKEN_DIR}/{AGENT_TOKEN}",
            # Lets the server's destHost strategy send traffic for a node to its own agent.
            "--agent-identifiers=ipv4=$(HOST_IP)",
            # Keep looking for servers, so a scaled-up control plane gets an agent per replica.
            "--sync-forever=true",
        ],
        "env": [{"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": AGENT_HEALTH_PORT, "host": "127.0.0.1"},
            "initialDelaySeconds": 15,
            "timeoutSeconds": 15,
        },
        "volumeMounts": [{"name": AGENT_TOKEN, "mountPath": AGENT_TOKEN_DIR, "readOnly": True}],
    }
    daemonset = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": tenant_meta(kcp.KONNECTIVITY_AGENT_ACCOUNT, SYSTEM, **labels),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "hostNetwork": True,
                    "serviceAccountName": kcp.KONNECTIVITY_AGENT_ACCOUNT,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [container],
                    "volumes": [
                        {
                            "name": AGENT_TOKEN,
                            "projected": {
                                "sources": [
                                    {
                                        "serviceAccountToken": {
                                            "path": AGENT_TOKEN,
                                            "audience": kcp.KONNECTIVITY_AUDIENCE,
                                        }
                                    }
                                ]
                            },
                        }
                    ],
                },
            },
        },
    }
    return [_service_account(kcp.KONNECTIVITY_AGENT_ACCOUNT), daemonset]


# --- the whole set ------------------------------------------------------------------------------


def digest(objects: list[dict[str, Any]]) -> str:
    text = json.dumps(objects, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_tenant_addons(cluster: Cluster, facts: Facts, ca_pem: bytes) -> list[dict[str, Any]]:
    """Every object, in apply order; `cluster-info` last, annotated with the set's digest."""
    objects = [
        *bootstrap_rbac(),
        *kube_proxy(cluster, facts),
        *coredns(cluster),
        *konnectivity_agent(cluster, facts),
        *network_addons.render_network_addons(cluster, facts),
        *cluster_info(cluster, facts, ca_pem),
    ]
    plain: list[dict[str, Any]] = json.loads(json.dumps(objects))
    marker = plain[-1]
    marker["metadata"]["annotations"] = {DIGEST_ANNOTATION: digest(plain)}
    return plain


def applied_digest(cluster_info_annotations: dict[str, str] | None) -> str | None:
    """The digest the tenant's `cluster-info` says was applied, if any."""
    return (cluster_info_annotations or {}).get(DIGEST_ANNOTATION)
