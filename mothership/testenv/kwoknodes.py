"""Simulated nodes: Node objects that kwok keeps Ready and whose pods it runs on paper.

Used for scale work: thousands of pods cost no containers. kwok only manages nodes that
carry its annotation, so a mothership with kwok and a real node never mixes them up.
"""

from __future__ import annotations

from pathlib import Path

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import NodeSpec, NodeStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node

from mothership.testenv.config import MothershipConfig
from mothership.testenv.pins import KUBERNETES_VERSION

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_LABEL = "type"


# kwok does nothing without Stages: these say how a simulated node and its pods behave.
# Nodes become Ready once (heartbeats go through Leases); pods on them go Running and
# Ready at once; pods of a Job complete; deleted pods are removed.
STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: mothership-node-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.status.conditions.[] | select( .type == "Ready" ) | .status',
       operator: NotIn, values: ['True']}
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        message: {{ .message | Quote }}
        lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
      {{ end }}
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ NodeName | Quote }}}
      allocatable:
      {{ YAML .status.allocatable 1 }}
      capacity:
      {{ YAML .status.capacity 1 }}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: @VERSION@
        kubeProxyVersion: @VERSION@
        containerRuntimeVersion: kwok
        kernelVersion: kwok
        osImage: kwok
        machineID: ""
        bootID: ""
        systemUUID: ""
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: mothership-pod-running}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: In, values: [Pending]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
      conditions:
      {{ range list "Initialized" "PodReadyToStartContainers" "ContainersReady" "Ready" }}
      - {type: {{ . }}, status: "True", lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      {{ range .spec.readinessGates }}
      - {type: {{ .conditionType | Quote }}, status: "True", lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ $now | Quote }}}}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        restartCount: 0
        state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }},
                finishedAt: {{ $now | Quote }}}}
      {{ end }}
      {{ with NodeIPsWith .spec.nodeName }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs: [{ip: {{ index . 0 | Quote }}}]
      {{ end }}
      {{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" )
           ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      podIP: {{ index . 0 | Quote }}
      podIPs: [{ip: {{ index . 0 | Quote }}}]
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: mothership-job-pod-succeeded}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: In, values: [Running]}
    - {key: '.metadata.ownerReferences.[].kind', operator: In, values: [Job]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Succeeded
      conditions:
      - {type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        restartCount: 0
        state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }},
                finishedAt: {{ $now | Quote }}}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: mothership-pod-delete}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: Exists}
  next:
    finalizers: {empty: true}
    delete: true
""".replace("@VERSION@", KUBERNETES_VERSION)


def write_stages(cfg: MothershipConfig) -> Path:
    path = cfg.state_dir / "kwok-stages.yaml"
    path.write_text(STAGES)
    return path


def kwok_argv(cfg: MothershipConfig) -> list[str]:
    return [
        str(cfg.bin_dir / "kwok"),
        f"--config={write_stages(cfg)}",
        "--node-lease-duration-seconds=40",
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
