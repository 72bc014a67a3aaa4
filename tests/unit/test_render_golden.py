"""Golden files for render_cluster: every object of every documented case, byte for byte.

Each case is a Cluster as k0smotron's docs write it (plus the facts the controller would
pass). Its objects are compared, one file per object, with
`tests/unit/golden/render/<case>/<kind>-<name>.yaml`, each holding
`yaml.safe_dump(obj, sort_keys=True)`. A changed, missing or extra object fails the case.

The files are the review surface for rendering changes: after a deliberate change run

    UPDATE_GOLDEN=1 PYTHONPATH=. python -m pytest -q -p no:cacheprovider \
        tests/unit/test_render_golden.py

and read the diff before committing it. The variable rewrites every case directory
(stale files are removed); without it the test only compares.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts

GOLDEN = Path(__file__).parent / "golden" / "render"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def cluster(manifest: str) -> Cluster:
    return Cluster.model_validate(yaml.safe_load(manifest))


# case -> (Cluster manifest, facts the controller would have)
CASES: dict[str, tuple[str, Facts]] = {
    "basic": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: k0smotron-test, namespace: default}
        spec: null
        """,
        Facts(),
    ),
    "nodeport": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: k0smotron-test, namespace: default}
        spec:
          replicas: 1
          image: quay.io/k0sproject/k0s
          version: v1.27.1-k0s.0
          service: {type: NodePort, apiPort: 30443, konnectivityPort: 30132}
          persistence: {type: emptyDir}
        """,
        Facts(external_address="192.0.2.10"),
    ),
    "loadbalancer": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: lb-test, namespace: tenants}
        spec:
          version: v1.30.2+k0s.0
          service:
            type: LoadBalancer
            apiPort: 6443
            konnectivityPort: 8132
            annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}
            labels: {team: platform}
            loadBalancerClass: service.k8s.aws/nlb
            externalTrafficPolicy: Local
        """,
        Facts(external_address="203.0.113.7", service_cluster_ips=("10.96.12.34",)),
    ),
    "ingress": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: my-cluster, namespace: default}
        spec:
          version: v1.34.1-k0s.0
          ingress:
            apiHost: kube-api.example.com
            konnectivityHost: konnectivity.example.com
            className: haproxy
            annotations: {haproxy.org/ssl-passthrough: "true"}
        """,
        Facts(),
    ),
    "etcd-ha": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: k0smotron-test, namespace: default}
        spec:
          replicas: 3
          storage:
            type: etcd
            etcd:
              args:
                - --auto-compaction-mode=periodic
                - --auto-compaction-retention=15m
                - --snapshot-count=20000
              resources:
                requests: {cpu: 100m, memory: 128Mi}
                limits: {cpu: 200m, memory: 256Mi}
              defragJob:
                enabled: true
                schedule: "0 0 * * *"
        """,
        Facts(external_address="10.96.40.1"),
    ),
    "kine-url": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: k0smotron-test, namespace: default}
        spec:
          replicas: 3
          service: {type: LoadBalancer}
          storage:
            type: kine
            kine:
              dataSourceURL: postgres://k0smotron:passwd@acid-minimal-cluster.default:5432/kine?sslmode=disable
        """,
        Facts(external_address="198.51.100.20"),
    ),
    "kine-secret": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: k0smotron-test, namespace: k0smotron-test}
        spec:
          replicas: 3
          service: {type: LoadBalancer}
          storage:
            type: kine
            kine: {dataSourceSecretName: database-credentials}
        """,
        Facts(external_address="198.51.100.21"),
    ),
    "pvc": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: k0smotron-test, namespace: default}
        spec:
          persistence:
            type: pvc
            autoDeletePVCs: true
            persistentVolumeClaim:
              metadata:
                name: k0s-data
                labels: {backup: daily}
              spec:
                accessModes: [ReadWriteOnce]
                storageClassName: local-path
                resources: {requests: {storage: 250Mi}}
        """,
        Facts(),
    ),
    "monitoring": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: k0smotron-test, namespace: default}
        spec:
          monitoring: {enabled: true}
        """,
        Facts(),
    ),
    "nats": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: nats-test, namespace: default}
        spec:
          replicas: 3
          storage:
            type: nats
            nats: {persistence: {size: 2Gi, storageClass: fast}}
        """,
        Facts(),
    ),
    "patch-json": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: patched, namespace: default}
        spec:
          patches:
            - target: {kind: StatefulSet, component: control-plane}
              patch:
                type: json
                content: |
                  [{"op": "add", "path": "/spec/template/spec/priorityClassName",
                    "value": "system-cluster-critical"}]
        """,
        Facts(),
    ),
    "patch-merge": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: patched, namespace: default}
        spec:
          service: {type: NodePort}
          patches:
            - target: {kind: Service, component: control-plane}
              patch:
                type: merge
                content: |
                  metadata:
                    annotations:
                      example.com/owner: team-a
                  spec:
                    externalTrafficPolicy: Local
        """,
        Facts(),
    ),
    "patch-strategic": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: patched, namespace: default}
        spec:
          patches:
            - target: {kind: StatefulSet, component: etcd}
              patch:
                type: strategic
                content: |
                  spec:
                    template:
                      spec:
                        containers:
                          - name: etcd
                            env:
                              - name: ETCD_QUOTA_BACKEND_BYTES
                                value: "8589934592"
                        tolerations:
                          - {key: dedicated, operator: Equal, value: etcd, effect: NoSchedule}
        """,
        Facts(),
    ),
    # The kubernetes distribution: upstream components, kine on SQLite, the local image.
    "kubernetes-kine": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: upstream, namespace: tenants}
        spec:
          distribution: kubernetes
          version: v1.35.4
          storage: {type: kine}
          persistence: {type: hostPath, hostPath: /var/lib/mothership/upstream}
        """,
        Facts(
            external_address="10.96.7.7",
            service_cluster_ips=("10.96.7.7",),
            kubernetes_image_template="localhost/mothership/control-plane:{version}",
        ),
    ),
    # Three replicas on managed etcd, upstream images, monitoring, a user API server flag.
    "kubernetes-etcd-ha": (
        """
        apiVersion: k0smotron.io/v1beta2
        kind: Cluster
        metadata: {name: upstream-ha, namespace: tenants}
        spec:
          distribution: kubernetes
          version: v1.35.4
          replicas: 3
          service: {type: NodePort, apiPort: 31443, konnectivityPort: 31132}
          storage: {type: etcd}
          monitoring: {enabled: true}
          controlPlaneFlags: ["--profiling=true", "--audit-log-maxage=7"]
          kubernetes:
            images: {apiServer: mirror.example/kube-apiserver:v1.35.4}
          k0sConfig:
            spec: {network: {serviceCIDR: 10.100.0.0/16, podCIDR: 10.200.0.0/16}}
        """,
        Facts(external_address="192.0.2.44", service_cluster_ips=("10.96.9.9",)),
    ),
}


def file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def rendered(case: str) -> dict[str, str]:
    manifest, facts = CASES[case]
    objects = render_cluster(cluster(manifest), facts)
    out = {file_name(obj): yaml.safe_dump(obj, sort_keys=True) for obj in objects}
    assert len(out) == len(objects), "two objects of one kind share a name"
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    expected_dir = GOLDEN / case
    actual = rendered(case)
    if UPDATE:
        expected_dir.mkdir(parents=True, exist_ok=True)
        for stale in expected_dir.glob("*.yaml"):
            if stale.name not in actual:
                stale.unlink()
        for name, text in actual.items():
            (expected_dir / name).write_text(text)
    expected = {path.name: path.read_text() for path in sorted(expected_dir.glob("*.yaml"))}
    assert sorted(actual) == sorted(expected), "objects rendered differ from the golden files"
    for name, text in actual.items():
        assert text == expected[name], f"{case}/{name} differs (UPDATE_GOLDEN=1 to rewrite)"
