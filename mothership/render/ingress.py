"""Ingress mode: the API server and konnectivity behind one TLS-passthrough Ingress.

Workers then reach the control plane only by host name through the ingress controller.
Pods inside the hosted cluster still expect `kubernetes.default` to work, so a manifest
bundle deployed into the hosted cluster runs haproxy on every node and points the
`kubernetes` Service at it; haproxy forwards to the ingress with the API host as SNI.
k0s older than 1.35.1 also needs its konnectivity agent re-pointed at the ingress host,
which a second bundle does.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import names
from mothership.render.configmaps import native_ingress_konnectivity
from mothership.render.facts import Facts, RenderError, identity, object_meta

COMPONENT = "ingress"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
HAPROXY_IMAGE = "haproxy:2.8"
HAPROXY_PORT = 7443
HAPROXY_CERT_DIR = "/etc/haproxy/certs"
KONNECTIVITY_AGENT_IMAGE = "quay.io/k0sproject/apiserver-network-proxy-agent"
KONNECTIVITY_AGENT_VERSION = "v0.33.0"
KONNECTIVITY_VOLUME = "konnectivity"


def _k0s_spec(cluster: Cluster) -> dict[str, Any]:
    spec = (cluster.spec.k0s_config or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def kubernetes_service_ip(cluster: Cluster) -> str:
    """The first address of the hosted cluster's service range: where `kubernetes` lives."""
    network = _k0s_spec(cluster).get("network")
    cidr = (network or {}).get("serviceCIDR") if isinstance(network, dict) else None
    first = str(cidr or DEFAULT_SERVICE_CIDR).split(",")[0].strip()
    try:
        return str(ipaddress.ip_network(first, strict=False).network_address + 1)
    except ValueError as exc:
        raise RenderError(f"spec.k0sConfig.spec.network.serviceCIDR: {exc}") from None


def _registry_host(image: str) -> str | None:
    """The registry part of an image reference, the way k0s tells it from a path."""
    first, slash, _ = image.partition("/")
    if not slash:
        return None
    return first if ("." in first or ":" in first or first == "localhost") else None


def _with_repository(repository: str, image: str) -> str:
    """k0s' spec.images.repository rule: swap the registry, or prefix when there is none."""
    if not repository or image.startswith(repository):
        return image
    host = _registry_host(image)
    return image.replace(host, repository, 1) if host else f"{repository}/{image}"


def konnectivity_agent_image(cluster: Cluster) -> str:
    """The agent image k0s itself would use, honouring the user's image overrides."""
    images = _k0s_spec(cluster).get("images")
    images = images if isinstance(images, dict) else {}
    konnectivity = images.get("konnectivity")
    konnectivity = konnectivity if isinstance(konnectivity, dict) else {}
    image = konnectivity.get("image") or KONNECTIVITY_AGENT_IMAGE
    # A custom image without a version is taken as complete (it may carry its own tag).
    default_version = "" if konnectivity.get("image") else KONNECTIVITY_AGENT_VERSION
    version = konnectivity.get("version") or default_version
    image = _with_repository(str(images.get("repository") or ""), str(image))
    return f"{image}:{version}" if version else image


def _pull_policy(cluster: Cluster) -> str:
    images = _k0s_spec(cluster).get("images")
    policy = images.get("default_pull_policy") if isinstance(images, dict) else None
    return str(policy or "IfNotPresent")


def _yaml(obj: dict[str, Any]) -> str:
    # Through JSON first: shared sub-objects would otherwise come out as YAML anchors.
    return yaml.safe_dump(json.loads(json.dumps(obj)), sort_keys=True)


def _docs(*objects: dict[str, Any]) -> str:
    return "---\n".join(_yaml(obj) for obj in objects)


def _haproxy_cfg(api_host: str, port: int) -> str:
    # TLS is terminated with a certificate for the in-cluster `kubernetes` names and
    # re-originated towards the ingress, verified against the cluster CA.
    return (
        "frontend apiserver\n"
        f"    bind [::]:{HAPROXY_PORT} v4v6 ssl crt {HAPROXY_CERT_DIR}/server.pem\n"
        "    mode tcp\n"
        "    default_backend ingress\n"
        "\n"
        "backend ingress\n"
        "    mode tcp\n"
        f"    server apiserver {api_host}:{port} ssl verify required "
        f"ca-file {HAPROXY_CERT_DIR}/ca.crt sni str({api_host})\n"
    )


def ingress_manifests_config_map(cluster: Cluster) -> dict[str, Any]:
    """The haproxy bundle; file names are numbered because k0s applies them in name order."""
    ingress = cluster.spec.ingress
    assert ingress is not None
    cluster_name, _ = identity(cluster)
    selector = {"app": "k0smotron-haproxy"}
    # k0s needs some endpoint for `kubernetes` to build worker profiles before haproxy runs;
    # haproxy's own Service below replaces this placeholder once the DaemonSet is up.
    placeholder_endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [
            {
                "addresses": [{"ip": "1.2.3.4"}],
                "ports": [{"name": "https", "port": HAPROXY_PORT, "protocol": "TCP"}],
            }
        ],
    }
    haproxy_config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "k0smotron-haproxy-config", "namespace": "default"},
        "data": {"haproxy.cfg": _haproxy_cfg(ingress.api_host, ingress.port)},
    }
    not_yet_ready = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.cloudprovider.kubernetes.io/uninitialized",
    ]
    haproxy = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "k0smotron-haproxy", "namespace": "default", "labels": selector},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "hostNetwork": True,
                    # Must run before the node is ready: nothing else reaches the API yet.
                    "tolerations": [
                        {"key": key, "operator": "Exists", "effect": "NoSchedule"}
                        for key in not_yet_ready
                    ],
                    "containers": [
                        {
                            "name": "haproxy",
                            "image": HAPROXY_IMAGE,
                            "args": ["-f", "/usr/local/etc/haproxy/haproxy.cfg"],
                            "ports": [{"name": "https", "containerPort": HAPROXY_PORT}],
                            "volumeMounts": [
                                {
                                    "name": "haproxy-config",
                                    "mountPath": "/usr/local/etc/haproxy/haproxy.cfg",
                                    "subPath": "haproxy.cfg",
                                },
                                {
                                    "name": "haproxy-certs",
                                    "mountPath": HAPROXY_CERT_DIR,
                                    "readOnly": True,
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "haproxy-config",
                            "configMap": {"name": "k0smotron-haproxy-config"},
                        },
                        {
                            # Put on each worker by its bootstrap, or by hand (ingress docs).
                            "name": "haproxy-certs",
                            "hostPath": {"path": HAPROXY_CERT_DIR, "type": "DirectoryOrCreate"},
                        },
                    ],
                },
            },
        },
    }
    service_ip = kubernetes_service_ip(cluster)
    family = "IPv6" if ":" in service_ip else "IPv4"
    kubernetes_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": service_ip,
            "clusterIPs": [service_ip],
            "ipFamilies": [family],
            "ipFamilyPolicy": "SingleStack",
            # Each node's own haproxy: no hop to another node for API traffic.
            "internalTrafficPolicy": "Local",
            "sessionAffinity": "None",
            "selector": selector,
            "ports": [
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": HAPROXY_PORT}
            ],
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(
            cluster, names.ingress_manifests_config_map(cluster_name), COMPONENT
        ),
        "data": {
            "0_temp-kubernetes-ep.yaml": _yaml(placeholder_endpoints),
            "1_haproxy-configmap.yaml": _yaml(haproxy_config),
            "2_haproxy-ds.yaml": _yaml(haproxy),
            "3_kube-service.yaml": _yaml(kubernetes_service),
        },
    }


def konnectivity_config_map(cluster: Cluster) -> dict[str, Any]:
    """Konnectivity agents dialling the ingress host, for k0s that cannot do it itself."""
    ingress = cluster.spec.ingress
    assert ingress is not None
    cluster_name, _ = identity(cluster)
    agent_labels = {"k8s-app": "konnectivity-agent"}
    token_dir = "/var/run/secrets/tokens"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": "system:konnectivity-server",
            "labels": {"kubernetes.io/cluster-service": "true"},
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:auth-delegator",
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": "system:konnectivity-server",
            }
        ],
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "konnectivity-agent",
            "namespace": "kube-system",
            "labels": {"kubernetes.io/cluster-service": "true"},
        },
    }

    def probe(path: str) -> dict[str, Any]:
        return {
            "httpGet": {"port": 8093, "path": path},
            "initialDelaySeconds": 15,
            "timeoutSeconds": 15,
        }

    agent = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "konnectivity-agent",
            "namespace": "kube-system",
            "labels": agent_labels,
        },
        "spec": {
            "selector": {"matchLabels": agent_labels},
            "template": {
                "metadata": {
                    "labels": agent_labels,
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8093"},
                },
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "supplementalGroups": [0]},
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "priorityClassName": "system-cluster-critical",
                    "tolerations": [{"operator": "Exists"}],
                    "serviceAccountName": "konnectivity-agent",
                    "containers": [
                        {
                            "name": "konnectivity-agent",
                            "image": konnectivity_agent_image(cluster),
                            "imagePullPolicy": _pull_policy(cluster),
                            "command": ["/proxy-agent"],
                            "env": [
                                {
                                    "name": "NODE_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}},
                                }
                            ],
                            "args": [
                                "--logtostderr=true",
                                "--ca-cert=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                                f"--proxy-server-host={ingress.konnectivity_host}",
                                f"--proxy-server-port={ingress.port}",
                                f"--service-account-token-path={token_dir}/konnectivity-agent-token",
                                "--agent-identifiers=host=$(NODE_IP)",
                                "--agent-id=$(NODE_IP)",
                            ],
                            "volumeMounts": [
                                {"name": "konnectivity-agent-token", "mountPath": token_dir}
                            ],
                            "livenessProbe": probe("/healthz"),
                            "readinessProbe": probe("/readyz"),
                        }
                    ],
                    "volumes": [
                        {
                            "name": "konnectivity-agent-token",
                            "projected": {
                                "sources": [
                                    {
                                        "serviceAccountToken": {
                                            "path": "konnectivity-agent-token",
                                            "audience": "system:konnectivity-server",
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
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(
            cluster, names.konnectivity_ingress_config_map(cluster_name), COMPONENT
        ),
        "data": {"konnectivity-agent.yaml": _docs(binding, account, agent)},
    }


def ingress(cluster: Cluster) -> dict[str, Any]:
    spec = cluster.spec
    assert spec.ingress is not None
    cluster_name, _ = identity(cluster)
    backend_service = names.service(cluster_name, spec.service.type)

    def rule(host: str, port: int) -> dict[str, Any]:
        backend = {"service": {"name": backend_service, "port": {"number": port}}}
        return {
            "host": host,
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
        }

    body: dict[str, Any] = {
        "rules": [
            rule(spec.ingress.api_host, spec.service.api_port),
            rule(spec.ingress.konnectivity_host, spec.service.konnectivity_port),
        ]
    }
    if spec.ingress.class_name:
        body["ingressClassName"] = spec.ingress.class_name
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_meta(
            cluster, names.ingress(cluster_name), COMPONENT, annotations=spec.ingress.annotations
        ),
        "spec": body,
    }


def manifest_volumes(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """Volumes the StatefulSet mounts under /var/lib/k0s/manifests for ingress mode."""
    if cluster.spec.ingress is None:
        return []
    cluster_name, _ = identity(cluster)
    bundle = names.ingress_manifests_config_map(cluster_name)
    volumes = [{"name": bundle, "configMap": {"name": bundle}}]
    if not native_ingress_konnectivity(cluster.spec, facts):
        konnectivity = names.konnectivity_ingress_config_map(cluster_name)
        volumes.append({"name": KONNECTIVITY_VOLUME, "configMap": {"name": konnectivity}})
    return volumes


def render_ingress(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    if cluster.spec.ingress is None:
        return []
    out = [ingress_manifests_config_map(cluster)]
    if not native_ingress_konnectivity(cluster.spec, facts):
        out.append(konnectivity_config_map(cluster))
    if cluster.spec.ingress.deploy:
        out.append(ingress(cluster))
    return out
