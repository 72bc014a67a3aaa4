"""A k0s Cluster workers can join on this host, as at an air-gapped site.

The local registry mirror holds the upstream images this project builds (registry.k8s.io
names, true versions), not quay.io/k0sproject's, and no kube-router without reported
flaws can be built. So the Cluster's k0s config does what an air-gapped k0s site does:
it names its system images (`spec.images`) and brings its own pod network (`provider:
custom`), which the user then applies: flannel, as mothership renders it for the
kubernetes distribution. Used by the k0s worker test and `mothership bench join
--distribution k0s`.
"""

from __future__ import annotations

from typing import Any

from lightkube import Client
from lightkube.codecs import from_dict

from mothership.api.k0smotron import v1beta2
from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_COREDNS_IMAGE,
    DEFAULT_KONNECTIVITY_AGENT_IMAGE,
    UPSTREAM_REGISTRY,
)
from mothership.render import network_addons
from mothership.render.facts import Facts
from mothership.testenv.node_images import PAUSE_IMAGE
from mothership.testenv.pins import K0S_KUBERNETES_VERSION, K0S_VERSION

# The one k0s this host builds, as a Cluster's spec.version (image tags hold no `+`).
K0S_CLUSTER_VERSION = K0S_VERSION.replace("+", "-")


def _image(ref: str) -> dict[str, str]:
    repository, tag = ref.rsplit(":", 1)
    return {"image": repository, "version": tag}


AIR_GAPPED_IMAGES = {
    "konnectivity": _image(DEFAULT_KONNECTIVITY_AGENT_IMAGE),
    "metricsserver": _image(network_addons.METRICS_SERVER_IMAGE),
    "kubeproxy": _image(f"{UPSTREAM_REGISTRY}/kube-proxy:{K0S_KUBERNETES_VERSION}"),
    "coredns": _image(DEFAULT_COREDNS_IMAGE),
    "pause": _image(PAUSE_IMAGE),
}


def air_gapped_k0s_config() -> dict[str, Any]:
    """spec.k0sConfig of a Cluster whose workers pull from the local registry mirror."""
    return {
        "apiVersion": "k0s.k0sproject.io/v1beta1",
        "kind": "ClusterConfig",
        "spec": {"network": {"provider": "custom"}, "images": AIR_GAPPED_IMAGES},
    }


def apply_user_cni(tenant: Client, cluster: dict[str, Any], address: str) -> None:
    """What the user of a `provider: custom` Cluster does: apply a pod network (flannel)."""
    model = v1beta2.Cluster.model_validate(cluster)
    for obj in network_addons.flannel(model, Facts(external_address=address)):
        tenant.apply(from_dict(obj), field_manager="user", force=True)
