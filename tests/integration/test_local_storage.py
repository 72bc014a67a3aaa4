"""PVCs in the real-node local mothership get real directories, kept across pods, grown on
request and removed with the claim; and the older tenant control-plane image runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim, Pod
from lightkube.resources.storage_v1 import StorageClass
from lightkube.types import PatchType

from mothership.testenv import kube, pins, provisioner
from mothership.testenv import localvolumes as lv
from mothership.testenv.local import LocalMothership

NS = "default"
DATA = "/data"


def _pod(name: str, command: list[str], *, claim: str | None, image: str, kubectl: Path) -> Any:
    volumes: list[dict[str, Any]] = [
        {"name": "kubectl", "hostPath": {"path": str(kubectl), "type": "File"}}
    ]
    mounts = [{"name": "kubectl", "mountPath": "/kubectl", "readOnly": True}]
    if claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "data", "mountPath": DATA})
    return Pod.from_dict(
        {
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "restartPolicy": "Never",
                # Non-root with an fsGroup, like the etcd pods: the volume must follow it.
                "securityContext": {"runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 2000},
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": command,
                        "volumeMounts": mounts,
                    }
                ],
                "volumes": volumes,
            },
        }
    )


def _run(kc: Client, pod: Any, timeout: float = 120) -> str:
    """Create the pod, wait for it to Succeed, return its log and delete it."""
    name = pod.metadata.name
    kc.create(pod)

    def finished() -> bool:
        phase = kc.get(Pod, name, namespace=NS).status.phase
        assert phase != "Failed", f"pod {name} failed: {''.join(kc.log(name, namespace=NS))}"
        return phase == "Succeeded"

    kube.wait_until(f"pod {name} Succeeded", finished, timeout)
    out = "".join(kc.log(name, namespace=NS))
    kc.delete(Pod, name, namespace=NS, grace_period=0)
    kube.wait_until(f"pod {name} gone", lambda: _gone(kc, Pod, name, NS), 60)
    return out


def _gone(kc: Client, res: Any, name: str, namespace: str | None = None) -> bool:
    try:
        kc.get(res, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return True
        raise
    return False


def test_default_storage_class_and_healthy_provisioner(mothership_real: LocalMothership) -> None:
    kc = kube.client(mothership_real.cfg.kubeconfig)
    sc = kc.get(StorageClass, lv.STORAGE_CLASS)
    assert sc.provisioner == lv.PROVISIONER
    assert sc.metadata.annotations[lv.ANN_DEFAULT_CLASS] == "true"
    assert sc.allowVolumeExpansion is True
    status = {s.name: s for s in mothership_real.status()}
    assert status["storage-provisioner"].healthy, status["storage-provisioner"].detail


def test_claim_data_survives_pods_grows_and_goes_with_the_claim(
    mothership_real: LocalMothership,
) -> None:
    cfg = mothership_real.cfg
    kc = kube.client(cfg.kubeconfig)
    kubectl = cfg.bin_dir / "kubectl"
    image = pins.local_control_plane_image(pins.KUBERNETES_VERSION)
    # No storageClassName: the default class must be picked up.
    kc.create(
        PersistentVolumeClaim.from_dict(
            {
                "metadata": {"name": "kept", "namespace": NS},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )
    )
    # kubectl writing a kubeconfig is the file write; the image has no shell.
    write = ["/kubectl", "config", "set-cluster", "kept", "--server=https://kept.example:6443"]
    _run(
        kc,
        _pod(
            "writer",
            [*write, f"--kubeconfig={DATA}/config"],
            claim="kept",
            image=image,
            kubectl=kubectl,
        ),
    )

    pvc = kc.get(PersistentVolumeClaim, "kept", namespace=NS)
    assert pvc.spec.storageClassName == lv.STORAGE_CLASS
    assert pvc.status.phase == "Bound"
    pv_name = pvc.spec.volumeName
    assert pv_name == f"pvc-{pvc.metadata.uid}"
    host_dir = provisioner.volumes_dir(cfg.state_dir) / pv_name
    written = host_dir / "config"
    assert "https://kept.example:6443" in written.read_text()
    # The kubelet applied the pod's fsGroup: that is why the volumes are `local`.
    assert os.stat(written).st_gid == 2000

    read = ["/kubectl", "config", "view", f"--kubeconfig={DATA}/config"]
    read += ["-o", "jsonpath={.clusters[0].cluster.server}"]
    out = _run(kc, _pod("reader", read, claim="kept", image=image, kubectl=kubectl))
    assert out.strip() == "https://kept.example:6443"

    kc.patch(
        PersistentVolumeClaim,
        "kept",
        {"spec": {"resources": {"requests": {"storage": "2Gi"}}}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )

    def grown() -> bool:
        claim = kc.get(PersistentVolumeClaim, "kept", namespace=NS)
        volume = kc.get(PersistentVolume, pv_name)
        return (
            claim.status.capacity["storage"] == "2Gi" and volume.spec.capacity["storage"] == "2Gi"
        )

    kube.wait_until("claim and volume at 2Gi", grown, 60)
    assert written.exists()

    kc.delete(PersistentVolumeClaim, "kept", namespace=NS)
    kube.wait_until("volume deleted", lambda: _gone(kc, PersistentVolume, pv_name), 90)
    assert not host_dir.exists()


def test_retained_volume_keeps_its_directory_when_deleted(
    mothership_real: LocalMothership,
) -> None:
    """Deleting a Retain volume by hand leaves the data: never delete what the user kept."""
    cfg = mothership_real.cfg
    kc = kube.client(cfg.kubeconfig)
    kc.create(
        PersistentVolumeClaim.from_dict(
            {
                "metadata": {"name": "retained", "namespace": NS},
                "spec": {
                    "storageClassName": lv.STORAGE_CLASS,
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "64Mi"}},
                },
            }
        )
    )
    image = pins.local_control_plane_image(pins.KUBERNETES_VERSION)
    write = ["/kubectl", "config", "set-cluster", "r", "--server=https://r:1"]
    _run(
        kc,
        _pod(
            "retain-writer",
            [*write, f"--kubeconfig={DATA}/config"],
            claim="retained",
            image=image,
            kubectl=cfg.bin_dir / "kubectl",
        ),
    )
    pv_name = kc.get(PersistentVolumeClaim, "retained", namespace=NS).spec.volumeName
    kc.patch(
        PersistentVolume,
        pv_name,
        {"spec": {"persistentVolumeReclaimPolicy": "Retain"}},
        patch_type=PatchType.MERGE,
    )
    host_dir = provisioner.volumes_dir(cfg.state_dir) / pv_name
    kc.delete(PersistentVolumeClaim, "retained", namespace=NS)
    kube.wait_until(
        "volume Released",
        lambda: kc.get(PersistentVolume, pv_name).status.phase == "Released",
        60,
    )
    kc.delete(PersistentVolume, pv_name)
    kube.wait_until("volume deleted", lambda: _gone(kc, PersistentVolume, pv_name), 60)
    assert (host_dir / "config").exists()


def test_previous_version_control_plane_image_runs(mothership_real: LocalMothership) -> None:
    cfg = mothership_real.cfg
    kc = kube.client(cfg.kubeconfig)
    for version in pins.TENANT_VERSIONS:
        image = pins.local_control_plane_image(version)
        name = f"apiserver-{version.replace('.', '-')}"
        out = _run(
            kc,
            _pod(
                name,
                ["/usr/local/bin/kube-apiserver", "--version"],
                claim=None,
                image=image,
                kubectl=cfg.bin_dir / "kubectl",
            ),
        )
        assert out.strip() == f"Kubernetes {version}"
