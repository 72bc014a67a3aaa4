"""`clusterctl init` installs Cluster API and mothership's three providers, for real.

The real-node mothership runs cert-manager (`dev up --cert-manager`); `mothership dev
clusterctl-repository` writes a clusterctl repository (Cluster API's core from the pinned
release, mothership's providers from deploy/clusterctl's generator) and imports their
images; `clusterctl init` installs all four from it as upstream's users run it. Then a
Cluster API Cluster with a K0smotronControlPlane becomes Available, `clusterctl describe
cluster` shows the healthy tree and `clusterctl get kubeconfig` reaches the tenant, whose
Service range is the one the Cluster's clusterNetwork declares. At the
end `clusterctl delete` removes the providers, their CRDs and namespaces.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Service
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

from mothership.install import clusterctl
from mothership.install.local import clusterctl_init_args as init_args
from mothership.testenv import kube, localcertmanager, netns, paths
from mothership.testenv.capi_pool import hosted_cluster
from mothership.testenv.local import LocalMothership
from mothership.testenv.localclusterctl import CORE, CORE_IMAGE
from mothership.testenv.pins import CAPI_VERSION

TIMEOUT = 300
Provider = create_namespaced_resource(
    "clusterctl.cluster.x-k8s.io", "v1alpha3", "Provider", "providers"
)
CapiCluster = create_namespaced_resource("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters")


def _run(
    ms: LocalMothership, argv: list[str], timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A command in the node's network namespace, where the tenant's NodePort routes."""
    return subprocess.run(
        netns.argv(ms.cfg.node_netns, argv),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": f"{ms.cfg.bin_dir}:/usr/bin:/bin", "HOME": str(ms.cfg.state_dir),
             "CLUSTERCTL_DISABLE_VERSIONCHECK": "true", "KUBECONFIG": str(ms.cfg.kubeconfig)},
        check=False,
    )  # fmt: skip


def _clusterctl(
    ms: LocalMothership, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return _run(ms, [str(paths.capi_bin_dir() / "clusterctl"), *args], timeout)


def _accepts(kc: Client, namespace: str, name: str) -> bool:
    """Whether a TCP connection to the Service's first port succeeds from the host."""
    service = kc.get(Service, name, namespace=namespace)
    address = (service.spec.clusterIP, service.spec.ports[0].port)
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def _ca_bundle(kc: Client, crd_name: str) -> str:
    """The CA bundle of a CRD's conversion webhook, empty until cert-manager injects it."""
    webhook = kc.get(CustomResourceDefinition, crd_name).spec.conversion.webhook
    return (webhook and webhook.clientConfig and webhook.clientConfig.caBundle) or ""


def _provider_crds(kc: Client, provider: str) -> list[str]:
    """The CRDs clusterctl installed for a provider (its manifest label: `bootstrap-NAME`,
    the core's bare name), terminating ones too."""
    selector = {"cluster.x-k8s.io/provider": provider}
    return [crd.metadata.name or "" for crd in kc.list(CustomResourceDefinition, labels=selector)]


def _remove_what_clusterctl_installed(kc: Client) -> None:
    """After a failed `clusterctl delete`: remove what carries clusterctl's label, so the
    modules after this one find the shared mothership as they expect (the failure is
    still reported)."""
    selector = {"clusterctl.cluster.x-k8s.io": ""}
    for kind in (
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration, CustomResourceDefinition,
        ClusterRoleBinding, ClusterRole, Namespace,
    ):  # fmt: skip
        for obj in kc.list(kind, labels=selector):
            with contextlib.suppress(ApiError):
                kc.delete(kind, obj.metadata.name)
    kube.wait_until(
        "clusterctl's namespaces and CRDs gone",
        lambda: (
            not [
                *kc.list(Namespace, labels=selector),
                *kc.list(CustomResourceDefinition, labels=selector),
            ]
        ),
        TIMEOUT,
    )


@pytest.fixture(scope="module")
def kc(mothership_real: LocalMothership) -> Client:
    return kube.client(mothership_real.cfg.kubeconfig)


@pytest.fixture(scope="module")
def initialized(
    mothership_real: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, float]]:
    """cert-manager started, the repository written, `clusterctl init` run; yields the
    clusterctl config and the seconds init took. Removes everything afterwards."""
    ms = mothership_real
    if ms.cfg.capi:
        ms.stop_capi()
    ms.start_cert_manager(timeout=240)
    root = tmp_path_factory.mktemp("clusterctl")
    written = subprocess.run(
        [sys.executable, "-m", "mothership.cli.main", "dev", "clusterctl-repository", str(root),
         "--name", ms.cfg.name, "--state-dir", str(ms.cfg.state_dir)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert written.returncode == 0, written.stdout + written.stderr
    assert "clusterctl init --config" in written.stdout.replace("\n", " ")
    config = root / "clusterctl.yaml"
    started = time.monotonic()
    done = _clusterctl(
        ms,
        *init_args(config),
        "--wait-providers",
        "--wait-provider-timeout",
        str(TIMEOUT),
        timeout=TIMEOUT + 60,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"\n`clusterctl init` took {took:.1f}s:\n{done.stdout}{done.stderr}")
    try:
        # A Deployment is available before kube-proxy has routed its Service: wait until
        # the API server (on the host) can reach every webhook the providers registered.
        for namespace, name in (("capi-system", "capi-webhook-service"),
                                ("mothership-system", "mothership-webhook")):  # fmt: skip
            kube.wait_until(
                f"Service {namespace}/{name} accepting connections",
                lambda n=namespace, s=name: _accepts(kc, n, s),
                TIMEOUT,
            )
        yield config, took
    finally:
        # One provider at a time, the operator's last but the core: clusterctl checks a
        # provider's objects through the CRDs the others still serve. Each delete waits
        # for the CRDs of the one before to be gone: clusterctl lists the objects of every
        # CRD it finds, and one still terminating answers 404 to that list (seen in CI).
        deleted = []
        for kind, name, last in (
            ("infrastructure", clusterctl.PROVIDER, False),
            ("bootstrap", clusterctl.PROVIDER, False),
            ("control-plane", clusterctl.PROVIDER, True),
            ("core", CORE, True),
        ):
            done = _clusterctl(
                ms, "delete", "--config", str(config), f"--{kind}", name, "--include-crd",
                *(["--include-namespace"] if last else []), timeout=300,
            )  # fmt: skip
            deleted.append(done)
            if done.returncode != 0:
                break
            kube.wait_until(
                f"the CRDs of the {kind} provider gone",
                lambda provider=name if kind == "core" else f"{kind}-{name}": (
                    not _provider_crds(kc, provider)
                ),
                180,
            )
        ms.sup.stop(localcertmanager.COMPONENT)
        ms.cfg.cert_manager = False
        ms.cfg.save()
        if deleted[-1].returncode != 0:
            _remove_what_clusterctl_installed(kc)
        for done in deleted:
            assert done.returncode == 0, done.stdout + done.stderr
        # clusterctl keeps its inventory's CRD on purpose; the shared mothership does not.
        kc.delete(CustomResourceDefinition, "providers.clusterctl.cluster.x-k8s.io")

        def left() -> list[str]:
            names = (crd.metadata.name or "" for crd in kc.list(CustomResourceDefinition))
            return [n for n in names if n.endswith(("x-k8s.io", "k0smotron.io"))]

        try:
            kube.wait_until("every provider CRD gone", lambda: not left(), 180)
        except TimeoutError:
            raise AssertionError(f"clusterctl delete left CRDs: {left()}") from None


def test_clusterctl_init_installs_core_and_mothership_providers_from_the_local_repository(
    mothership_real: LocalMothership, kc: Client, initialized: tuple[Path, float]
) -> None:
    # clusterctl's inventory: the four providers at the versions of the repository.
    found = {(p.metadata.name, p["version"], p["type"]) for p in kc.list(Provider, namespace="*")}
    version = clusterctl.version()
    assert found == {
        ("cluster-api", CAPI_VERSION, "CoreProvider"),
        ("control-plane-mothership", version, "ControlPlaneProvider"),
        ("bootstrap-mothership", version, "BootstrapProvider"),
        ("infrastructure-mothership", version, "InfrastructureProvider"),
    }
    # Their controllers run in pods, from the images the command imported.
    core = kc.get(Deployment, "capi-controller-manager", namespace="capi-system")
    assert core.spec.template.spec.containers[0].image == CORE_IMAGE
    kube.wait_until(
        "Cluster API's controller available",
        lambda: (
            kc.get(Deployment, core.metadata.name, namespace="capi-system").status.availableReplicas
            == core.spec.replicas
        ),
        TIMEOUT,
    )

    def operator_available() -> bool:
        operator = kc.get(Deployment, "mothership-operator", namespace="mothership-system")
        return operator.status.availableReplicas == operator.spec.replicas

    kube.wait_until("the operator's pods available", operator_available, TIMEOUT)
    # cert-manager's CA injector filled in the CA of every conversion webhook, the ones of
    # the bootstrap and infrastructure providers from the control-plane's Certificate too.
    for crd_name in (
        "clusters.cluster.x-k8s.io",
        "clusters.k0smotron.io",
        "k0sworkerconfigs.bootstrap.cluster.x-k8s.io",
        "remotemachines.infrastructure.cluster.x-k8s.io",
    ):
        # The injector works after the CRDs are applied: wait for it, then check the CA.
        kube.wait_until(
            f"cert-manager's CA in {crd_name}",
            lambda name=crd_name: _ca_bundle(kc, name),
            TIMEOUT,
        )
        assert b"BEGIN CERTIFICATE" in base64.b64decode(_ca_bundle(kc, crd_name)), crd_name


def test_mothership_install_refuses_to_take_over_what_clusterctl_installed(
    mothership_real: LocalMothership, kc: Client, initialized: tuple[Path, float]
) -> None:
    before = kc.get(Deployment, "mothership-operator", namespace="mothership-system")
    refused = subprocess.run(
        [sys.executable, "-m", "mothership.cli.main", "install", "--timeout", "30"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "KUBECONFIG": str(mothership_real.cfg.kubeconfig)},
    )  # fmt: skip
    assert refused.returncode != 0
    assert "installed here by clusterctl (provider control-plane-mothership)" in refused.stderr
    assert "clusterctl delete --control-plane mothership" in refused.stderr
    # Nothing was applied: the Deployment is clusterctl's, unchanged.
    after = kc.get(Deployment, "mothership-operator", namespace="mothership-system")
    assert after.metadata.generation == before.metadata.generation
    managers = {entry.manager for entry in after.metadata.managedFields or []}
    assert "mothership-install" not in managers, managers


def test_a_cluster_api_cluster_comes_up_through_the_installed_providers(
    mothership_real: LocalMothership, kc: Client, initialized: tuple[Path, float]
) -> None:
    ms = mothership_real
    ns = f"cc-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata={"name": ns}))
    try:
        # The Cluster's network, as Cluster API users declare it: the tenant uses it.
        network = {
            "services": {"cidrBlocks": ["10.60.0.0/16"]},
            "pods": {"cidrBlocks": ["10.50.0.0/16"]},
        }
        manifest = hosted_cluster(
            ns, "demo", {"type": "NodePort"}, infra=True, cluster_network=network
        )
        applied = _run(ms, ["kubectl", "apply", "-f", "-"], stdin=manifest)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        started = time.monotonic()

        def available() -> bool:
            cluster = kc.get(CapiCluster, "demo", namespace=ns)
            conditions = (cluster.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)

        kube.wait_until("the Cluster API Cluster Available", available, TIMEOUT)
        print(f"\nCluster API Cluster Available {time.monotonic() - started:.1f}s after apply")
        described = _clusterctl(ms, "describe", "cluster", "demo", "-n", ns)
        assert described.returncode == 0, described.stderr
        print(described.stdout)
        lines = described.stdout.splitlines()
        cluster_row = next(row for row in lines if row.startswith("Cluster/demo "))
        assert " True " in cluster_row and "Available" in cluster_row
        control_plane = next(row for row in lines if "K0smotronControlPlane/demo-cp " in row)
        assert " True " in control_plane
        fetched = _clusterctl(ms, "get", "kubeconfig", "demo", "-n", ns)
        assert fetched.returncode == 0, fetched.stderr
        tenant = Path(ms.cfg.state_dir) / f"{ns}.kubeconfig"
        tenant.write_text(fetched.stdout)
        listed = _run(ms, ["kubectl", "--kubeconfig", str(tenant), "get", "ns", "-o", "name"])
        assert "namespace/kube-system" in listed.stdout, listed.stderr
        service_ip = _run(
            ms,
            ["kubectl", "--kubeconfig", str(tenant), "get", "service", "kubernetes", "-n",
             "default", "-o", "jsonpath={.spec.clusterIP}"],
        )  # fmt: skip
        assert service_ip.stdout == "10.60.0.1", service_ip.stdout + service_ip.stderr
    finally:
        try:
            kc.delete(CapiCluster, "demo", namespace=ns)
            kube.wait_until(
                "the Cluster API Cluster gone",
                lambda: not list(kc.list(CapiCluster, namespace=ns)),
                TIMEOUT,
            )
        except ApiError:
            pass
        kc.delete(Namespace, ns)
