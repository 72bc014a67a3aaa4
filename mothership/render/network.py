"""The tenant's own network ranges, read where k0s reads them.

The kubernetes distribution takes them from ``spec.k0sConfig.spec.network`` too, so one
manifest means the same cluster whichever distribution runs it, and the defaults are
k0s's. The Service range decides addresses that are baked into certificates and
manifests (the ``kubernetes`` Service's IP, the DNS Service's IP), so it is read in one
place only.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from mothership.api.k0smotron.v1beta2 import ClusterSpec
from mothership.render.facts import RenderError

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
# kubeadm's convention, which CoreDNS manifests and kubelet configs everywhere assume.
DNS_SERVICE_INDEX = 10


def _network(spec: ClusterSpec) -> dict[str, Any]:
    config = spec.k0s_config or {}
    inner = config.get("spec") if isinstance(config, dict) else None
    network = inner.get("network") if isinstance(inner, dict) else None
    return network if isinstance(network, dict) else {}


def network_settings(spec: ClusterSpec) -> dict[str, Any]:
    """spec.k0sConfig.spec.network as a mapping (empty when absent or not a mapping)."""
    return _network(spec)


def _text(spec: ClusterSpec, key: str, default: str) -> str:
    value = _network(spec).get(key)
    return value.strip() if isinstance(value, str) and value.strip() else default


def service_cidr(spec: ClusterSpec) -> str:
    """The Service range (spec.k0sConfig.spec.network.serviceCIDR), checked."""
    value = _text(spec, "serviceCIDR", DEFAULT_SERVICE_CIDR)
    _parse(value, "serviceCIDR")
    return value


def pod_cidr(spec: ClusterSpec) -> str:
    """The pod range (spec.k0sConfig.spec.network.podCIDR), checked."""
    value = _text(spec, "podCIDR", DEFAULT_POD_CIDR)
    _parse(value, "podCIDR")
    return value


def cluster_domain(spec: ClusterSpec) -> str:
    return _text(spec, "clusterDomain", DEFAULT_CLUSTER_DOMAIN)


def service_ip(spec: ClusterSpec, index: int) -> str:
    """The index-th address of the Service range: 1 is `kubernetes`, 10 the DNS Service."""
    network = _parse(service_cidr(spec), "serviceCIDR")
    if index >= network.num_addresses - 1:
        raise RenderError(
            f"spec.k0sConfig.spec.network.serviceCIDR {network} is too small; use at least a /24"
        )
    return str(network.network_address + index)


def _parse(value: str, key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value.split(",")[0].strip(), strict=True)
    except ValueError as exc:
        example = DEFAULT_SERVICE_CIDR if key == "serviceCIDR" else DEFAULT_POD_CIDR
        raise RenderError(
            f"spec.k0sConfig.spec.network.{key} {value!r} is not a network in CIDR notation "
            f"({exc}); write it like {example}"
        ) from None
