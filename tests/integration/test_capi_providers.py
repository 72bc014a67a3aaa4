"""K0smotronControlPlane and K0sWorkerConfig under real Cluster API, on the real-node
mothership.

A Cluster API `Cluster` whose controlPlaneRef names a K0smotronControlPlane (kubernetes
distribution, kine): Cluster API adopts the control plane, the operator runs it as a
k0smotron.io Cluster named after the Cluster, reports the contract's status and sets the
endpoint; Cluster API's own cluster cache connects through the `<cluster>-kubeconfig` Secret
(RemoteConnectionProbe), `clusterctl get kubeconfig` and `describe` work, pausing stops the
writes, and deleting the Cluster removes everything. A Machine with a K0sWorkerConfig gets
bootstrap data that, run on an edge machine as the SSH provider will run it, joins a Node
named after the Machine; deleting the Machine revokes its token.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event, Namespace, Node, Secret
from lightkube.types import PatchType

from mothership.api.bootstrap.v1beta2 import SUCCESS_SENTINEL
from mothership.api.controlplane.v1beta2 import FINALIZER
from mothership.render import worker_bootstrap
from mothership.testenv import (
    capi_pool,
    kube,
    localcapi,
    machines,
    netns,
    paths,
    ssh_client_image,
)
from mothership.testenv.k0s_tenant import air_gapped_k0s_config, apply_user_cni
from mothership.testenv.local import LocalMothership
from mothership.testenv.localoperator import node_mirror_args
from mothership.testenv.pins import K0S_IMAGE_REPO, K0S_KUBERNETES_VERSION, K0S_VERSION
from tests.crds import apply_checked_in_crds
from tests.nodes import node_ready
from tests.operator_proc import Operator
from tests.poller import Poller

IMAGE_TEMPLATE = "localhost/mothership/control-plane:{version}"
VERSION = "v1.35.4"
K0S_TENANT_VERSION = K0S_VERSION.replace("+", "-")
CP_GROUP = "controlplane.cluster.x-k8s.io"
CapiCluster = create_namespaced_resource("cluster.x-k8s.io", "v1beta2", "Cluster", "clusters")
ControlPlane = create_namespaced_resource(
    CP_GROUP, "v1beta2", "K0smotronControlPlane", "k0smotroncontrolplanes"
)
HostedCluster = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")
Machine = create_namespaced_resource("cluster.x-k8s.io", "v1beta2", "Machine", "machines")
WorkerConfig = create_namespaced_resource(
    "bootstrap.cluster.x-k8s.io", "v1beta2", "K0sWorkerConfig", "k0sworkerconfigs"
)
JTR = create_namespaced_resource("k0smotron.io", "v1beta2", "JoinTokenRequest", "jointokenrequests")
# An infrastructure kind standing in for a provider (the SSH one comes later): Cluster API
# finds the contract version of a Machine's infrastructureRef on its CRD, as for any provider.
INFRA_GROUP = "infrastructure.example.com"
INFRA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": f"examplemachines.{INFRA_GROUP}",
        "labels": {"cluster.x-k8s.io/v1beta2": "v1alpha1"},
    },
    "spec": {
        "group": INFRA_GROUP,
        "scope": "Namespaced",
        "names": {"kind": "ExampleMachine", "plural": "examplemachines",
                  "singular": "examplemachine"},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {
                          "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def ms(mothership_real: LocalMothership) -> Iterator[LocalMothership]:
    mothership_real.start_capi(timeout=240)
    yield mothership_real
    mothership_real.stop_capi()


@pytest.fixture(scope="module")
def kc(ms: LocalMothership) -> Client:
    return apply_checked_in_crds(kube.client(ms.cfg.kubeconfig))


@pytest.fixture(scope="module")
def operator(
    ms: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(
        ms.cfg.kubeconfig,
        tmp_path_factory.mktemp("op") / "operator.log",
        IMAGE_TEMPLATE,
        IMAGE_TEMPLATE.format(version=VERSION),
        extra_args=(f"--k0s-image-repository={K0S_IMAGE_REPO}", *node_mirror_args(ms.cfg)),
        identity="capi-control-plane-test",
        node_netns=ms.cfg.node_netns,
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture
def ns(kc: Client) -> Iterator[str]:
    name = f"cp-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata={"name": name}))
    yield name
    kc.delete(Namespace, name)


def _run(ms: LocalMothership, argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """A command in the node's network namespace, where Service addresses route."""
    return subprocess.run(
        netns.argv(ms.cfg.node_netns, argv),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        env={"PATH": f"{ms.cfg.bin_dir}:/usr/bin:/bin", "HOME": str(ms.cfg.state_dir),
             "CLUSTERCTL_DISABLE_VERSIONCHECK": "true"},
    )  # fmt: skip


def _kubectl(ms: LocalMothership, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return _run(ms, ["kubectl", "--kubeconfig", str(ms.cfg.kubeconfig), *args], stdin)


def _clusterctl(ms: LocalMothership, *args: str) -> subprocess.CompletedProcess[str]:
    clusterctl = str(paths.capi_bin_dir() / "clusterctl")
    return _run(ms, [clusterctl, *args, "--kubeconfig", str(ms.cfg.kubeconfig)])


def _diagnose(ms: LocalMothership, ns: str, op: Operator) -> str:
    parts = [
        _kubectl(
            ms,
            "-n",
            ns,
            "get",
            "clusters.cluster.x-k8s.io,k0smotroncontrolplanes,"
            "clusters.k0smotron.io,sts,pods,svc,secrets",
            "-o",
            "wide",
        ).stdout,
        _kubectl(
            ms, "-n", ns, "get", "k0smotroncontrolplanes,clusters.cluster.x-k8s.io", "-o", "yaml"
        ).stdout[-6000:],
        "--- operator log\n" + op.log.read_text()[-4000:],
        "--- cluster-api log\n"
        + (ms.cfg.state_dir / "logs" / f"{localcapi.COMPONENT}.log").read_text()[-3000:],
    ]
    return "\n".join(parts)


def _wait(
    ms: LocalMothership, ns: str, op: Operator, what: str, check: Any, timeout: float
) -> None:
    try:
        kube.wait_until(what, check, timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(ms, ns, op)}") from exc


def _status(kc: Client, resource: Any, name: str, ns: str) -> dict[str, Any]:
    return dict(kc.get(resource, name, namespace=ns).get("status") or {})


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def _gone(kc: Client, resource: Any, name: str, ns: str) -> bool:
    try:
        kc.get(resource, name, namespace=ns)
    except ApiError as exc:
        return exc.status.code == 404
    return False


def test_a_capi_cluster_gets_a_hosted_control_plane_and_loses_it_on_delete(
    ms: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    applied = _kubectl(ms, "apply", "-f", "-", stdin=capi_pool.hosted_cluster(ns, "hosted"))
    assert applied.returncode == 0, applied.stderr

    def initialized() -> bool:
        init = _status(kc, ControlPlane, "hosted-cp", ns).get("initialization") or {}
        return bool(init.get("controlPlaneInitialized"))

    _wait(ms, ns, operator, "controlPlaneInitialized on the control plane", initialized, 300)

    # Cluster API adopted the control plane; the operator made one hosted Cluster for it.
    cp = kc.get(ControlPlane, "hosted-cp", namespace=ns)
    assert FINALIZER in (cp.metadata.finalizers or [])
    assert [r.kind for r in cp.metadata.ownerReferences or []] == ["Cluster"]
    hosted = kc.get(HostedCluster, "hosted", namespace=ns)
    assert hosted.metadata.labels["cluster.x-k8s.io/cluster-name"] == "hosted"
    (owner,) = hosted.metadata.ownerReferences
    assert (owner.kind, owner.name, owner.controller) == (
        "K0smotronControlPlane",
        "hosted-cp",
        True,
    )
    status = _status(kc, ControlPlane, "hosted-cp", ns)
    assert status["externalManagedControlPlane"] is True
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (1, 1, 1)
    assert status["version"] == VERSION
    assert status["selector"] == hosted["status"]["selector"]
    assert _condition(status, "Available")["status"] == "True"

    # Cluster API's side: the endpoint, the initialized control plane, and its own connection
    # to the tenant through the kubeconfig Secret.
    capi = kc.get(CapiCluster, "hosted", namespace=ns)
    endpoint = capi["spec"]["controlPlaneEndpoint"]
    assert endpoint == {"host": hosted["status"]["externalAddress"], "port": 30443}

    def capi_sees_it() -> bool:
        st = _status(kc, CapiCluster, "hosted", ns)
        return (
            bool((st.get("initialization") or {}).get("controlPlaneInitialized"))
            and _condition(st, "ControlPlaneAvailable").get("status") == "True"
            and _condition(st, "RemoteConnectionProbe").get("status") == "True"
        )

    _wait(ms, ns, operator, "Cluster API: control plane available and reachable", capi_sees_it, 180)

    fetched = _clusterctl(ms, "get", "kubeconfig", "hosted", "-n", ns)
    assert fetched.returncode == 0, fetched.stderr
    kubeconfig = tmp_path / "hosted.kubeconfig"
    kubeconfig.write_text(fetched.stdout)
    got = _run(ms, ["kubectl", "--kubeconfig", str(kubeconfig), "get", "ns", "kube-system"])
    assert got.returncode == 0, got.stderr
    described = _clusterctl(ms, "describe", "cluster", "hosted", "-n", ns)
    assert described.returncode == 0, described.stderr
    assert "K0smotronControlPlane/hosted-cp" in described.stdout, described.stdout

    # Read through the older contract: the API server asks the operator's conversion webhook.
    old = _kubectl(ms, "get", f"k0smotroncontrolplanes.v1beta1.{CP_GROUP}", "hosted-cp",
                   "-n", ns, "-o", "json")  # fmt: skip
    assert old.returncode == 0, old.stderr
    old_status = json.loads(old.stdout)["status"]
    assert old_status["ready"] is True and old_status["initialized"] is True
    assert old_status["unavailableReplicas"] == 0

    # Paused: the control plane's change waits; unpaused, it is applied.
    paused = _kubectl(ms, "-n", ns, "annotate", "clusters.cluster.x-k8s.io", "hosted",
                      "cluster.x-k8s.io/paused=true")  # fmt: skip
    assert paused.returncode == 0, paused.stderr

    def paused_condition() -> bool:
        status = _status(kc, ControlPlane, "hosted-cp", ns)
        return _condition(status, "Paused").get("status") == "True"

    _wait(ms, ns, operator, "Paused=True", paused_condition, 60)
    labels = {"kubeconfigSecretMetadata": {"labels": {"team": "blue"}}}
    changed = kc.patch(
        ControlPlane, "hosted-cp", {"spec": labels}, namespace=ns, patch_type=PatchType.MERGE
    )
    generation = changed.metadata.generation

    def observed() -> bool:
        return _status(kc, ControlPlane, "hosted-cp", ns).get("observedGeneration") == generation

    _wait(ms, ns, operator, "the paused control plane observed its new generation", observed, 60)
    assert "kubeconfigSecretMetadata" not in kc.get(HostedCluster, "hosted", namespace=ns)["spec"]
    unpaused = _kubectl(ms, "-n", ns, "annotate", "clusters.cluster.x-k8s.io", "hosted",
                        "cluster.x-k8s.io/paused-")  # fmt: skip
    assert unpaused.returncode == 0, unpaused.stderr

    def labelled() -> bool:
        hosted_spec = kc.get(HostedCluster, "hosted", namespace=ns)["spec"]
        secret = kc.get(Secret, "hosted-kubeconfig", namespace=ns)
        return "kubeconfigSecretMetadata" in hosted_spec and (
            (secret.metadata.labels or {}).get("team") == "blue"
        )

    _wait(ms, ns, operator, "the change applied once unpaused", labelled, 60)

    # Deleting the Cluster API Cluster takes the control plane and all it made.
    deleted = _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", "hosted",
                       "--wait=false")  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr

    def all_gone() -> bool:
        return all(
            _gone(kc, res, name, ns)
            for res, name in (
                (CapiCluster, "hosted"),
                (ControlPlane, "hosted-cp"),
                (HostedCluster, "hosted"),
                (StatefulSet, "kmc-hosted"),
                (Secret, "hosted-kubeconfig"),
                (Secret, "hosted-ca"),
            )
        )

    _wait(ms, ns, operator, "everything gone after the Cluster's deletion", all_gone, 180)


def _machine_manifests(
    ns: str, cluster: str, name: str, provisioner: dict[str, Any] | None = None
) -> str:
    return yaml.safe_dump_all(
        [
            {"apiVersion": f"{INFRA_GROUP}/v1alpha1", "kind": "ExampleMachine",
             "metadata": {"name": name, "namespace": ns}, "spec": {}},
            {"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "K0sWorkerConfig",
             "metadata": {"name": name, "namespace": ns},
             "spec": {
                 # A machine shares the host's disk: upstream's eviction thresholds would
                 # evict pods whenever the disk is busy (machines.SHARED_DISK_JOIN_ARGS).
                 "args": ["--labels=pool=capi",
                          "--kubelet-extra-args=--eviction-hard=memory.available<100Mi,"
                          "nodefs.available<1%,imagefs.available<1%,nodefs.inodesFree<1%"],
                 "preK0sCommands": ["echo pre > /root/pre-ran"],
                 "files": [{"path": "/etc/mothership-test/hello", "content": "hi\n"}],
                 **({"provisioner": provisioner} if provisioner else {}),
             }},
            {"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
             "metadata": {"name": name, "namespace": ns},
             "spec": {
                 "clusterName": cluster,
                 "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io",
                                             "kind": "K0sWorkerConfig", "name": name}},
                 "infrastructureRef": {"apiGroup": INFRA_GROUP, "kind": "ExampleMachine",
                                       "name": name},
             }},
        ]
    )  # fmt: skip


def test_a_machine_joins_from_its_bootstrap_data_and_its_token_goes_with_it(
    ms: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    crd = _kubectl(ms, "apply", "-f", "-", stdin=yaml.safe_dump(INFRA_CRD))
    assert crd.returncode == 0, crd.stderr
    service = {"type": "NodePort", "apiPort": 31643, "konnectivityPort": 31232}
    applied = _kubectl(ms, "apply", "-f", "-", stdin=capi_pool.hosted_cluster(ns, "wk", service))
    assert applied.returncode == 0, applied.stderr

    def initialized() -> bool:
        init = _status(kc, CapiCluster, "wk", ns).get("initialization") or {}
        return bool(init.get("controlPlaneInitialized"))

    _wait(ms, ns, operator, "Cluster API: control plane of wk initialized", initialized, 300)

    started = time.monotonic()
    machine_yaml = _machine_manifests(ns, "wk", "wk-m1")
    applied = _kubectl(ms, "apply", "-f", "-", stdin=machine_yaml)
    assert applied.returncode == 0, applied.stderr

    def handed_over() -> bool:
        spec = kc.get(Machine, "wk-m1", namespace=ns)["spec"]
        return (spec.get("bootstrap") or {}).get("dataSecretName") == "wk-m1"

    _wait(ms, ns, operator, "Cluster API took the bootstrap data", handed_over, 120)
    print(f"\nMachine -> bootstrap data in Cluster API: {time.monotonic() - started:.1f} s")
    config = kc.get(WorkerConfig, "wk-m1", namespace=ns)
    assert config["status"]["initialization"] == {"dataSecretCreated": True}
    assert config.metadata.ownerReferences[0].kind == "Machine"
    secret = kc.get(Secret, "wk-m1", namespace=ns)
    assert secret.type == "cluster.x-k8s.io/secret"
    assert base64.b64decode(secret.data["format"]) == b"cloud-config"
    data = base64.b64decode(secret.data["value"]).decode()

    # The same for a machine that boots Ignition (k0smotron's provisioner type ignition,
    # with an Ignition config merged in): Ignition's own validator accepts the data, which
    # holds the same kind of join script (tests/integration/test_ignition.py applies such
    # data with Ignition itself).
    extra = '{"ignition": {"version": "3.4.0"}}'
    provisioner = {"type": "ignition", "ignition": {"variant": "fcos", "version": "1.5.0",
                                                    "additionalConfig": extra}}  # fmt: skip
    applied = _kubectl(ms, "apply", "-f", "-",
                       stdin=_machine_manifests(ns, "wk", "wk-ign", provisioner))  # fmt: skip
    assert applied.returncode == 0, applied.stderr

    def ignition_written() -> bool:
        return _exists_in(kc, Secret, "wk-ign", ns)

    _wait(ms, ns, operator, "the Ignition bootstrap data written", ignition_written, 120)
    ign_secret = kc.get(Secret, "wk-ign", namespace=ns)
    assert base64.b64decode(ign_secret.data["format"]) == b"ignition"
    ign_file = tmp_path / "wk-ign.ign"
    ign_file.write_bytes(base64.b64decode(ign_secret.data["value"]))
    checked = subprocess.run([str(paths.tool("ignition-validate")), str(ign_file)],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ign_paths = [f["path"] for f in json.loads(ign_file.read_text())["storage"]["files"]]
    assert "/run/cluster-api/mothership-join.sh" in ign_paths
    gone = _kubectl(ms, "-n", ns, "delete", "machines.cluster.x-k8s.io", "wk-ign")
    assert gone.returncode == 0, gone.stderr

    # The tenant, as its admin sees it.
    kubeconfig = tmp_path / "wk.kubeconfig"
    kubeconfig.write_bytes(
        base64.b64decode(kc.get(Secret, "wk-kubeconfig", namespace=ns).data["value"])
    )
    tenant = Client(config=KubeConfig.from_file(str(kubeconfig)), field_manager="tests")
    token_id = kc.get(JTR, "wk-m1-token", namespace=ns)["status"]["tokenID"]
    assert _exists_in(tenant, Secret, f"bootstrap-token-{token_id}", "kube-system")

    state = ms.cfg.state_dir
    edge = machines.create(state, f"capi-{uuid.uuid4().hex[:4]}", "edge")
    try:
        ran = machines.run(edge, ["sh", "-c", worker_bootstrap.to_shell(data)], timeout=300)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        _wait(ms, ns, operator, "Node wk-m1 Ready", lambda: node_ready(tenant, "wk-m1"), 180)
        print(f"Machine -> Node Ready: {time.monotonic() - started:.1f} s")
        node = tenant.get(Node, "wk-m1")
        assert node.metadata.labels["pool"] == "capi"
        for path, content in (("/etc/mothership-test/hello", "hi\n"), ("/root/pre-ran", "pre\n")):
            assert machines.run(edge, ["cat", path]).stdout == content
        assert machines.run(edge, ["test", "-f", SUCCESS_SENTINEL]).returncode == 0

        # The Machine goes: Cluster API deletes its config, the token request goes with it,
        # and the token is revoked in the tenant.
        deleted = _kubectl(ms, "-n", ns, "delete", "machines.cluster.x-k8s.io", "wk-m1",
                           "--wait=false")  # fmt: skip
        assert deleted.returncode == 0, deleted.stderr

        def revoked() -> bool:
            return (
                _gone(kc, WorkerConfig, "wk-m1", ns)
                and _gone(kc, JTR, "wk-m1-token", ns)
                and not _exists_in(tenant, Secret, f"bootstrap-token-{token_id}", "kube-system")
            )

        _wait(ms, ns, operator, "the Machine's token revoked", revoked, 120)
        left = machines.run(edge, ["mothership-node-leave"], timeout=120)
        assert left.returncode == 0, left.stderr
    finally:
        machines.delete(state, edge.name)
    assert machines.leftovers(edge) == []


def _exists_in(client: Client, resource: Any, name: str, namespace: str) -> bool:
    try:
        client.get(resource, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    return True


# --- a MachineDeployment of RemoteMachines from a pool of existing machines over SSH ------------


MachineDeployment = create_namespaced_resource(
    "cluster.x-k8s.io", "v1beta2", "MachineDeployment", "machinedeployments"
)
RemoteCluster = create_namespaced_resource(
    "infrastructure.cluster.x-k8s.io", "v1beta2", "RemoteCluster", "remoteclusters"
)
RemoteMachine = create_namespaced_resource(
    "infrastructure.cluster.x-k8s.io", "v1beta2", "RemoteMachine", "remotemachines"
)
Pooled = create_namespaced_resource(
    "infrastructure.cluster.x-k8s.io", "v1beta2", "PooledRemoteMachine", "pooledremotemachines"
)


def test_a_machine_deployment_scales_over_a_pool_of_machines_reached_by_ssh(
    ms: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    service = {"type": "NodePort", "apiPort": 31743, "konnectivityPort": 31332}
    applied = _kubectl(
        ms, "apply", "-f", "-", stdin=capi_pool.hosted_cluster(ns, "pl", service, infra=True)
    )
    assert applied.returncode == 0, applied.stderr
    state = ms.cfg.state_dir
    pool = [machines.create(state, f"pool-{uuid.uuid4().hex[:4]}", "reachable") for _ in range(3)]
    try:
        key = machines.ssh_key(state).read_text()
        applied = _kubectl(
            ms,
            "apply",
            "-f",
            "-",
            stdin=capi_pool.machine_pool(ns, "pl", [(m.name, m.address) for m in pool], key),
        )
        assert applied.returncode == 0, applied.stderr

        def initialized() -> bool:
            init = _status(kc, CapiCluster, "pl", ns).get("initialization") or {}
            return bool(init.get("controlPlaneInitialized"))

        _wait(ms, ns, operator, "control plane of pl initialized", initialized, 300)
        kubeconfig = tmp_path / "pl.kubeconfig"
        kubeconfig.write_bytes(
            base64.b64decode(kc.get(Secret, "pl-kubeconfig", namespace=ns).data["value"])
        )
        tenant = Client(config=KubeConfig.from_file(str(kubeconfig)), field_manager="tests")

        def ready_nodes() -> set[str]:
            try:
                nodes = tenant.list(Node, labels={"pool": "lab"})
                return {
                    n.metadata.name
                    for n in nodes
                    if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
                }
            except Exception:
                return set()

        def machines_linked() -> set[str]:
            out = set()
            for m in kc.list(Machine, namespace=ns, labels={"md": "md"}):
                if (m.get("status") or {}).get("nodeRef") and not m.metadata.deletionTimestamp:
                    out.add(m.metadata.name)
            return out

        def reserved() -> int:
            return sum(
                bool((p.get("status") or {}).get("reserved")) for p in kc.list(Pooled, namespace=ns)
            )

        def count(resource: Any, done: Any) -> int:
            return sum(
                1
                for o in kc.list(resource, namespace=ns)
                if not o.metadata.deletionTimestamp and done(o.get("status") or {})
            )

        def with_data(st: dict[str, Any]) -> bool:
            return bool((st.get("initialization") or {}).get("dataSecretCreated"))

        def provisioned(st: dict[str, Any]) -> bool:
            return bool((st.get("initialization") or {}).get("provisioned"))

        for replicas in (2, 3, 1):
            started = time.monotonic()
            scaled = kc.patch(
                MachineDeployment, "md", {"spec": {"replicas": replicas}},
                namespace=ns, patch_type=PatchType.MERGE,
            )  # fmt: skip
            assert scaled["spec"]["replicas"] == replicas
            if replicas > 1:  # where the time goes on the way up
                for what, resource, done in (
                    ("bootstrap data", WorkerConfig, with_data),
                    ("provisioned over SSH", RemoteMachine, provisioned),
                ):
                    _wait(ms, ns, operator, f"{replicas} with {what}",
                          lambda r=resource, d=done, n=replicas: count(r, d) >= n, 400)  # fmt: skip
                    print(f"\n  -> {replicas}: {what} after {time.monotonic() - started:.1f} s")

            def settled(n: int = replicas) -> bool:
                linked, ready = machines_linked(), ready_nodes()
                return len(linked) == n and linked == ready and reserved() == n

            _wait(ms, ns, operator, f"{replicas} Machines with Ready Nodes", settled, 400)
            print(f"\nMachineDeployment -> {replicas}: {time.monotonic() - started:.1f} s")

        # Two machines went back to the pool, cleaned: nothing of the node runs there.
        free = [p.metadata.name for p in kc.list(Pooled, namespace=ns)
                if not (p.get("status") or {}).get("reserved")]  # fmt: skip
        assert len(free) == 2
        for m in pool:
            if m.name in free:
                probe = (
                    "pgrep -x kubelet || pgrep -x containerd || "
                    f"test -e /var/lib/mothership-node || test -e {SUCCESS_SENTINEL}"
                )
                left = machines.run(m, ["sh", "-c", probe])
                assert left.returncode != 0, f"{m.name} not cleaned: {left.stdout}"
        remote = kc.get(RemoteCluster, "pl", namespace=ns)
        assert remote["status"]["initialization"] == {"provisioned": True}
        assert remote["spec"]["controlPlaneEndpoint"]["port"] == 31743

        def healthy() -> bool:
            st = _status(kc, CapiCluster, "pl", ns)
            return _condition(st, "Available").get("status") == "True"

        _wait(ms, ns, operator, "the Cluster API Cluster Available", healthy, 120)
        described = _clusterctl(ms, "describe", "cluster", "pl", "-n", ns)
        assert described.returncode == 0, described.stderr
        print(described.stdout)
    finally:
        _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", "pl", "--wait=true",
                 "--timeout=180s")  # fmt: skip
        for m in pool:
            machines.delete(state, m.name)


def test_a_cut_link_and_an_operator_killed_mid_bootstrap_still_bootstrap_the_machine_once(
    ms: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    """k0smotron bootstraps a machine twice when provisioning is interrupted; here the
    bootstrap runs detached on the machine and the next attempt follows it."""
    service = {"type": "NodePort", "apiPort": 31943, "konnectivityPort": 31532}
    applied = _kubectl(
        ms, "apply", "-f", "-", stdin=capi_pool.hosted_cluster(ns, "rs", service, infra=True)
    )
    assert applied.returncode == 0, applied.stderr
    state = ms.cfg.state_dir
    machine = machines.create(state, f"once-{uuid.uuid4().hex[:4]}", "reachable")
    # The bootstrap counts its runs, then holds until the test lets it go on.
    runs, gate = "/var/lib/bootstrap-runs", "/run/bootstrap-go"
    hold = [f"echo run >> {runs}", f"while [ ! -e {gate} ]; do sleep 1; done"]
    try:
        key = machines.ssh_key(state).read_text()
        pool = capi_pool.machine_pool(ns, "rs", [(machine.name, machine.address)], key, hold)
        applied = _kubectl(ms, "apply", "-f", "-", stdin=pool)
        assert applied.returncode == 0, applied.stderr

        def initialized() -> bool:
            init = _status(kc, CapiCluster, "rs", ns).get("initialization") or {}
            return bool(init.get("controlPlaneInitialized"))

        _wait(ms, ns, operator, "control plane of rs initialized", initialized, 300)
        kc.patch(MachineDeployment, capi_pool.MACHINE_DEPLOYMENT, {"spec": {"replicas": 1}},
                 namespace=ns, patch_type=PatchType.MERGE)  # fmt: skip

        def bootstrap_began() -> bool:
            return machines.run(machine, ["test", "-e", runs]).returncode == 0

        _wait(ms, ns, operator, "the bootstrap began on the machine", bootstrap_began, 300)

        # The link goes down mid-bootstrap: keepalives notice, the operator says so, naming
        # the address, and backs off.
        machines.set_link(machine, False)

        def unreachable() -> dict[str, Any]:
            for rm in kc.list(RemoteMachine, namespace=ns):
                ready = _condition(rm.get("status") or {}, "Ready")
                if ready.get("reason") == "MachineUnreachable":
                    return ready
            return {}

        _wait(ms, ns, operator, "RemoteMachine reported unreachable", lambda: bool(unreachable()),
              120)  # fmt: skip
        message = unreachable()["message"]
        assert machine.address in message and "retrying in" in message, message

        # ... and the operator is killed while the machine is cut off.
        assert operator.proc is not None
        operator.proc.kill()
        operator.proc.wait(30)
        machines.set_link(machine, True)
        operator.start()
        machines.run(machine, ["touch", gate])

        def joined() -> bool:
            linked = [
                m for m in kc.list(Machine, namespace=ns) if (m.get("status") or {}).get("nodeRef")
            ]
            return len(linked) == 1

        _wait(ms, ns, operator, "the Machine linked to its Node", joined, 400)
        counted = machines.run(machine, ["cat", runs]).stdout
        assert counted == "run\n", f"the bootstrap ran {counted.count('run')} times"

        # A restarted operator leaves the bootstrapped machine alone.
        operator.stop()
        operator.start()

        def reconciled() -> bool:
            return (
                operator.metric('mothership_reconciles_total{kind="RemoteMachine",result="ok"') > 0
            )

        _wait(ms, ns, operator, "the RemoteMachine reconciled after the restart", reconciled, 60)
        assert machines.run(machine, ["cat", runs]).stdout == "run\n"
    finally:
        _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", "rs", "--wait=true",
                 "--timeout=180s")  # fmt: skip
        machines.delete(state, machine.name)


def _job_provisioned_machine(
    ns: str, cluster: str, name: str, address: str, key: str, port: int, job_name: str = ""
) -> str:
    """A Machine whose RemoteMachine is provisioned from a Job, as k0smotron's
    provisionJob example writes it: the Job's image brings ssh and scp, the key is mounted
    from a Secret the operator is never told about (no sshKeyRef)."""
    options = "-i /root/.ssh/key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    pod = {
        "containers": [{"name": "ssh", "image": ssh_client_image.image(),
                        "volumeMounts": [{"name": "ssh-key", "mountPath": "/root/.ssh",
                                          "readOnly": True}]}],
        "volumes": [{"name": "ssh-key", "secret": {
            "secretName": "job-ssh-key", "items": [{"key": "key", "path": "key", "mode": 0o600}]}}],
        "restartPolicy": "Never",
    }  # fmt: skip
    worker = {"args": ["--labels=pool=jobs", capi_pool.SHARED_DISK_KUBELET_ARGS]}
    return yaml.safe_dump_all(
        [
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "job-ssh-key", "namespace": ns}, "stringData": {"key": key}},
            {"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "K0sWorkerConfig",
             "metadata": {"name": name, "namespace": ns}, "spec": worker},
            {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "RemoteMachine",
             "metadata": {"name": name, "namespace": ns},
             "spec": {"address": address, "port": port, "user": "root",
                      "provisionJob": {"sshCommand": f"ssh {options}",
                                       "scpCommand": f"scp {options}",
                                       "jobSpecTemplate": {
                                           **({"metadata": {"name": job_name}} if job_name else {}),
                                           "spec": {"backoffLimit": 0,
                                                    "template": {"spec": pod}}}}}},
            {"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
             "metadata": {"name": name, "namespace": ns},
             "spec": {
                 "clusterName": cluster,
                 "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io",
                                             "kind": "K0sWorkerConfig", "name": name}},
                 "infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io",
                                       "kind": "RemoteMachine", "name": name},
             }},
        ]
    )  # fmt: skip


def test_a_machine_with_a_provision_job_is_bootstrapped_and_cleaned_up_by_jobs(
    ms: LocalMothership, kc: Client, operator: Operator, ns: str
) -> None:
    """k0smotron's provisionJob: the SSH client runs in a pod of the mothership, not in the
    operator, which has no key for the machine."""
    service = {"type": "NodePort", "apiPort": 32243, "konnectivityPort": 31832}
    applied = _kubectl(
        ms, "apply", "-f", "-", stdin=capi_pool.hosted_cluster(ns, "pj", service, infra=True)
    )
    assert applied.returncode == 0, applied.stderr
    state = ms.cfg.state_dir
    machine = machines.create(state, f"job-{uuid.uuid4().hex[:4]}", "reachable")
    try:

        def initialized() -> bool:
            init = _status(kc, CapiCluster, "pj", ns).get("initialization") or {}
            return bool(init.get("controlPlaneInitialized"))

        _wait(ms, ns, operator, "control plane of pj initialized", initialized, 300)
        started = time.monotonic()
        key = machines.ssh_key(state).read_text()
        # First at a port nobody listens on: the Job fails and the RemoteMachine says why.
        manifest = _job_provisioned_machine(ns, "pj", "pj-m1", machine.address, key, 2222)
        applied = _kubectl(ms, "apply", "-f", "-", stdin=manifest)
        assert applied.returncode == 0, applied.stderr

        def failed() -> dict[str, Any]:
            ready = _condition(_status(kc, RemoteMachine, "pj-m1", ns), "Ready")
            return ready if ready.get("reason") == "BootstrapFailed" else {}

        _wait(ms, ns, operator, "the failed Job reported", lambda: bool(failed()), 180)
        message = failed()["message"]
        print(f"\nfailed Job reported after {time.monotonic() - started:.1f} s: {message}")
        assert "Connection refused" in message and "delete the Job" in message, message
        # Deleting the failed Job (its Secret goes with it) and correcting the port retries.
        gone = _kubectl(ms, "-n", ns, "delete", "job", "pj-pj-m1", "--wait=true")
        assert gone.returncode == 0, gone.stderr
        _wait(ms, ns, operator, "the failed Job's Secret gone",
              lambda: _gone(kc, Secret, "pj-pj-m1-job-bootstrap-data", ns), 60)  # fmt: skip
        kc.patch(RemoteMachine, "pj-m1", {"spec": {"port": 22}}, namespace=ns,
                 patch_type=PatchType.MERGE)  # fmt: skip

        def linked() -> bool:
            return bool((kc.get(Machine, "pj-m1", namespace=ns).get("status") or {}).get("nodeRef"))

        _wait(ms, ns, operator, "the Machine linked to its Node", linked, 400)
        print(f"\nMachine with a provisionJob -> Node linked: {time.monotonic() - started:.1f} s")
        job = kc.get(Job, "pj-pj-m1", namespace=ns)
        assert job.status.succeeded == 1
        assert job.metadata.ownerReferences[0].kind == "RemoteMachine"
        assert job.spec.template.spec.containers[0].args == [
            "/var/lib/bootstrap-data/entrypoint.sh"
        ]
        rm = kc.get(RemoteMachine, "pj-m1", namespace=ns)
        assert rm["spec"]["providerID"] == f"remote-machine://{machine.address}:22"

        # Another machine whose template names the same Job (as every RemoteMachine of one
        # RemoteMachineTemplate would): the completed Job is not taken for its own.
        other = _job_provisioned_machine(ns, "pj", "pj-m2", machine.address, key, 22,
                                         job_name="pj-pj-m1")  # fmt: skip
        applied = _kubectl(ms, "apply", "-f", "-", stdin=other)
        assert applied.returncode == 0, applied.stderr

        def refused() -> dict[str, Any]:
            ready = _condition(_status(kc, RemoteMachine, "pj-m2", ns), "Ready")
            return ready if ready.get("reason") == "JobNameTaken" else {}

        _wait(ms, ns, operator, "the shared Job name refused", lambda: bool(refused()), 120)
        assert "jobSpecTemplate.metadata.name" in refused()["message"]
        rm2 = kc.get(RemoteMachine, "pj-m2", namespace=ns)
        assert not (rm2.get("status") or {}).get("initialization", {}).get("provisioned")
        gone = _kubectl(ms, "-n", ns, "delete", "machines.cluster.x-k8s.io", "pj-m2",
                        "--wait=true", "--timeout=120s")  # fmt: skip
        assert gone.returncode == 0, gone.stderr
        assert rm["status"]["initialization"] == {"provisioned": True}
        assert machines.run(machine, ["test", "-e", SUCCESS_SENTINEL]).returncode == 0

        # The Machine goes: a clean-up Job leaves the cluster on the machine, and is
        # deleted with its Secret once done.
        deleted = _kubectl(ms, "-n", ns, "delete", "machines.cluster.x-k8s.io", "pj-m1",
                           "--wait=false")  # fmt: skip
        assert deleted.returncode == 0, deleted.stderr

        def cleaned() -> bool:
            return (
                _gone(kc, RemoteMachine, "pj-m1", ns)
                and _gone(kc, Job, "pj-pj-m1-cleanup", ns)
                and _gone(kc, Secret, "pj-pj-m1-cleanup-job-bootstrap-data", ns)
            )

        _wait(ms, ns, operator, "the machine cleaned up by a Job", cleaned, 300)
        probe = f"pgrep -x kubelet || pgrep -x containerd || test -e {SUCCESS_SENTINEL}"
        left = machines.run(machine, ["sh", "-c", probe])
        assert left.returncode != 0, f"{machine.name} not cleaned: {left.stdout}"
        said = {
            (e.reason, e.message)
            for e in kc.list(Event, namespace=ns)
            if e.involvedObject.name == "pj-m1"
            and e.reason in ("CleanedUp", "BootstrapExecSucceeded")
        }
        assert {r for r, _ in said} == {"CleanedUp", "BootstrapExecSucceeded"}, said
    finally:
        _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", "pj", "--wait=true",
                 "--timeout=180s")  # fmt: skip
        machines.delete(state, machine.name)


def test_a_version_bump_on_the_control_plane_rolls_three_replicas_while_the_api_answers(
    ms: LocalMothership,
    kc: Client,
    operator: Operator,
    ns: str,
    tmp_path: Path,
    postgres_server: Any,
) -> None:
    from mothership.testenv.pins import KUBERNETES_VERSION, PREVIOUS_KUBERNETES_VERSION

    db = postgres_server.create_database(f"cp_{uuid.uuid4().hex[:6]}", ms.cfg.host_ip)
    manifest = capi_pool.hosted_cluster(
        ns,
        "up",
        {"type": "NodePort", "apiPort": 32043, "konnectivityPort": 31632},
        version=PREVIOUS_KUBERNETES_VERSION,
        replicas=3,
        storage={"type": "kine", "kine": {"dataSourceURL": db.pod_url}},
    )
    applied = _kubectl(ms, "apply", "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stderr
    try:

        def serving(version: str) -> bool:
            st = _status(kc, ControlPlane, "up-cp", ns)
            return (
                st.get("version") == version
                and st.get("readyReplicas") == 3
                and st.get("upToDateReplicas") == 3
            )

        _wait(ms, ns, operator, "3 replicas of the old version", lambda: serving(
            PREVIOUS_KUBERNETES_VERSION), 420)  # fmt: skip
        kubeconfig = tmp_path / "up.kubeconfig"
        kubeconfig.write_bytes(
            base64.b64decode(kc.get(Secret, "up-kubeconfig", namespace=ns).data["value"])
        )
        before = kc.get(StatefulSet, "kmc-up", namespace=ns).status.updateRevision
        lowest_ready = 3

        def rolled() -> bool:
            nonlocal lowest_ready
            status = kc.get(StatefulSet, "kmc-up", namespace=ns).status
            lowest_ready = min(lowest_ready, status.readyReplicas or 0)
            return bool(
                status.updateRevision != before
                and status.currentRevision == status.updateRevision
                and status.updatedReplicas == 3
                and status.readyReplicas == 3
            )

        started = time.monotonic()
        with Poller(kubeconfig) as poller:
            kc.patch(ControlPlane, "up-cp", {"spec": {"version": KUBERNETES_VERSION}},
                     namespace=ns, patch_type=PatchType.MERGE)  # fmt: skip
            _wait(ms, ns, operator, "all three replicas on the new version", rolled, 420)
            _wait(ms, ns, operator, "the control plane reports the new version",
                  lambda: serving(KUBERNETES_VERSION), 60)  # fmt: skip
        print(
            f"\nK0smotronControlPlane {PREVIOUS_KUBERNETES_VERSION} -> {KUBERNETES_VERSION}: "
            f"rolled in {time.monotonic() - started:.1f} s; {len(poller.failures)} of "
            f"{poller.requests} requests failed over {poller.window:.1f} s; never fewer than "
            f"{lowest_ready} ready; {len(poller.retried)} retried after Retry-After (shutting down)"
        )
        assert lowest_ready >= 2, "the rollout took more than one replica down at a time"
        assert poller.failures == [], poller.errors
        hosted = kc.get(HostedCluster, "up", namespace=ns)
        assert hosted["spec"]["version"] == KUBERNETES_VERSION
    finally:
        _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", "up", "--wait=true",
                 "--timeout=180s")  # fmt: skip


def _cluster_class(ns: str, name: str, service: dict[str, Any]) -> list[dict[str, Any]]:
    """A ClusterClass whose control plane is a K0smotronControlPlaneTemplate (kubernetes
    distribution) on a RemoteClusterTemplate, as a platform team publishes it."""
    cp_group, infra_group = "controlplane.cluster.x-k8s.io", "infrastructure.cluster.x-k8s.io"
    return [
        {"apiVersion": f"{cp_group}/v1beta2", "kind": "K0smotronControlPlaneTemplate",
         "metadata": {"name": name, "namespace": ns},
         "spec": {"template": {"spec": {"distribution": "kubernetes", "service": service,
                                        "storage": {"type": "kine"}}}}},
        {"apiVersion": f"{infra_group}/v1beta2", "kind": "RemoteClusterTemplate",
         "metadata": {"name": name, "namespace": ns}, "spec": {"template": {"spec": {}}}},
        {"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "ClusterClass",
         "metadata": {"name": name, "namespace": ns},
         "spec": {
             "controlPlane": {"templateRef": {"apiVersion": f"{cp_group}/v1beta2",
                                              "kind": "K0smotronControlPlaneTemplate",
                                              "name": name}},
             "infrastructure": {"templateRef": {"apiVersion": f"{infra_group}/v1beta2",
                                                "kind": "RemoteClusterTemplate", "name": name}},
         }},
    ]  # fmt: skip


def test_a_cluster_from_a_cluster_class_comes_up_and_upgrades_through_its_topology(
    ms: LocalMothership, kc: Client, operator: Operator, ns: str
) -> None:
    """ClusterClass (Cluster API's ClusterTopology, on in the local mothership): a Cluster
    naming the class and a version gets a K0smotronControlPlane made from the template, which
    comes up Available; a new `spec.topology.version` reaches the control plane and its
    hosted Cluster, and the control plane reports it."""
    from mothership.testenv.pins import KUBERNETES_VERSION, PREVIOUS_KUBERNETES_VERSION

    service = {"type": "NodePort", "apiPort": 32143, "konnectivityPort": 31732}
    cluster = {
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
        "metadata": {"name": "cls", "namespace": ns},
        "spec": {"topology": {"classRef": {"name": "hosted"},
                              "version": PREVIOUS_KUBERNETES_VERSION,
                              "controlPlane": {"replicas": 1}}},
    }  # fmt: skip
    manifest = yaml.safe_dump_all([*_cluster_class(ns, "hosted", service), cluster])
    applied = _kubectl(ms, "apply", "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stderr
    try:

        def control_plane() -> dict[str, Any] | None:
            found = list(kc.list(ControlPlane, namespace=ns,
                                 labels={"cluster.x-k8s.io/cluster-name": "cls"}))  # fmt: skip
            return found[0].to_dict() if found else None

        def serving(version: str) -> bool:
            cp = control_plane()
            st = (cp or {}).get("status") or {}
            return bool(cp and cp["spec"].get("version") == version
                        and st.get("version") == version and st.get("availableReplicas") == 1
                        and st.get("upToDateReplicas") == 1)  # fmt: skip

        started = time.monotonic()
        _wait(ms, ns, operator, "the class's control plane Available",
              lambda: serving(PREVIOUS_KUBERNETES_VERSION), 300)  # fmt: skip
        print(f"\nCluster from a ClusterClass Available in {time.monotonic() - started:.1f} s")
        cp = control_plane()
        assert cp is not None and cp["spec"]["service"] == service  # from the template
        topology = _status(kc, CapiCluster, "cls", ns).get("conditions") or []
        assert any(c["type"] == "TopologyReconciled" and c["status"] == "True" for c in topology)

        before = kc.get(StatefulSet, "kmc-cls", namespace=ns).status.updateRevision

        def rolled() -> bool:
            status = kc.get(StatefulSet, "kmc-cls", namespace=ns).status
            return bool(status.updateRevision != before
                        and status.currentRevision == status.updateRevision
                        and status.readyReplicas == 1)  # fmt: skip

        started = time.monotonic()
        kc.patch(CapiCluster, "cls", {"spec": {"topology": {"version": KUBERNETES_VERSION}}},
                 namespace=ns, patch_type=PatchType.MERGE)  # fmt: skip
        _wait(ms, ns, operator, "the new topology version served",
              lambda: serving(KUBERNETES_VERSION), 300)  # fmt: skip
        _wait(ms, ns, operator, "the control plane pod rolled to it", rolled, 300)
        print(f"topology {PREVIOUS_KUBERNETES_VERSION} -> {KUBERNETES_VERSION}: "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip
        assert kc.get(HostedCluster, "cls", namespace=ns)["spec"]["version"] == KUBERNETES_VERSION
    finally:
        _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", "cls", "--wait=true",
                 "--timeout=180s")  # fmt: skip


def test_k0smotrons_default_k0s_control_plane_takes_a_k0s_worker_over_ssh(
    ms: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    """The flow most k0smotron users run: a K0smotronControlPlane without a distribution
    (k0s, managed etcd) and a MachineDeployment of RemoteMachines whose K0sWorkerConfigs run
    `k0s worker` on a machine reached by SSH. The k0s config is the air-gapped one (system
    images from the local registry, the user's own pod network)."""
    name = "kz"
    service = {"type": "NodePort", "apiPort": 30943, "konnectivityPort": 30932}
    manifest = capi_pool.hosted_cluster(
        ns,
        name,
        service,
        infra=True,
        version=K0S_TENANT_VERSION,
        k0s_config=air_gapped_k0s_config(),
    )
    applied = _kubectl(ms, "apply", "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stderr
    state = ms.cfg.state_dir
    machine = machines.create(state, f"k0s-{uuid.uuid4().hex[:4]}", "reachable")
    try:
        key = machines.ssh_key(state).read_text()
        pool = capi_pool.machine_pool(ns, name, [(machine.name, machine.address)], key)
        applied = _kubectl(ms, "apply", "-f", "-", stdin=pool)
        assert applied.returncode == 0, applied.stderr

        def initialized() -> bool:
            init = _status(kc, CapiCluster, name, ns).get("initialization") or {}
            return bool(init.get("controlPlaneInitialized"))

        _wait(ms, ns, operator, f"k0s control plane of {name} initialized", initialized, 300)
        hosted = kc.get(HostedCluster, name, namespace=ns)
        assert "distribution" not in hosted["spec"] or hosted["spec"]["distribution"] == "k0s"
        kubeconfig = tmp_path / f"{name}.kubeconfig"
        kubeconfig.write_bytes(
            base64.b64decode(kc.get(Secret, f"{name}-kubeconfig", namespace=ns).data["value"])
        )
        tenant = Client(config=KubeConfig.from_file(str(kubeconfig)), field_manager="tests")
        apply_user_cni(tenant, hosted.to_dict(), ms.cfg.node_ip)

        started = time.monotonic()
        kc.patch(MachineDeployment, capi_pool.MACHINE_DEPLOYMENT, {"spec": {"replicas": 1}},
                 namespace=ns, patch_type=PatchType.MERGE)  # fmt: skip

        def linked_and_ready() -> bool:
            machine_objs = list(kc.list(Machine, namespace=ns))
            refs = [(m.get("status") or {}).get("nodeRef") for m in machine_objs]
            return len(refs) == 1 and bool(refs[0]) and node_ready(tenant, refs[0]["name"])

        _wait(ms, ns, operator, "the k0s worker's Node Ready and linked", linked_and_ready, 400)
        took = time.monotonic() - started
        print(f"\nk0s under Cluster API: replicas 1 -> Node Ready in {took:.1f} s")
        (node,) = tenant.list(Node, labels={"pool": capi_pool.POOL})
        assert node.status.nodeInfo.kubeletVersion.startswith(K0S_KUBERNETES_VERSION)
        running = machines.run(machine, ["pgrep", "-x", "k0s"])
        assert running.returncode == 0, "the worker is not run by k0s"

        def available() -> bool:
            st = _status(kc, CapiCluster, name, ns)
            return _condition(st, "Available").get("status") == "True"

        _wait(ms, ns, operator, "the Cluster API Cluster Available", available, 180)
    finally:
        _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", name, "--wait=true",
                 "--timeout=240s")  # fmt: skip
        # Deleting the Cluster cleaned the machine: k0s stopped and its files removed.
        leftover = machines.run(machine, ["sh", "-c", "pgrep -x k0s || test -e /var/lib/k0s"])
        machines.delete(state, machine.name)
    assert leftover.returncode != 0, f"k0s left on the machine: {leftover.stdout}"
