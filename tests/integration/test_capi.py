"""Real Cluster API in the local mothership (`mothership dev up --capi`).

Cluster API's core controller manager, built from its module at the pinned release, runs
beside an API-only local mothership: its CRDs are established with conversion through its
webhook, its admission webhooks answer (a Cluster without refs is refused with Cluster API's
own message), its controllers reconcile (the finalizer and status on a Cluster), objects
read back at the older served version through conversion, `clusterctl` reads the objects,
and bringing the mothership up again without `--capi` removes the webhooks and keeps the
data.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from lightkube import Client
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace

from mothership.testenv import kube, localcapi, localoperator, paths
from mothership.testenv.local import LocalMothership
from mothership.testenv.pins import CAPI_VERSION

CapiCluster = create_namespaced_resource("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters")
EXAMPLE_GROUP = "controlplane.example.com"
EXAMPLE_CRD_NAME = f"examplecontrolplanes.{EXAMPLE_GROUP}"
EXAMPLE_CONTROL_PLANE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": EXAMPLE_CRD_NAME,
        # Cluster API's contract label: this provider serves contract v1beta2 at v1alpha1.
        "labels": {"cluster.x-k8s.io/v1beta2": "v1alpha1"},
    },
    "spec": {
        "group": EXAMPLE_GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "ExampleControlPlane",
            "plural": "examplecontrolplanes",
            "singular": "examplecontrolplane",
        },
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def ms(mothership_capi: LocalMothership) -> LocalMothership:
    return mothership_capi


@pytest.fixture(scope="module")
def kc(ms: LocalMothership) -> Client:
    return kube.client(ms.cfg.kubeconfig, field_manager="mothership-tests")


@pytest.fixture(scope="module")
def ns(kc: Client) -> str:
    name = f"capi-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata={"name": name}))
    return name


def _kubectl(ms: LocalMothership, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(ms.cfg.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _cluster(name: str, ns: str, **spec: object) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterNetwork": {"pods": {"cidrBlocks": ["10.244.0.0/16"]}}, **spec},
        }
    )


def test_crds_are_established_with_conversion_through_the_manager(
    ms: LocalMothership, kc: Client
) -> None:
    crds = [
        c for c in kc.list(CustomResourceDefinition) if c.spec.group.endswith("cluster.x-k8s.io")
    ]
    shipped = sorted((localcapi.release_dir() / "config" / "crd" / "bases").glob("*.yaml"))
    assert len(crds) == len(shipped) == 13
    for crd in crds:
        hook = crd.spec.conversion.webhook
        assert crd.spec.conversion.strategy == "Webhook"
        assert hook.clientConfig.url == localcapi.webhook_url(ms.cfg) + "/convert"
        assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions)
    status = {c.name: c for c in ms.status()}
    assert status[localcapi.COMPONENT].healthy, status[localcapi.COMPONENT].detail


def test_the_webhooks_refuse_a_cluster_without_refs_with_cluster_apis_message(
    ms: LocalMothership, ns: str
) -> None:
    proc = _kubectl(ms, "apply", "-f", "-", stdin=_cluster("bare", ns))
    assert proc.returncode != 0
    assert "one of spec.controlPlaneRef, spec.infrastructureRef or spec.topology must be set" in (
        proc.stderr
    ), proc.stderr
    bad_name = _kubectl(ms, "apply", "-f", "-", stdin=_cluster("x" * 64, ns))
    assert bad_name.returncode != 0


def test_the_controllers_reconcile_and_objects_convert_to_v1beta1(
    ms: LocalMothership, kc: Client, ns: str
) -> None:
    # A control-plane kind of a provider: Cluster API finds the version to convert a
    # reference to from the contract label on its CRD, as for any real provider.
    crd = _kubectl(ms, "apply", "-f", "-", stdin=yaml.safe_dump(EXAMPLE_CONTROL_PLANE_CRD))
    assert crd.returncode == 0, crd.stderr
    kube.wait_until(
        "the provider CRD established",
        lambda: localoperator.crds_established(ms.cfg.kubeconfig, [EXAMPLE_CRD_NAME]),
        60,
    )
    ref = {"apiGroup": EXAMPLE_GROUP, "kind": "ExampleControlPlane"}
    proc = _kubectl(
        ms, "apply", "-f", "-", stdin=_cluster("demo", ns, controlPlaneRef={**ref, "name": "demo"})
    )
    assert proc.returncode == 0, proc.stderr

    def reconciled() -> bool:
        obj = kc.get(CapiCluster, "demo", namespace=ns)
        status = obj.get("status") or {}
        return "cluster.cluster.x-k8s.io" in (obj.metadata.finalizers or []) and bool(
            status.get("conditions")
        )

    try:
        kube.wait_until("Cluster API reconciling the Cluster", reconciled, 120)
    except TimeoutError as exc:
        log = (ms.cfg.state_dir / "logs" / f"{localcapi.COMPONENT}.log").read_text()[-3000:]
        raise AssertionError(f"{exc}\n{log}") from exc
    conditions = (kc.get(CapiCluster, "demo", namespace=ns).get("status") or {})["conditions"]
    summary = ", ".join(f"{c['type']}={c['status']}" for c in conditions)
    print(f"\nCluster API {CAPI_VERSION} reconciled the Cluster: {summary}")

    # Read at v1beta1: the API server asks the manager's conversion webhook.
    old = _kubectl(ms, "get", "clusters.v1beta1.cluster.x-k8s.io", "demo", "-n", ns, "-o", "json")
    assert old.returncode == 0, old.stderr
    converted = json.loads(old.stdout)
    assert converted["apiVersion"] == "cluster.x-k8s.io/v1beta1"
    assert converted["spec"]["controlPlaneRef"] == {
        "apiVersion": f"{EXAMPLE_GROUP}/v1alpha1",
        "kind": "ExampleControlPlane",
        "name": "demo",
        "namespace": ns,
    }

    # clusterctl reads the same objects.
    clusterctl = paths.capi_bin_dir() / "clusterctl"
    described = subprocess.run(
        [str(clusterctl), "describe", "cluster", "demo", "-n", ns,
         "--kubeconfig", str(ms.cfg.kubeconfig)],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ms.cfg.state_dir),
             "CLUSTERCTL_DISABLE_VERSIONCHECK": "true"},
    )  # fmt: skip
    assert described.returncode == 0, described.stderr
    assert "Cluster/demo" in described.stdout, described.stdout


def test_up_without_capi_removes_the_webhooks_and_keeps_the_objects(
    ms: LocalMothership, kc: Client, ns: str
) -> None:
    again = LocalMothership.configure(
        ms.cfg.name, state_dir=ms.cfg.state_dir, nodes="none", capi=False
    )
    said: list[str] = []
    again.up(said.append, timeout=240)
    assert "stopped Cluster API (--no-capi)" in said
    assert localcapi.COMPONENT not in again.running()
    for kind, name in localcapi.WEBHOOK_CONFIG_NAMES.items():
        resource = (
            MutatingWebhookConfiguration
            if kind == "MutatingWebhookConfiguration"
            else ValidatingWebhookConfiguration
        )
        assert name not in [w.metadata.name for w in kc.list(resource)]
    # The data stays: the CRDs and the Cluster at its storage version.
    assert kc.get(CapiCluster, "demo", namespace=ns).metadata.name == "demo"
    # And --capi brings it all back.
    back = LocalMothership.configure(
        "test-capi", state_dir=ms.cfg.state_dir, nodes="none", capi=True
    )
    back.up(timeout=240)
    assert localcapi.COMPONENT in back.running()
    assert _kubectl(ms, "get", "clusters.v1beta1.cluster.x-k8s.io", "-n", ns).returncode == 0


def test_clusterctl_reports_the_pinned_version(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(paths.capi_bin_dir() / "clusterctl"), "version", "-o", "short"],
        capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "CLUSTERCTL_DISABLE_VERSIONCHECK": "true"},
    )  # fmt: skip
    assert out.stdout.strip() == CAPI_VERSION, out.stdout + out.stderr
