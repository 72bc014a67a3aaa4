"""Simulated nodes: Node objects that kwok keeps Ready and whose pods it runs on paper.

Used for scale work: thousands of pods cost no containers. kwok only manages nodes that
carry its annotation, so a mothership with kwok and a real node never mixes them up.
"""

from __future__ import annotations

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import NodeSpec, NodeStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node

from mothership.testenv.config import MothershipConfig

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_LABEL = "type"


def kwok_argv(cfg: MothershipConfig) -> list[str]:
    return [
        str(cfg.bin_dir / "kwok"),
        f"--kubeconfig={cfg.pki_dir / 'kwok.kubeconfig'}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
        f"--server-address=127.0.0.1:{cfg.ports['kwok']}",
        "--cidr=10.245.0.0/16",
        "--node-ip=10.245.0.1",
    ]


def node_names(cfg: MothershipConfig) -> list[str]:
    return [f"kwok-node-{i}" for i in range(cfg.kwok_nodes)]


def kwok_node(name: str) -> Node:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"}
    return Node(
        metadata=ObjectMeta(
            name=name,
            annotations={KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            labels={
                KWOK_LABEL: "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
                "topology.kubernetes.io/zone": f"zone-{int(name.rsplit('-', 1)[1]) % 3}",
            },
        ),
        spec=NodeSpec(),
        status=NodeStatus(capacity=capacity, allocatable=capacity),
    )


def ensure_nodes(kc: Client, cfg: MothershipConfig) -> list[str]:
    names = node_names(cfg)
    for name in names:
        try:
            kc.create(kwok_node(name))
        except ApiError as exc:
            if exc.status.code != 409:
                raise
    return names
