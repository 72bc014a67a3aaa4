"""Everything a Cluster is made of, rendered in one call.

The order is fixed and meaningful for a first apply: Services before the config that
names them, NetworkPolicies before the pods they guard (no pod starts unguarded),
ConfigMaps before the pods that mount them, etcd before the controllers that need it.
Patches come last so they see (and may change) exactly what would be applied.
The two distributions share everything but what runs inside the control plane pods.
Secrets are not here: PKI and kubeconfig depend on what already exists and on the clock,
which a pure render must not.
"""

from __future__ import annotations

import json
from typing import Any

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render import (
    configmaps,
    etcd,
    ingress,
    kubernetes_control_plane,
    network_policies,
    patches,
    services,
    statefulset,
)
from mothership.render.facts import Facts


def render_cluster(cluster: Cluster, facts: Facts) -> list[dict[str, Any]]:
    """Every object of the control plane, in apply order, with spec.patches applied.

    Raises facts.RenderError for a spec that cannot be rendered and patches.PatchError for
    a patch that does not apply; nothing is returned half-done.
    """
    objects: list[dict[str, Any]]
    if cluster.spec.distribution == "kubernetes":
        monitoring = configmaps.monitoring_config_map(cluster)
        objects = [
            *services.render_services(cluster),
            *network_policies.render_network_policies(cluster),
            *([monitoring] if monitoring is not None else []),
            *etcd.render_etcd(cluster, facts),
            *kubernetes_control_plane.render_control_plane(cluster, facts),
        ]
    else:
        objects = [
            *services.render_services(cluster),
            *network_policies.render_network_policies(cluster),
            *configmaps.render_config_maps(cluster, facts),
            *ingress.render_ingress(cluster, facts),
            *etcd.render_etcd(cluster, facts),
            statefulset.statefulset(cluster, facts),
        ]
    # Through JSON once: plain types only, and no sub-object shared between two places
    # (a shared dict would come out of YAML as an anchor and out of a patch as a surprise).
    plain = json.loads(json.dumps(objects))
    return patches.apply_patches(plain, cluster.spec.patches or [])
