"""The webhooks, registered with a real API server and driven by the real kubectl.

Unit tests prove the rules; only the API server proves the wiring: that it reaches the
server over TLS with our caBundle, that denials and warnings come out of kubectl as users
will see them, that patches are applied, and that the conversion webhook really serves
v1beta1 reads and writes.

The API server is shared by the whole session, so everything registered here is removed
again (webhooks unregistered, CRD conversion back to None) and every object goes with its
namespace. The webhook server runs in a thread with its own event loop, because kubectl and
the waits are blocking.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
import subprocess
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from lightkube import AsyncClient, Client, KubeConfig, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.authentication_v1 import SelfSubjectReview
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

from mothership.api import generate
from mothership.api.k0smotron.v1beta2 import REQUESTER_ANNOTATION
from mothership.testenv import kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.ports import free_ports
from mothership.webhooks import cluster_lister, register, serve, unregister, webhook_tls
from mothership.webhooks.defaults import DEFAULT_K0S_VERSION
from mothership.webhooks.registration import CONFIG_NAME, CRD_NAMES

V1, V2 = "k0smotron.io/v1beta1", "k0smotron.io/v1beta2"
TIMEOUT = 60
ClusterV2 = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")

T = TypeVar("T")


class WebhookThread:
    """The webhook server and its API client, on an event loop in a thread of its own."""

    def __init__(self, kubeconfig: Path, tls_dir: Path) -> None:
        self.kubeconfig, self.tls_dir = kubeconfig, tls_dir
        self.port = free_ports(["webhook"])["webhook"]
        self.url_base = f"https://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="webhooks", daemon=True)
        self.thread.start()
        self.client: AsyncClient | None = None
        self.runner: Any = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    async def start(self) -> None:
        self.client = AsyncClient(
            config=KubeConfig.from_file(self.kubeconfig), field_manager="mothership"
        )
        tls = webhook_tls(self.tls_dir)
        self.runner = await serve("127.0.0.1", self.port, self.tls_dir, cluster_lister(self.client))
        await register(self.client, url_base=self.url_base, ca_pem=tls.ca_pem)

    async def stop(self) -> None:
        try:
            if self.client is not None:
                await unregister(self.client)
        finally:
            if self.runner is not None:
                await self.runner.stop()
            if self.client is not None:
                await self.client.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


class Kubectl:
    def __init__(self, ms: LocalMothership) -> None:
        self.binary = str(ms.cfg.bin_dir / "kubectl")
        self.env = {**os.environ, "KUBECONFIG": str(ms.cfg.kubeconfig)}

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=TIMEOUT,
            check=False,
        )

    def apply(self, *docs: dict[str, Any], dry_run: bool = False) -> subprocess.CompletedProcess:
        extra = ["--dry-run=server"] if dry_run else []
        return self("apply", *extra, "-f", "-", stdin=yaml.safe_dump_all(docs))

    def get_json(self, resource: str, name: str, namespace: str) -> dict[str, Any]:
        result = self("get", resource, name, "-n", namespace, "-o", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def cluster(name: str, namespace: str, spec: dict[str, Any], version: str = V2) -> dict:
    return {
        "apiVersion": version,
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _gone(kc: Client, kind: Any, name: str, namespace: str | None = None) -> bool:
    try:
        kc.get(kind, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return True
        raise
    return False


def _install_crds(kc: Client) -> None:
    """Server-side apply the checked-in CRDs; another test may have installed them already."""
    docs = [
        doc
        for path in sorted(generate.DEFAULT_OUT.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    for doc in docs:
        name = doc["metadata"]["name"]
        if not _gone(kc, CustomResourceDefinition, name):
            existing = kc.get(CustomResourceDefinition, name)
            if existing.metadata and existing.metadata.deletionTimestamp:
                # Another module's teardown, still running.
                kube.wait_until(
                    f"{name} deleted",
                    functools.partial(_gone, kc, CustomResourceDefinition, name),
                    TIMEOUT,
                )
        kc.apply(codecs.from_dict(doc), force=True)
    for doc in docs:
        name = doc["metadata"]["name"]

        def established(n: str = name) -> bool:
            crd = kc.get(CustomResourceDefinition, n)
            conditions = (crd.status.conditions if crd.status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        kube.wait_until(f"{name} Established", established, TIMEOUT)


@pytest.fixture(scope="module")
def kc(mothership_api: LocalMothership) -> Client:
    return kube.client(mothership_api.cfg.kubeconfig, field_manager="mothership-webhook-test")


@pytest.fixture(scope="module")
def kubectl(mothership_api: LocalMothership) -> Kubectl:
    return Kubectl(mothership_api)


@pytest.fixture(scope="module")
def namespaces(kc: Client) -> Iterator[tuple[str, str]]:
    names = (_unique("wh-a"), _unique("wh-b"))
    for name in names:
        kc.create(Namespace(metadata=ObjectMeta(name=name)))
    yield names
    for name in names:
        kc.delete(Namespace, name)
    for name in names:
        kube.wait_until(
            f"namespace {name} deleted", functools.partial(_gone, kc, Namespace, name), TIMEOUT
        )


@pytest.fixture(scope="module")
def webhooks(
    mothership_api: LocalMothership,
    kc: Client,
    kubectl: Kubectl,
    namespaces: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebhookThread]:
    _install_crds(kc)
    server = WebhookThread(mothership_api.cfg.kubeconfig, tmp_path_factory.mktemp("webhook-tls"))
    try:
        server.run(server.start())
        _wait_until_live(kc, kubectl, namespaces[0])
        yield server
    finally:
        try:
            server.run(server.stop())
        finally:
            server.close()
        _assert_unregistered(kc)


def _wait_until_live(kc: Client, kubectl: Kubectl, namespace: str) -> None:
    """The API server picks registrations up through informers, a moment after the write."""
    probe = cluster("probe", namespace, {"replicas": 1})
    seen: list[str] = [""]

    def mutating_live() -> bool:
        result = kubectl(
            "apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(probe)
        )
        seen[0] = result.stderr
        return json.loads(result.stdout)["spec"].get("version") == DEFAULT_K0S_VERSION

    _wait_until("mutating webhook active", mutating_live, seen)
    unsuffixed = cluster("probe", namespace, {"version": "v1.34.2"})

    def validating_live() -> bool:
        result = kubectl.apply(unsuffixed, dry_run=True)
        seen[0] = result.stderr
        return result.returncode == 0 and "Warning: spec.version" in result.stderr

    _wait_until("validating webhook active", validating_live, seen)
    # Conversion: a v1beta2 object with a kine source reads through v1beta1 as
    # kineDataSourceURL only when the webhook converts (strategy None cannot map it).
    name = _unique("conversion-probe")
    body = {"storage": {"type": "kine", "kine": {"dataSourceURL": "postgres://probe"}}}
    kc.create(ClusterV2(metadata=ObjectMeta(name=name, namespace=namespace), spec=body))

    def conversion_live() -> bool:
        got = kubectl.get_json("clusters.v1beta1.k0smotron.io", name, namespace)
        return got["spec"].get("kineDataSourceURL") == "postgres://probe"

    kube.wait_until("conversion webhook active", conversion_live, TIMEOUT)
    kc.delete(ClusterV2, name, namespace=namespace)


def _wait_until(what: str, check: Any, seen: list[str]) -> None:
    try:
        kube.wait_until(what, check, TIMEOUT)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; kubectl said: {seen[0]}") from None


def _assert_unregistered(kc: Client) -> None:
    for kind in (MutatingWebhookConfiguration, ValidatingWebhookConfiguration):
        assert _gone(kc, kind, CONFIG_NAME)
    for name in CRD_NAMES:
        spec = kc.get(CustomResourceDefinition, name).spec
        assert spec.conversion is not None
        assert spec.conversion.strategy == "None" and spec.conversion.webhook is None


def _refused(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0, f"accepted:\n{result.stdout}\n{result.stderr}"
    for needle in needles:
        assert needle in result.stderr, result.stderr


def _accepted(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr


# --- tests ------------------------------------------------------------------------------------


def test_malformed_version_is_refused(
    webhooks: WebhookThread, kubectl: Kubectl, kc: Client, namespaces: tuple[str, str]
) -> None:
    name = _unique("bad-version")
    result = kubectl.apply(cluster(name, namespaces[0], {"version": "1.30"}))
    _refused(
        result,
        'spec.version: "1.30" is not a k0s version; use vX.Y.Z-k0s.N, e.g. v1.35.4-k0s.0',
    )
    assert _gone(kc, ClusterV2, name, namespaces[0])


def test_a_name_too_long_for_its_generated_names_is_refused(
    webhooks: WebhookThread, kubectl: Kubectl, kc: Client, namespaces: tuple[str, str]
) -> None:
    name = _unique("x" * 29)  # 36 characters: one more than the longest that fits
    result = kubectl.apply(cluster(name, namespaces[0], {}))
    _refused(
        result,
        f'metadata.name: "{name}" (36 characters) is too long: the generated name '
        f'"kmc-prometheus-{name}-config-nginx" (64 characters',
        "use a name of at most 35 characters",
    )
    assert _gone(kc, ClusterV2, name, namespaces[0])
    _accepted(kubectl.apply(cluster(name[1:], namespaces[0], {})))


def test_every_problem_is_listed(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    name = _unique("several")
    spec = {"version": "v1.30", "persistence": {"type": "hostPath"}}
    result = kubectl.apply(cluster(name, namespaces[0], spec))
    _refused(
        result,
        f'The Cluster "{name}" is invalid',
        'spec.version: "v1.30" is not a k0s version',
        "spec.persistence.hostPath: required when spec.persistence.type is hostPath",
    )


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        (
            V2,
            {
                "storage": {
                    "type": "kine",
                    "kine": {"dataSourceURL": "postgres://db", "dataSourceSecretName": "db"},
                }
            },
            "spec.storage.kine.dataSourceSecretName: cannot be combined with "
            "spec.storage.kine.dataSourceURL; keep one of them",
        ),
        (
            V1,
            {"kineDataSourceURL": "postgres://db", "kineDataSourceSecretName": "db"},
            "spec.kineDataSourceSecretName: cannot be combined with spec.kineDataSourceURL; "
            "keep one of them",
        ),
    ],
)
def test_kine_with_url_and_secret_is_refused(
    webhooks: WebhookThread,
    kubectl: Kubectl,
    namespaces: tuple[str, str],
    version: str,
    spec: dict,
    expected: str,
) -> None:
    _refused(kubectl.apply(cluster(_unique("kine"), namespaces[0], spec, version)), expected)


def test_node_port_clash_names_the_other_cluster(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    ns_a, ns_b = namespaces
    # Clear of the defaults 30132 and 30443, which other tests' Clusters hold (port + 1
    # and port + 3 are taken too: 30442 once clashed with a documented example's 30443).
    port = random.randrange(30500, 32700, 2)
    first, second = _unique("np-first"), _unique("np-second")
    service = {"type": "NodePort", "apiPort": port, "konnectivityPort": port + 1}
    _accepted(kubectl.apply(cluster(first, ns_a, {"service": service})))
    clash = {"type": "NodePort", "apiPort": port + 1, "konnectivityPort": port + 3}
    _refused(
        kubectl.apply(cluster(second, ns_b, {"service": clash})),
        f"spec.service.apiPort: node port {port + 1} is already used by Cluster {ns_a}/{first} "
        "(its spec.service.konnectivityPort); pick a free port in 30000-32767",
    )
    free = {"type": "NodePort", "apiPort": port + 2, "konnectivityPort": port + 3}
    _accepted(kubectl.apply(cluster(second, ns_b, {"service": free})))


def test_warning_reaches_kubectl_and_the_object_is_created(
    webhooks: WebhookThread, kubectl: Kubectl, kc: Client, namespaces: tuple[str, str]
) -> None:
    name = _unique("ingress")
    spec = {"ingress": {"apiHost": f"{name}.example", "konnectivityHost": f"k-{name}.example"}}
    result = kubectl.apply(cluster(name, namespaces[0], spec))
    _accepted(result)
    assert "Warning: spec.ingress.annotations: none set;" in result.stderr, result.stderr
    stored = kc.get(ClusterV2, name, namespace=namespaces[0])
    assert stored.spec["ingress"]["deploy"] is True  # defaulted by the mutating webhook


def test_defaults_are_stored(
    webhooks: WebhookThread, kubectl: Kubectl, kc: Client, namespaces: tuple[str, str]
) -> None:
    name = _unique("defaults")
    _accepted(kubectl.apply(cluster(name, namespaces[0], {"replicas": 3})))
    spec = kc.get(ClusterV2, name, namespace=namespaces[0]).spec
    assert spec["version"] == DEFAULT_K0S_VERSION
    assert spec["replicas"] == 3  # the user's value stays


def test_version_skew_is_refused_on_update(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    name = _unique("skew")
    _accepted(kubectl.apply(cluster(name, namespaces[0], {"version": "v1.33.1-k0s.0"})))
    _refused(
        kubectl.apply(cluster(name, namespaces[0], {"version": "v1.35.4-k0s.0"})),
        "spec.version: cannot upgrade from v1.33.1-k0s.0 to v1.35.4-k0s.0 in one step",
    )
    _refused(
        kubectl.apply(cluster(name, namespaces[0], {"version": "v1.32.0-k0s.0"})),
        "spec.version: cannot downgrade from v1.33.1-k0s.0 to v1.32.0-k0s.0",
    )
    _accepted(kubectl.apply(cluster(name, namespaces[0], {"version": "v1.34.3-k0s.0"})))


def test_nats_cluster_cannot_be_scaled(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    name = _unique("nats")
    _accepted(kubectl.apply(cluster(name, namespaces[0], {"storage": {"type": "nats"}})))
    _refused(
        kubectl("scale", f"clusters.k0smotron.io/{name}", "-n", namespaces[0], "--replicas=3"),
        "spec.replicas: cannot change from 1 to 3 (also through kubectl scale) with "
        "spec.storage.type nats",
    )


def test_v1beta1_cluster_converts_both_ways(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    name, ns = _unique("v1"), namespaces[1]
    url = "postgres://k0s:secret@db.example:5432/k0s"
    spec = {
        "version": "v1.34.2-k0s.0",
        "replicas": 2,
        "kineDataSourceURL": url,
        "controllerPlaneFlags": ["--debug=true"],
        "service": {"type": "ClusterIP", "apiPort": 6443, "konnectivityPort": 8132},
    }
    result = kubectl.apply(cluster(name, ns, spec, version=V1))
    _accepted(result)
    v2 = kubectl.get_json("clusters.v1beta2.k0smotron.io", name, ns)
    assert v2["apiVersion"] == V2
    assert v2["spec"]["storage"]["type"] == "kine"
    assert v2["spec"]["storage"]["kine"]["dataSourceURL"] == url
    assert v2["spec"]["controlPlaneFlags"] == ["--debug=true"]
    assert "kineDataSourceURL" not in v2["spec"]
    v1 = kubectl.get_json("clusters.v1beta1.k0smotron.io", name, ns)
    assert v1["apiVersion"] == V1
    assert {key: v1["spec"].get(key) for key in spec} == spec
    assert "storage" not in v1["spec"]


def test_join_token_request_bad_role_is_refused(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    request: dict[str, Any] = {
        "apiVersion": V2,
        "kind": "JoinTokenRequest",
        "metadata": {"name": _unique("jtr"), "namespace": namespaces[0]},
        "spec": {"clusterName": "some-cluster", "role": "master"},
    }
    _refused(
        kubectl.apply(request),
        'spec.role: "master" is not valid; use one of worker, controller',
    )
    request["spec"]["role"] = "worker"
    _accepted(kubectl.apply(request))


def test_join_token_requests_record_who_asked_and_it_cannot_be_rewritten(
    webhooks: WebhookThread, kc: Client, namespaces: tuple[str, str]
) -> None:
    me = kc.create(SelfSubjectReview()).status.userInfo.username
    jtr = create_namespaced_resource(
        "k0smotron.io", "v1beta2", "JoinTokenRequest", "jointokenrequests"
    )
    name = _unique("audit")
    forged = {REQUESTER_ANNOTATION: "someone-else"}
    made = kc.create(
        jtr(
            metadata=ObjectMeta(name=name, namespace=namespaces[0], annotations=forged),
            spec={"clusterName": "some-cluster"},
        )
    )
    assert made.metadata.annotations[REQUESTER_ANNOTATION] == me
    patched = kc.patch(
        jtr, name, {"metadata": {"annotations": forged}}, namespace=namespaces[0],
        patch_type=PatchType.MERGE,
    )  # fmt: skip
    assert patched.metadata.annotations[REQUESTER_ANNOTATION] == me
    kc.delete(jtr, name, namespace=namespaces[0])


def test_cluster_api_kinds_are_refused_with_the_field_and_the_fix(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    machine: dict[str, Any] = {
        "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2",
        "kind": "RemoteMachine",
        "metadata": {"name": _unique("rm"), "namespace": namespaces[0]},
        "spec": {"port": 22},
    }
    _refused(kubectl.apply(machine), "spec.address: give the machine's address, or spec.pool")
    machine["spec"] = {"pool": "lab"}
    _accepted(kubectl.apply(machine))

    control_plane: dict[str, Any] = {
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1",
        "kind": "K0smotronControlPlane",
        "metadata": {"name": _unique("cp"), "namespace": namespaces[0]},
        "spec": {"version": "1.33", "kineDataSourceURL": "postgres://db",
                 "kineDataSourceSecretName": "s"},
    }  # fmt: skip
    out = kubectl.apply(control_plane)
    _refused(out, "spec.kineDataSourceSecretName: cannot be combined with spec.kineDataSourceURL")
    assert "spec.version" in out.stderr, out.stderr

    config: dict[str, Any] = {
        "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2",
        "kind": "K0sWorkerConfig",
        "metadata": {"name": _unique("wc"), "namespace": namespaces[0]},
        "spec": {"args": ["--enable-cloud-provider"]},
    }
    _refused(kubectl.apply(config), "spec.args[0]: '--enable-cloud-provider' is not a worker flag")
    config["spec"] = {"provisioner": {"type": "ignition"}}
    accepted = kubectl.apply(config)
    _accepted(accepted)
    assert "UnsupportedFormat" in accepted.stderr  # kubectl prints admission warnings


EXAMPLES = Path(__file__).parent / "data" / "k0smotron-capi-examples.yaml"


def test_k0smotrons_documented_cluster_api_examples_are_accepted_as_written(
    webhooks: WebhookThread, kubectl: Kubectl, namespaces: tuple[str, str]
) -> None:
    docs = [d for d in yaml.safe_load_all(EXAMPLES.read_text()) if d]
    assert len(docs) >= 12
    ns = namespaces[0]
    for doc in docs:
        doc["metadata"]["name"] = _unique(doc["metadata"]["name"])
        result = kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(doc))
        _accepted(result)
        errors = [line for line in result.stderr.splitlines() if "deprecated" not in line]
        assert not errors, f"{doc['kind']} {doc['metadata']['name']}: {result.stderr}"
    # The v1beta1 spellings land in their v1beta2 places, and read back as written.
    clean_up = next(d for d in docs if d["spec"] and "customCleanUpCommands" in d["spec"])
    name = clean_up["metadata"]["name"]
    stored = kubectl.get_json("remotemachines.v1beta2.infrastructure.cluster.x-k8s.io", name, ns)
    assert stored["spec"]["cleanUpCommands"] == clean_up["spec"]["customCleanUpCommands"]
    assert "customCleanUpCommands" not in stored["spec"]
    as_v1 = kubectl.get_json("remotemachines.v1beta1.infrastructure.cluster.x-k8s.io", name, ns)
    assert as_v1["spec"]["customCleanUpCommands"] == clean_up["spec"]["customCleanUpCommands"]
    pooled = next(d for d in docs if d["kind"] == "PooledRemoteMachine")
    got = kubectl.get_json(
        "pooledremotemachines.v1beta2.infrastructure.cluster.x-k8s.io",
        pooled["metadata"]["name"],
        ns,
    )
    assert got["spec"]["machine"]["address"] == pooled["spec"]["machine"]["address"]
