"""Where replicated pods land: spread so that one lost zone or node costs one replica."""

from __future__ import annotations

import copy
from typing import Any

from mothership.render import names

# (weight, topology key): zones matter more than nodes.
SPREAD = ((100, "topology.kubernetes.io/zone"), (50, "kubernetes.io/hostname"))


def spread_affinity(cluster_name: str, component: str) -> dict[str, Any]:
    """Prefer pods of one component in different zones, then on different nodes."""
    match = {"matchLabels": names.selector(cluster_name, component)}
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": weight,
                    "podAffinityTerm": {
                        "topologyKey": key,
                        "labelSelector": copy.deepcopy(match),
                    },
                }
                for weight, key in (
                    (100, "topology.kubernetes.io/zone"),
                    (50, "kubernetes.io/hostname"),
                )
            ]
        }
    }
