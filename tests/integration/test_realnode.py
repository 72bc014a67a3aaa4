"""A real node: a Pod from the locally built control-plane image really runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lightkube import Client
from lightkube.models.core_v1 import (
    Container,
    HostPathVolumeSource,
    PodSpec,
    Volume,
    VolumeMount,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Node, Pod

from mothership.testenv import kube, pins
from mothership.testenv.local import LocalMothership
from mothership.testenv.pkiset import NODE_NAME
from mothership.testenv.realnode import CONTROL_PLANE_IMAGE


def test_real_node_is_ready(mothership_real: LocalMothership) -> None:
    kc = kube.client(mothership_real.cfg.kubeconfig)
    node = kc.get(Node, NODE_NAME)
    assert kube.node_ready(node)
    assert node.status.nodeInfo.kubeletVersion == pins.KUBERNETES_VERSION
    assert node.status.nodeInfo.containerRuntimeVersion.startswith("containerd://")


def _run_to_completion(
    kc: Client, name: str, command: list[str], volumes: dict[str, Path] | None = None
) -> None:
    """Run one container of the control-plane image until it Succeeds (fail fast on Failed).

    `volumes` maps a mount path to a host file mounted there read-only.
    """
    mounts = [VolumeMount(name=f"v{i}", mountPath=p) for i, p in enumerate(volumes or {})]
    host = [
        Volume(name=f"v{i}", hostPath=HostPathVolumeSource(path=str(f), type="File"))
        for i, f in enumerate((volumes or {}).values())
    ]
    kc.create(
        Pod(
            metadata=ObjectMeta(name=name, namespace="default"),
            spec=PodSpec(
                restartPolicy="Never",
                containers=[
                    Container(
                        name=name,
                        image=CONTROL_PLANE_IMAGE,
                        imagePullPolicy="Never",
                        command=command,
                        volumeMounts=mounts or None,
                    )
                ],
                volumes=host or None,
            ),
        )
    )

    def finished() -> bool:
        phase = kc.get(Pod, name, namespace="default").status.phase
        assert phase != "Failed", f"pod {name} failed"
        return phase == "Succeeded"

    kube.wait_until(f"pod {name} Succeeded", finished, 120)


def test_pod_from_local_control_plane_image_runs(mothership_real: LocalMothership) -> None:
    kc = kube.client(mothership_real.cfg.kubeconfig)
    _run_to_completion(kc, "apiserver-version", ["/usr/local/bin/kube-apiserver", "--version"])
    # `kubectl logs` goes apiserver -> kubelet over TLS: the whole node path is exercised.
    env = {**os.environ, "KUBECONFIG": str(mothership_real.cfg.kubeconfig)}
    out = subprocess.run(
        [str(mothership_real.cfg.bin_dir / "kubectl"), "logs", "apiserver-version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"Kubernetes {pins.KUBERNETES_VERSION}"
    kc.delete(Pod, "apiserver-version", namespace="default")


def test_pod_reaches_the_api_through_the_kubernetes_service(
    mothership_real: LocalMothership,
) -> None:
    """Service VIP (kube-proxy), pod network (CNI), projected SA token and root CA together."""
    kc = kube.client(mothership_real.cfg.kubeconfig)
    command = ["/kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]
    _run_to_completion(
        kc, "whoami", command, volumes={"/kubectl": mothership_real.cfg.bin_dir / "kubectl"}
    )
    logs = "".join(kc.log("whoami", namespace="default"))
    assert logs.strip() == "system:serviceaccount:default:default"
    kc.delete(Pod, "whoami", namespace="default")
