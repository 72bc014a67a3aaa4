"""The k0s distribution for real: k0smotron's control plane, rendered by mothership, runs k0s
(built here from its Go module, see pins) on the real node, and serves the tenant API.

Nothing is mocked: the StatefulSet, entrypoint ConfigMap, certificates and Services are the
ones the operator renders for any k0smotron manifest; the only local choice is the operator
setting --k0s-image-repository, which makes Clusters that keep the default image run the
locally written `localhost/mothership/k0s` (quay.io cannot be reached here). The manifest
itself is one a k0smotron user would write: no image in it.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.codecs import load_all_yaml
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Pod, Secret

from mothership.api.k0smotron.v1beta2 import DEFAULT_K0S_IMAGE
from mothership.testenv import kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.localoperator import node_mirror_args
from mothership.testenv.pins import K0S_IMAGE_REPO, K0S_VERSION
from tests.operator_proc import Operator

REPO = Path(__file__).resolve().parents[2]
Cluster = create_namespaced_resource("k0smotron.io", "v1beta1", "Cluster", "clusters")
# Conditions are in v1beta2's status (v1beta1's is k0smotron's, without them).
ClusterV2 = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")
IMAGE_TEMPLATE = "localhost/mothership/control-plane:{version}"
VERSION = K0S_VERSION.replace("+", "-")
API_PORT, KONNECTIVITY_PORT = 31643, 31632


@pytest.fixture(scope="module")
def kc(mothership_real: LocalMothership) -> Client:
    client = kube.client(mothership_real.cfg.kubeconfig)
    for path in sorted((REPO / "deploy" / "crds").glob("*.yaml")):
        for obj in load_all_yaml(path.read_text()):
            client.apply(obj, field_manager="mothership-tests", force=True)
    return client


@pytest.fixture(scope="module")
def operator(
    mothership_real: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(
        mothership_real.cfg.kubeconfig,
        tmp_path_factory.mktemp("op") / "operator.log",
        IMAGE_TEMPLATE,
        IMAGE_TEMPLATE.format(version="v1.35.4"),
        extra_args=(
            f"--k0s-image-repository={K0S_IMAGE_REPO}",
            *node_mirror_args(mothership_real.cfg),
        ),
        identity="k0s-test",
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def ns(kc: Client) -> Iterator[str]:
    name = f"k0s-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kc.delete(Namespace, name)


def _condition(kc: Client, name: str, ns: str, kind: str) -> str:
    status = kc.get(ClusterV2, name, namespace=ns).status or {}
    found = [c for c in status.get("conditions") or [] if c["type"] == kind]
    return found[0]["status"] if found else ""


def _diagnose(kc: Client, ns: str, op: Operator) -> str:
    parts = []
    for cluster in kc.list(ClusterV2, namespace=ns):
        for c in (cluster.status or {}).get("conditions") or []:
            parts.append(f"--- condition {c['type']}={c['status']} {c.get('message', '')}")
    for pod in kc.list(Pod, namespace=ns):
        name = pod.metadata.name if pod.metadata else ""
        for c in (pod.status.containerStatuses if pod.status else None) or []:
            parts.append(f"--- {name}/{c.name}: ready={c.ready} restarts={c.restartCount}")
            try:
                lines = list(kc.log(name, namespace=ns, container=c.name, tail_lines=8))
            except Exception as exc:  # diagnostics only: any failure is reported
                lines = [f"(no log: {exc})"]
            parts.append("".join(lines))
    parts.append("--- operator log\n" + op.log.read_text()[-3000:])
    return "\n".join(parts)


def test_a_k0smotron_cluster_runs_k0s_and_serves_its_api(
    mothership_real: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    name = "k0s-basic"
    kc.create(
        Cluster(
            metadata=ObjectMeta(name=name, namespace=ns),
            spec={
                "version": VERSION,
                "replicas": 1,
                "service": {
                    "type": "NodePort",
                    "apiPort": API_PORT,
                    "konnectivityPort": KONNECTIVITY_PORT,
                },
            },
        )
    )
    try:
        kube.wait_until(
            "k0s Cluster Available", lambda: _condition(kc, name, ns, "Available") == "True", 300
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(kc, ns, operator)}") from exc
    stored = kc.get(Cluster, name, namespace=ns)
    assert stored.spec.get("image") in (None, DEFAULT_K0S_IMAGE), stored.spec  # spec untouched
    images = {c.image for p in kc.list(Pod, namespace=ns) for c in p.spec.containers}  # type: ignore[union-attr]
    assert f"{K0S_IMAGE_REPO}:{VERSION}" in images, images
    secret = kc.get(Secret, f"{name}-kubeconfig", namespace=ns)
    kubeconfig = tmp_path / "tenant.kubeconfig"
    kubeconfig.write_bytes(base64.b64decode((secret.data or {})["value"]))
    kubectl = [str(mothership_real.cfg.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig)]
    version = subprocess.run(
        [*kubectl, "version", "-o", "json"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0, version.stderr
    assert '"gitVersion": "v1.33.13' in version.stdout, version.stdout
    namespaces = subprocess.run(
        [*kubectl, "get", "namespaces", "-o", "name"], capture_output=True, text=True, timeout=60
    )
    assert "namespace/kube-system" in namespaces.stdout, namespaces.stderr
