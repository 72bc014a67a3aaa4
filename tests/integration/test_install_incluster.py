"""`mothership install` into the real-node local mothership: the operator runs in pods.

One module-scoped install, then in order: both replicas ready with exactly one leader;
a Cluster applied afterwards reconciled by the in-cluster operator; a `kubernetes`
distribution Cluster becoming Available from the local image (the install points the
operator at it) and serving through its kubeconfig Secret; the admission and
conversion webhooks served from the pods through their Service, seen through kubectl;
the printer columns; leadership handed over when the leader pod is killed (and the new
leader reconciles); `mothership uninstall` refusing while Clusters exist and leaving
nothing behind with --force.

No lock wrapper is needed: the session fixture (tests/conftest.py) starts its real node
beside any other local mothership's (in a machine when the host's network is taken).
Run it as it is:
python -m pytest <this file>
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import ValidatingWebhookConfiguration
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret, Service

from mothership.controllers.kubernetes_distribution import IMAGE_TEMPLATE_ENV
from mothership.install import apply, manifests
from mothership.testenv import kube, localoperator
from mothership.testenv.local import LocalMothership
from mothership.webhooks.defaults import DEFAULT_ETCD_IMAGE_ENV

NS = manifests.NAMESPACE
TIMEOUT = 180
Cluster = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")


class CLI:
    """`mothership` and the pinned `kubectl`, pointed at the real-node mothership."""

    def __init__(self, ms: LocalMothership) -> None:
        self.kubeconfig = ms.cfg.kubeconfig
        self.kubectl_bin = ms.cfg.bin_dir / "kubectl"
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def mothership(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "mothership.cli.main", *args]
        return subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl_bin), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def cli(mothership_real: LocalMothership) -> CLI:
    return CLI(mothership_real)


@pytest.fixture(scope="module")
def kc(mothership_real: LocalMothership) -> Client:
    return kube.client(mothership_real.cfg.kubeconfig)


@pytest.fixture(scope="module")
def installed(cli: CLI, kc: Client, request: pytest.FixtureRequest) -> Iterator[float]:
    """Install once for the module; yields the seconds `mothership install` took."""
    failed_before = request.session.testsfailed
    started = time.monotonic()
    result = cli.mothership("install", "--timeout", "300")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed" in result.stderr
    print(f"\n`mothership install` took {took:.1f}s:\n{result.stderr}")
    try:
        yield took
    finally:
        if request.session.testsfailed > failed_before:
            print_diagnostics(cli)
        # Whatever a failed test left: the session's mothership must end clean.
        if apply.installed_objects(kc):
            cli.mothership("uninstall", "--force", "--timeout", "300")


@pytest.fixture(scope="module")
def tenants(kc: Client, installed: float) -> Iterator[str]:
    name = f"tenants-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    try:
        kc.delete(Namespace, name)
    except ApiError as exc:
        if exc.status.code != 404:
            raise


def print_diagnostics(cli: CLI) -> None:
    """Pods, events and logs (current and previous containers) of the operator."""
    selector = "app.kubernetes.io/name=mothership"
    for args in (
        ("get", "pods", "-n", NS, "-o", "wide"),
        ("get", "events", "-n", NS, "--sort-by=.lastTimestamp"),
        ("logs", "-n", NS, "-l", selector, "--prefix", "--tail=150", "--previous"),
        ("logs", "-n", NS, "-l", selector, "--prefix", "--tail=150"),
    ):
        out = cli.kubectl(*args)
        print(f"\n$ kubectl {' '.join(args)}\n{out.stdout}{out.stderr}")


def restarts(kc: Client) -> dict[str, int]:
    return {
        p.metadata.name: sum(cs.restartCount for cs in p.status.containerStatuses or [])
        for p in operator_pods(kc)
    }


def operator_pods(kc: Client) -> list[Pod]:
    pods = kc.list(Pod, namespace=NS, labels=manifests.SELECTOR)
    return [p for p in pods if not p.metadata.deletionTimestamp]


def ready(pod: Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


def cluster_manifest(name: str, namespace: str, spec: dict[str, Any]) -> str:
    body = {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, **spec},
    }
    return yaml.safe_dump(body)


def exists(kc: Client, resource: Any, name: str, namespace: str | None = None) -> bool:
    try:
        kc.get(resource, name, namespace=namespace)
        return True
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise


# -- tests, in order ---------------------------------------------------------------------


def test_two_replicas_ready_one_leader(kc: Client, installed: float) -> None:
    pods = operator_pods(kc)
    assert len(pods) == 2 and all(ready(p) for p in pods), [
        (p.metadata.name, p.status.phase) for p in pods
    ]
    holder = apply.leader(kc, NS)
    assert holder in {p.metadata.name for p in pods}
    (container,) = pods[0].spec.containers
    assert container.image == f"{manifests.IMAGE_REPOSITORY}:{manifests.version()}"
    assert container.imagePullPolicy == "IfNotPresent"
    assert container.securityContext.readOnlyRootFilesystem is True
    # The webhook CA is the operator's, registered by it (the manifest carries none).
    config = kc.get(ValidatingWebhookConfiguration, "mothership-k0smotron")
    assert all(h.clientConfig.caBundle for h in config.webhooks)
    for pod in pods:
        became_ready = next(
            c.lastTransitionTime for c in pod.status.conditions if c.type == "Ready"
        )
        took = (became_ready - pod.metadata.creationTimestamp).total_seconds()
        print(f"pod {pod.metadata.name}: Ready {took:.0f}s after it was created")
    print(f"in-cluster operator ready {installed:.0f}s after `mothership install` started")


def test_cluster_is_reconciled_by_the_in_cluster_operator(
    cli: CLI, kc: Client, tenants: str
) -> None:
    result = cli.kubectl("apply", "-f", "-", stdin=cluster_manifest("demo", tenants, {}))
    assert result.returncode == 0, result.stderr
    for resource, name in (
        (StatefulSet, "kmc-demo"),
        (Service, "kmc-demo"),
        (ConfigMap, "kmc-demo-config"),
    ):
        kube.wait_until(
            f"{resource.__name__} {name}",
            lambda r=resource, n=name: exists(kc, r, n, tenants),
            TIMEOUT,
        )
    sts = kc.get(StatefulSet, "kmc-demo", namespace=tenants)
    managers = {m.manager for m in sts.metadata.managedFields or []}
    assert "mothership" in managers, managers
    # Defaults came from the mutating webhook in the pods (the version is never left empty).
    got = kc.get(Cluster, "demo", namespace=tenants)
    assert got.spec.get("version"), got.spec

    def conditions() -> bool:
        status = kc.get(Cluster, "demo", namespace=tenants).status or {}
        return bool(status.get("conditions"))

    kube.wait_until("status conditions on Cluster demo", conditions, TIMEOUT)

    # A JoinTokenRequest is taken up too (its status says the tenant API is not there:
    # the k0s image cannot be pulled on this machine).
    jtr = yaml.safe_dump(
        {
            "apiVersion": "k0smotron.io/v1beta2",
            "kind": "JoinTokenRequest",
            "metadata": {"name": "worker", "namespace": tenants},
            "spec": {"clusterName": "demo", "expiry": "1h"},
        }
    )
    assert cli.kubectl("apply", "-f", "-", stdin=jtr).returncode == 0

    def jtr_status() -> bool:
        got = cli.kubectl("get", "jtr", "worker", "-n", tenants, "-o", "json")
        return bool(json.loads(got.stdout).get("status", {}).get("conditions"))

    kube.wait_until("status conditions on JoinTokenRequest worker", jtr_status, TIMEOUT)


def test_admission_webhook_in_the_pods_refuses_with_its_message(cli: CLI, tenants: str) -> None:
    spec = {
        "storage": {
            "type": "kine",
            "kine": {"dataSourceURL": "postgres://db", "dataSourceSecretName": "db"},
        }
    }
    result = cli.kubectl("apply", "-f", "-", stdin=cluster_manifest("bad", tenants, spec))
    assert result.returncode != 0, result.stdout
    assert (
        "spec.storage.kine.dataSourceSecretName: cannot be combined with "
        "spec.storage.kine.dataSourceURL; keep one of them"
    ) in result.stderr, result.stderr


def test_conversion_webhook_in_the_pods_serves_v1beta1(cli: CLI, kc: Client, tenants: str) -> None:
    spec = {"storage": {"type": "kine", "kine": {"dataSourceURL": "postgres://conv"}}}
    result = cli.kubectl("apply", "-f", "-", stdin=cluster_manifest("conv", tenants, spec))
    assert result.returncode == 0, result.stderr
    got = cli.kubectl("get", "clusters.v1beta1.k0smotron.io", "conv", "-n", tenants, "-o", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["spec"]["kineDataSourceURL"] == "postgres://conv"
    assert cli.kubectl("delete", "kmc", "conv", "-n", tenants, "--wait=true").returncode == 0


def test_printer_columns(cli: CLI, tenants: str) -> None:
    result = cli.kubectl("get", "kmc", "-A")
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["NAMESPACE", "NAME", "REPLICAS", "READY", "VERSION", "ENDPOINT",
                      "AVAILABLE", "AGE"]  # fmt: skip
    row = next(line.split() for line in result.stdout.splitlines() if " demo " in line)
    assert row[0] == tenants and row[2] == "1"


def test_kubernetes_distribution_cluster_serves_from_the_local_image(
    cli: CLI, kc: Client, tenants: str, tmp_path: Path
) -> None:
    """On the local mothership the in-cluster operator, like the host one, points tenant
    control planes at the local image (nothing can be pulled here): a kine/SQLite Cluster
    becomes Available and its kubeconfig Secret reaches the tenant API."""
    (container,) = operator_pods(kc)[0].spec.containers
    env = {e.name: e.value for e in container.env or []}
    assert env.get(IMAGE_TEMPLATE_ENV) == localoperator.KUBERNETES_IMAGE_TEMPLATE, env
    assert env.get(DEFAULT_ETCD_IMAGE_ENV) == localoperator.DEFAULT_ETCD_IMAGE, env

    spec = {"distribution": "kubernetes", "storage": {"type": "kine"}}
    started = time.monotonic()
    result = cli.kubectl("apply", "-f", "-", stdin=cluster_manifest("k8s", tenants, spec))
    assert result.returncode == 0, result.stderr

    def available() -> bool:
        status = kc.get(Cluster, "k8s", namespace=tenants).status or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return conditions.get("Available") == "True"

    try:
        kube.wait_until("Available=True on Cluster k8s", available, 120)
    except Exception:
        for args in (
            ("get", "kmc,sts,pods", "-n", tenants, "-o", "wide"),
            ("describe", "pods", "-n", tenants, "-l", "app=k0smotron"),
            ("get", "kmc", "k8s", "-n", tenants, "-o", "yaml"),
        ):
            out = cli.kubectl(*args)
            print(f"\n$ kubectl {' '.join(args)}\n{out.stdout[-5000:]}{out.stderr}")
        raise
    print(f"kubernetes distribution (kine/SQLite): apply -> Available in "
          f"{time.monotonic() - started:.0f}s")  # fmt: skip
    sts = kc.get(StatefulSet, "kmc-k8s", namespace=tenants)
    images = {c.image for c in sts.spec.template.spec.containers}
    version = kc.get(Cluster, "k8s", namespace=tenants).status["version"]
    assert images == {localoperator.KUBERNETES_IMAGE_TEMPLATE.replace("{version}", version)}

    secret = kc.get(Secret, "k8s-kubeconfig", namespace=tenants)
    kubeconfig = tmp_path / "k8s.kubeconfig"
    kubeconfig.write_bytes(base64.b64decode(secret.data["value"]))
    got = cli.kubectl("--kubeconfig", str(kubeconfig), "get", "--raw", "/version")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["gitVersion"] == version


def test_killing_the_leader_hands_over(cli: CLI, kc: Client, tenants: str) -> None:
    assert set(restarts(kc).values()) == {0}, f"operator containers restarted: {restarts(kc)}"
    holder = apply.leader(kc, NS)
    others = {p.metadata.name for p in operator_pods(kc)} - {holder}
    assert holder and len(others) == 1
    started = time.monotonic()
    result = cli.kubectl("delete", "pod", holder, "-n", NS, "--grace-period=0", "--force")
    assert result.returncode == 0, result.stderr

    def new_leader() -> bool:
        # The standby, or the pod the Deployment starts in the killed one's place.
        now = apply.leader(kc, NS)
        return now is not None and now != holder

    kube.wait_until(f"another pod taking over from {holder}", new_leader, 90)
    print(
        f"leadership moved from {holder} to {apply.leader(kc, NS)} "
        f"in {time.monotonic() - started:.0f}s (standby was {others})"
    )
    # The new leader reconciles: a deleted child comes back.
    kc.delete(StatefulSet, "kmc-demo", namespace=tenants)
    kube.wait_until(
        "kmc-demo recreated by the new leader",
        lambda: exists(kc, StatefulSet, "kmc-demo", tenants),
        TIMEOUT,
    )
    kube.wait_until(
        "two operator pods ready again",
        lambda: len([p for p in operator_pods(kc) if ready(p)]) == 2,
        TIMEOUT,
    )


def test_operator_was_never_refused_by_rbac(cli: CLI) -> None:
    """Everything above ran under the manifest's RBAC; a missing rule shows up as a 403."""
    logs = cli.kubectl("logs", "-n", NS, "-l", "app.kubernetes.io/name=mothership", "--tail=-1")
    assert logs.returncode == 0, logs.stderr
    # A namespace being deleted refuses new content with a 403 too (an event about a Cluster
    # another module left terminating there): that is not the RBAC this test is about.
    refused = [
        line
        for line in logs.stdout.splitlines()
        if "forbidden" in line.lower() and "because it is being terminated" not in line
    ]
    assert not refused, "\n".join(refused[:10])


def test_uninstall_refuses_while_clusters_exist_then_removes_everything(
    cli: CLI, kc: Client, tenants: str
) -> None:
    refused = cli.mothership("uninstall")
    assert refused.returncode == 1, refused.stderr
    assert "Cluster(s) still exist" in refused.stderr and "--force" in refused.stderr
    assert f"{tenants}/demo" in refused.stderr
    assert exists(kc, Cluster, "demo", tenants)

    result = cli.mothership("uninstall", "--force", "--timeout", "300")
    assert result.returncode == 0, result.stderr
    assert "uninstalled" in result.stderr
    # Clusters are deleted in the foreground: their control planes are gone already.
    assert not exists(kc, StatefulSet, "kmc-demo", tenants)
    assert not exists(kc, Secret, "demo-ca", tenants)
    assert not exists(kc, Namespace, NS)
    for name in ("clusters.k0smotron.io", "jointokenrequests.k0smotron.io"):
        assert not exists(kc, CustomResourceDefinition, name)
    assert not exists(kc, ValidatingWebhookConfiguration, "mothership-k0smotron")
    assert apply.installed_objects(kc) == []


def test_kubectl_apply_of_the_checked_in_manifest_runs_it_too(
    cli: CLI, kc: Client, installed: float
) -> None:
    """deploy/install.yaml as is, by kubectl (the image is the one `mothership install`
    imported); applying it again while the operator runs conflicts with nothing."""
    from mothership.install import generate

    manifest = str(generate.INSTALL_YAML)
    first = cli.kubectl("apply", "--server-side", "-f", manifest)
    assert first.returncode == 0, first.stderr
    apply.wait(apply.operator_ready(kc, NS), TIMEOUT)
    apply.wait(apply.leader_elected(kc, NS), TIMEOUT)
    apply.wait(apply.ca_bundle_registered(kc), TIMEOUT)
    apply.wait(apply.webhooks_answering(kc, NS), TIMEOUT)
    again = cli.kubectl("apply", "--server-side", "-f", manifest)
    assert again.returncode == 0, again.stderr  # no field conflict with the operator's caBundle
    done, phase = apply.ca_bundle_registered(kc)()
    assert done, phase
    result = cli.mothership("uninstall", "--timeout", "300")
    assert result.returncode == 0, result.stderr
    assert apply.installed_objects(kc) == []
