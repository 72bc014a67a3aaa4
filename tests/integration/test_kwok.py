"""kwok nodes: Ready, schedulable, and a Deployment's pods become Ready on them."""

from __future__ import annotations

from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Node, Pod

from mothership.testenv import kube
from mothership.testenv.kwoknodes import node_names
from mothership.testenv.local import LocalMothership


def test_kwok_nodes_are_ready(mothership_kwok: LocalMothership) -> None:
    kc = kube.client(mothership_kwok.cfg.kubeconfig)
    nodes = {n.metadata.name: n for n in kc.list(Node)}
    assert set(node_names(mothership_kwok.cfg)) <= set(nodes)
    assert all(kube.node_ready(nodes[n]) for n in node_names(mothership_kwok.cfg))


def test_deployment_pods_become_ready(mothership_kwok: LocalMothership) -> None:
    kc = kube.client(mothership_kwok.cfg.kubeconfig)
    labels = {"app": "web"}
    kc.create(
        Deployment(
            metadata=ObjectMeta(name="web", namespace="default"),
            spec=DeploymentSpec(
                replicas=4,
                selector=LabelSelector(matchLabels=labels),
                template=PodTemplateSpec(
                    metadata=ObjectMeta(labels=labels),
                    spec=PodSpec(containers=[Container(name="web", image="nginx:1.27")]),
                ),
            ),
        )
    )

    def available() -> bool:
        st = kc.get(Deployment, "web", namespace="default").status
        return bool(st and st.readyReplicas == 4 and st.availableReplicas == 4)

    kube.wait_until("deployment web available", available, 120)
    pods = list(kc.list(Pod, namespace="default", labels=labels))
    assert len(pods) == 4
    kwok = set(node_names(mothership_kwok.cfg))
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.nodeName in kwok
        assert pod.status.podIP
    kc.delete(Deployment, "web", namespace="default")
