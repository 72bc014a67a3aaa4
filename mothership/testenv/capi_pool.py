"""Cluster API manifests for a hosted control plane and a MachineDeployment over a pool of
machines reached by SSH, as the tests and `mothership bench capi` apply them.

One Cluster API `Cluster` with a `RemoteCluster` infrastructure and a K0smotronControlPlane
(kubernetes distribution on kine, or k0s); a MachineDeployment (starting at 0 replicas) whose
Machines get K0sWorkerConfigs and RemoteMachines taken from a pool of
PooledRemoteMachines, one per reachable machine, all reached with one SSH key. Pure: the
caller applies the YAML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from mothership.testenv.pins import KUBERNETES_VERSION

CP_GROUP = "controlplane.cluster.x-k8s.io"
INFRA_GROUP = "infrastructure.cluster.x-k8s.io"
BOOTSTRAP_GROUP = "bootstrap.cluster.x-k8s.io"
POOL = "lab"
MACHINE_DEPLOYMENT = "md"
SSH_KEY_SECRET = "ssh-key"
NODE_LABEL = ("pool", POOL)
# Machines here share the host's disk, which is fuller than a real node's would be: the
# kubelet's default disk eviction would evict pods at once (testenv/machines.py).
SHARED_DISK_KUBELET_ARGS = (
    "--kubelet-extra-args=--eviction-hard=memory.available<100Mi,"
    "nodefs.available<1%,imagefs.available<1%,nodefs.inodesFree<1%"
)


def hosted_cluster(
    ns: str,
    name: str,
    service: dict[str, Any] | None = None,
    *,
    infra: bool = False,
    version: str = KUBERNETES_VERSION,
    replicas: int = 1,
    storage: dict[str, Any] | None = None,
    k0s_config: dict[str, Any] | None = None,
    cluster_network: dict[str, Any] | None = None,
) -> str:
    """A Cluster API Cluster whose control plane is a K0smotronControlPlane, optionally with
    a RemoteCluster as its infrastructure.

    With `k0s_config` the control plane is k0smotron's default one, as its users write it:
    no distribution (k0s), storage left to the default (managed etcd), that k0s config;
    `version` is then a k0s version."""
    remote_cluster = {
        "apiVersion": f"{INFRA_GROUP}/v1beta2",
        "kind": "RemoteCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {},
    }
    infra_ref = {"apiGroup": INFRA_GROUP, "kind": "RemoteCluster", "name": name}
    cluster = {
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "controlPlaneRef": {
                "apiGroup": CP_GROUP,
                "kind": "K0smotronControlPlane",
                "name": f"{name}-cp",
            },
            **({"infrastructureRef": infra_ref} if infra else {}),
            **({"clusterNetwork": cluster_network} if cluster_network else {}),
        },
    }
    control_plane: dict[str, Any] = {
        "apiVersion": f"{CP_GROUP}/v1beta2",
        "kind": "K0smotronControlPlane",
        "metadata": {"name": f"{name}-cp", "namespace": ns},
        "spec": {
            "version": version,
            "replicas": replicas,
            "service": service or {"type": "ClusterIP"},
        },
    }
    spec = control_plane["spec"]
    if k0s_config is None:
        spec.update(distribution="kubernetes", storage=storage or {"type": "kine"})
    else:
        spec.update(k0sConfig=k0s_config, **({"storage": storage} if storage else {}))
    return yaml.safe_dump_all([*([remote_cluster] if infra else []), cluster, control_plane])


def machine_pool(
    ns: str,
    cluster: str,
    addresses: Sequence[tuple[str, str]],
    key: str,
    pre_commands: Sequence[str] = (),
) -> str:
    """The SSH key Secret, the templates (the workers' `preK0sCommands` from
    `pre_commands`), a 0-replica MachineDeployment and one PooledRemoteMachine per
    (name, address)."""
    worker_spec: dict[str, Any] = {
        "args": [f"--labels={'='.join(NODE_LABEL)}", SHARED_DISK_KUBELET_ARGS],
        **({"preK0sCommands": list(pre_commands)} if pre_commands else {}),
    }
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SSH_KEY_SECRET, "namespace": ns},
            "stringData": {"value": key},
        },
        {
            "apiVersion": f"{INFRA_GROUP}/v1beta2",
            "kind": "RemoteMachineTemplate",
            "metadata": {"name": MACHINE_DEPLOYMENT, "namespace": ns},
            "spec": {"template": {"spec": {"pool": POOL}}},
        },
        {
            "apiVersion": f"{BOOTSTRAP_GROUP}/v1beta2",
            "kind": "K0sWorkerConfigTemplate",
            "metadata": {"name": MACHINE_DEPLOYMENT, "namespace": ns},
            "spec": {"template": {"spec": worker_spec}},
        },
        {
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "MachineDeployment",
            "metadata": {"name": MACHINE_DEPLOYMENT, "namespace": ns},
            "spec": {
                "clusterName": cluster,
                "replicas": 0,
                "selector": {"matchLabels": {"md": MACHINE_DEPLOYMENT}},
                "template": {
                    "metadata": {"labels": {"md": MACHINE_DEPLOYMENT}},
                    "spec": {
                        "clusterName": cluster,
                        "bootstrap": {
                            "configRef": {
                                "apiGroup": BOOTSTRAP_GROUP,
                                "kind": "K0sWorkerConfigTemplate",
                                "name": MACHINE_DEPLOYMENT,
                            }
                        },
                        "infrastructureRef": {
                            "apiGroup": INFRA_GROUP,
                            "kind": "RemoteMachineTemplate",
                            "name": MACHINE_DEPLOYMENT,
                        },
                    },
                },
            },
        },
    ]
    for name, address in addresses:
        docs.append(
            {
                "apiVersion": f"{INFRA_GROUP}/v1beta2",
                "kind": "PooledRemoteMachine",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "pool": POOL,
                    "machine": {
                        "address": address,
                        "port": 22,
                        "user": "root",
                        "sshKeyRef": {"name": SSH_KEY_SECRET},
                    },
                },
            }
        )
    return yaml.safe_dump_all(docs)
