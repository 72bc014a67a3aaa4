"""Control planes hosted in another cluster (spec.remoteHostCluster), with two motherships.

The Cluster lives in the kwok mothership, where the operator runs; its control plane's
objects are written in a second, API-only mothership through the kubeconfig Secret the
Cluster names. Nothing of the workload is left in the first, nothing owned crosses the two,
and deleting the Cluster deletes what it had in the second. The control plane really
serving from a hosting cluster is in test_kubernetes_distribution.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Event, Namespace, Secret, Service
from lightkube.types import PatchType

from mothership.controllers.remote_host import UID_LABEL
from mothership.controllers.remote_secrets import SOURCE_VERSION
from mothership.testenv import kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.ports import free_ports
from tests.integration.test_cluster_operator import Cluster, Operator, _condition, _exists

# The same fixtures as the operator tests: CRDs applied once, a namespace per test.
from tests.integration.test_cluster_operator import kc as kc
from tests.integration.test_cluster_operator import ns as ns

REF = "spec.remoteHostCluster.kubeconfigRef"


@pytest.fixture(scope="module")
def operator(
    mothership_kwok: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(mothership_kwok.cfg.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log")
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def far(mothership_api: LocalMothership) -> Client:
    """The hosting cluster: a second mothership, API only."""
    return kube.client(mothership_api.cfg.kubeconfig)


def _kubeconfig_secret(kc: Client, ns: str, text: str, name: str = "hosting") -> None:
    kc.create(Secret(metadata=ObjectMeta(name=name, namespace=ns), stringData={"value": text}))


def _hosted(name: str, ns: str, secret: str = "hosting") -> object:
    return Cluster(
        metadata=ObjectMeta(name=name, namespace=ns),
        spec={
            "replicas": 1,
            "version": "v1.35.4-k0s.0",
            "remoteHostCluster": {"kubeconfigRef": {"name": secret, "namespace": ns}},
        },
    )


def _theirs(far: Client, ns: str, uid: str) -> list[str]:
    """Every object in the hosting cluster that carries this Cluster's uid."""
    found = []
    for res in (StatefulSet, Service, ConfigMap, Secret):
        for obj in far.list(res, namespace=ns, labels={UID_LABEL: uid}):
            found.append(f"{res.__name__}/{obj.metadata.name}")
    return sorted(found)


def _events(kc: Client, ns: str, name: str) -> list[Event]:
    return [e for e in kc.list(Event, namespace=ns) if e.involvedObject.name == name]


def test_a_remotely_hosted_control_plane_lives_there_and_goes_with_its_cluster(
    kc: Client,
    far: Client,
    operator: Operator,
    ns: str,
    mothership_api: LocalMothership,
) -> None:
    _kubeconfig_secret(kc, ns, mothership_api.cfg.kubeconfig.read_text())
    kc.create(_hosted("far", ns))
    kube.wait_until(
        "the StatefulSet in the hosting cluster",
        lambda: _exists(far, StatefulSet, "kmc-far", ns),
        60,
    )
    uid = kc.get(Cluster, "far", namespace=ns).metadata.uid
    assert far.get(Namespace, ns).metadata.labels["app.kubernetes.io/created-by"] == "mothership"

    # Everything of the workload is there, labelled with the Cluster's uid, owned by nothing.
    kube.wait_until(
        "the copies of the Secrets the pods mount",
        lambda: "Secret/far-ca" in _theirs(far, ns, uid),
        30,
    )
    placed = _theirs(far, ns, uid)
    for expected in ("StatefulSet/kmc-far", "Service/kmc-far", "ConfigMap/kmc-far-config"):
        assert expected in placed, placed
    for ref in placed:
        kind, name = ref.split("/")
        res = {"StatefulSet": StatefulSet, "Service": Service, "ConfigMap": ConfigMap}.get(
            kind, Secret
        )
        assert not far.get(res, name, namespace=ns).metadata.ownerReferences, ref
    # None of it in the mothership; the PKI of record stays here, its copy is identical.
    for res, name in (
        (StatefulSet, "kmc-far"),
        (Service, "kmc-far"),
        (ConfigMap, "kmc-far-config"),
    ):
        assert not _exists(kc, res, name, ns), f"{res.__name__}/{name} in the mothership"
    here, there = kc.get(Secret, "far-ca", namespace=ns), far.get(Secret, "far-ca", namespace=ns)
    assert here.data == there.data
    assert there.metadata.annotations[SOURCE_VERSION] == here.metadata.resourceVersion
    assert not there.metadata.finalizers, "the copy holds nothing in the hosting cluster"
    # The users' kubeconfig is written here, to the address the hosting cluster's Service has.
    cluster_ip = far.get(Service, "kmc-far", namespace=ns).spec.clusterIP
    kube.wait_until(
        "the users' kubeconfig in the mothership",
        lambda: _exists(kc, Secret, "far-kubeconfig", ns),
        30,
    )
    text = base64.b64decode(kc.get(Secret, "far-kubeconfig", namespace=ns).data["value"]).decode()
    assert f"https://{cluster_ip}:30443" in text
    assert not _exists(far, Secret, "far-kubeconfig", ns), "users' credentials stay home"
    available = _condition(kc, "far", ns, "Available")
    assert available and available["status"] == "False", available
    assert available["reason"] == "WaitingForReplicas", available  # no kubelet there

    # The hosting cluster's objects are watched: one deleted there comes back.
    far.delete(ConfigMap, "kmc-far-config", namespace=ns)
    kube.wait_until(
        "the ConfigMap written again in the hosting cluster",
        lambda: _exists(far, ConfigMap, "kmc-far-config", ns),
        30,
    )

    # Where the control plane runs does not change by a spec edit.
    with pytest.raises(ApiError) as refused:
        kc.patch(
            Cluster,
            "far",
            {"spec": {"remoteHostCluster": {"kubeconfigRef": {"name": "other", "namespace": ns}}}},
            namespace=ns,
            patch_type=PatchType.MERGE,
        )
    assert f"{REF}: cannot change from Secret {ns}/hosting key value" in str(refused.value)

    kc.delete(Cluster, "far", namespace=ns)
    kube.wait_until("the Cluster gone", lambda: not _exists(kc, Cluster, "far", ns), 60)
    kube.wait_until(
        "nothing of it left in the hosting cluster", lambda: not _theirs(far, ns, uid), 30
    )
    assert any(e.reason == "RemoteObjectsDeleted" for e in _events(kc, ns, "far"))
    assert _exists(far, Namespace, ns, ""), "the namespace may hold the user's own things"


def test_a_missing_or_unusable_kubeconfig_is_said_and_mending_it_proceeds(
    kc: Client,
    far: Client,
    operator: Operator,
    ns: str,
    mothership_api: LocalMothership,
) -> None:
    kc.create(_hosted("wait", ns))

    def reason() -> str | None:
        available = _condition(kc, "wait", ns, "Available")
        return available["reason"] if available else None

    kube.wait_until("a missing Secret said", lambda: reason() == "RemoteKubeconfigMissing", 30)
    message = _condition(kc, "wait", ns, "Available")["message"]
    assert message == (
        f"Secret {ns}/hosting (key value, named by {REF}) does not exist; create it with the "
        "hosting cluster's kubeconfig under key value"
    )
    assert not _exists(kc, StatefulSet, "kmc-wait", ns), "nothing is made in the mothership"

    # A kubeconfig naming a server nobody listens on.
    closed = free_ports(["closed"])["closed"]
    text = mothership_api.cfg.kubeconfig.read_text()
    server = next(line.split()[-1] for line in text.splitlines() if "server:" in line)
    _kubeconfig_secret(kc, ns, text.replace(server, f"https://127.0.0.1:{closed}"))
    kube.wait_until("an unreachable host said", lambda: reason() == "RemoteHostUnreachable", 60)
    message = _condition(kc, "wait", ns, "Available")["message"]
    assert message.startswith(
        f"the hosting cluster in Secret {ns}/hosting (key value, named by {REF}) cannot be used: "
    ), message
    assert "no connection (refused, or no route to the server)" in message, message
    assert any(e.reason == "RemoteHostUnreachable" for e in _events(kc, ns, "wait"))

    # Mended: the control plane is made there.
    kc.patch(
        Secret,
        "hosting",
        {"stringData": {"value": text}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )
    kube.wait_until(
        "the StatefulSet in the hosting cluster once the Secret is right",
        lambda: _exists(far, StatefulSet, "kmc-wait", ns),
        60,
    )
    kc.delete(Cluster, "wait", namespace=ns)
    kube.wait_until("the Cluster gone", lambda: not _exists(kc, Cluster, "wait", ns), 60)
    assert not _exists(far, StatefulSet, "kmc-wait", ns)
