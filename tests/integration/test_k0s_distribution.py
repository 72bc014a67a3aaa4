"""The k0s distribution for real: k0smotron's control plane, rendered by mothership, runs k0s
(built here from its Go module, see pins) on the real node, and serves the tenant API.

Nothing is mocked: the StatefulSet, entrypoint ConfigMap, certificates and Services are the
ones the operator renders for any k0smotron manifest; the only local choice is the operator
setting --k0s-image-repository, which makes Clusters that keep the default image run the
locally written `localhost/mothership/k0s` (quay.io cannot be reached here). The manifest
itself is one a k0smotron user would write: no image in it.

A k0s worker joins from an edge machine (behind NAT) with the one command `mothership token
create --join-command` prints, as at an air-gapped site: k0s and its node components come
from the local download mirror, images from the local registry mirror, and the Cluster's
k0sConfig names the system images that registry holds (spec.images) and brings its own pod
network (provider custom: the test applies flannel into the tenant as a user would).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import DaemonSet, StatefulSet
from lightkube.resources.core_v1 import (
    ConfigMap,
    Namespace,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Secret,
)
from lightkube.types import PatchType

from mothership.api.k0smotron.v1beta2 import DEFAULT_K0S_IMAGE, DEFAULT_PROMETHEUS_IMAGE
from mothership.datastores import etcd_admin
from mothership.render import encryption, node_join
from mothership.testenv import etcdservers, kube, machines, monitoring_images
from mothership.testenv.k0s_tenant import air_gapped_k0s_config, apply_user_cni
from mothership.testenv.local import LocalMothership
from mothership.testenv.localoperator import monitoring_image_args, node_mirror_args
from mothership.testenv.node_images import BUSYBOX_IMAGE
from mothership.testenv.pins import K0S_IMAGE_REPO, K0S_VERSION
from tests import metrics_scrape
from tests.integration.test_shared_etcd import DataStore, etcd_data_store, keys_only_under
from tests.nodes import node_ready
from tests.operator_proc import Operator
from tests.poller import Poller

Cluster = create_namespaced_resource("k0smotron.io", "v1beta1", "Cluster", "clusters")
# Conditions are in v1beta2's status (v1beta1's is k0smotron's, without them).
ClusterV2 = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")
IMAGE_TEMPLATE = "localhost/mothership/control-plane:{version}"
VERSION = K0S_VERSION.replace("+", "-")
API_PORT, KONNECTIVITY_PORT = 31643, 31632
WORKER_API_PORT, WORKER_KONNECTIVITY_PORT = 31843, 31832
JOIN_WITHIN = 300


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
            *monitoring_image_args(mothership_real.cfg),
        ),
        identity="k0s-test",
        node_netns=mothership_real.cfg.node_netns,
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


@pytest.fixture(autouse=True)
def clusters_removed_after_each_test(kc: Client, ns: str) -> Iterator[None]:
    """Each test's control planes go before the next test starts its own: k0s controllers
    and their etcd members left running would starve the next one on a 2-core host."""
    yield
    for cluster in kc.list(Cluster, namespace=ns):
        if cluster.metadata and cluster.metadata.name:
            kc.delete(Cluster, cluster.metadata.name, namespace=ns)
    kube.wait_until(
        "the test's control-plane pods are gone",
        lambda: not list(kc.list(Pod, namespace=ns)),
        300,
    )


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


def _create(kc: Client, name: str, ns: str, ports: tuple[int, int], **spec: Any) -> None:
    """A one-replica k0smotron v1beta1 Cluster of the k0s this host builds, on NodePorts."""
    service = {"type": "NodePort", "apiPort": ports[0], "konnectivityPort": ports[1]}
    kc.create(
        Cluster(
            metadata=ObjectMeta(name=name, namespace=ns),
            spec={"version": VERSION, "replicas": 1, "service": service, **spec},
        )
    )


def _ready_replicas(kc: Client, statefulset: str, ns: str) -> int:
    status = kc.get(StatefulSet, statefulset, namespace=ns).status
    return (status.readyReplicas if status else 0) or 0


def _wait_ready(
    kc: Client, op: Operator, name: str, ns: str, replicas: int = 1, within: float = 300
) -> None:
    """Available, with this many controller pods ready; the diagnosis when not in time."""
    try:
        kube.wait_until(
            f"k0s Cluster {name} Available with {replicas} ready",
            lambda: (
                _condition(kc, name, ns, "Available") == "True"
                and _ready_replicas(kc, f"kmc-{name}", ns) == replicas
            ),
            within,
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(kc, ns, op)}") from exc


def test_a_k0smotron_cluster_runs_k0s_and_serves_its_api(
    mothership_real: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    name = "k0s-basic"
    _create(kc, name, ns, (API_PORT, KONNECTIVITY_PORT))
    _wait_ready(kc, operator, name, ns)
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


def _tenant_kubeconfig(kc: Client, name: str, ns: str, path: Path) -> Path:
    secret = kc.get(Secret, f"{name}-kubeconfig", namespace=ns)
    path.write_bytes(base64.b64decode((secret.data or {})["value"]))
    return path


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def test_a_k0s_worker_joins_from_an_edge_machine_with_one_command(
    mothership_real: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    name = "k0s-workers"
    _create(
        kc,
        name,
        ns,
        (WORKER_API_PORT, WORKER_KONNECTIVITY_PORT),
        k0sConfig=air_gapped_k0s_config(),
    )
    _wait_ready(kc, operator, name, ns)
    kubeconfig = _tenant_kubeconfig(kc, name, ns, tmp_path / "tenant.kubeconfig")
    kubectl = [str(mothership_real.cfg.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig)]
    tenant = kube.client(kubeconfig)

    # provider custom: the user brings the pod network (flannel, as mothership renders it).
    apply_user_cni(
        tenant, kc.get(ClusterV2, name, namespace=ns).to_dict(), mothership_real.cfg.node_ip
    )

    state = mothership_real.cfg.state_dir
    machine = machines.create(state, f"k0s-{uuid.uuid4().hex[:4]}", "edge")
    try:
        cli = _run(
            "mothership", "token", "create", name, "--join-command", "--expiry", "1h",
            *machines.SHARED_DISK_JOIN_ARGS,
            "--kubeconfig", str(mothership_real.cfg.kubeconfig), "-n", ns,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        command = cli.stdout.strip()
        assert "\n" not in command, f"the join command is not one line: {command[:300]}"
        started = time.monotonic()
        joined = machines.run(machine, ["sh", "-c", command], timeout=JOIN_WITHIN)
        script_done = time.monotonic() - started
        assert joined.returncode == 0, f"join failed:\n{joined.stderr[-3000:]}"
        assert f"joined {ns}/{name} as node {machine.name}" in joined.stderr, joined.stderr
        assert "noembedbins" in joined.stderr  # this k0s gets its node components beside it

        def diagnose() -> str:
            log = machines.run(
                machine, ["tail", "-n", "30", "/var/log/mothership-node/k0s-worker.log"]
            )
            pods = _run(*kubectl, "get", "nodes,pods", "-A", "-o", "wide")
            return f"{pods.stdout}{pods.stderr}\n--- k0s worker log\n{log.stdout[-4000:]}"

        try:
            kube.wait_until(
                f"node {machine.name} Ready",
                lambda: node_ready(tenant, machine.name),
                JOIN_WITHIN,
            )
            print(
                f"k0s worker: join script {script_done:.1f}s, "
                f"node Ready {time.monotonic() - started:.1f}s after the join began"
            )
            # k0s's system pods run from the registry mirror, and a pod of the user's too.
            for deployment in ("coredns", "metrics-server"):
                kube.wait_until(
                    f"{deployment} available",
                    lambda d=deployment: _run(
                        *kubectl, "-n", "kube-system", "rollout", "status",
                        f"deployment/{d}", "--timeout=5s",
                    ).returncode == 0,
                    JOIN_WITHIN,
                )  # fmt: skip
            made = _run(
                *kubectl, "run", "hello", f"--image={BUSYBOX_IMAGE}", "--restart=Never",
                "--command", "--", "sh", "-c", "echo hello-from-a-k0s-worker; sleep 3600",
            )  # fmt: skip
            assert made.returncode == 0, made.stderr
            kube.wait_until(
                "pod hello Ready",
                lambda: (
                    _run(
                        *kubectl, "wait", "--for=condition=Ready", "pod/hello", "--timeout=5s"
                    ).returncode
                    == 0
                ),
                JOIN_WITHIN,
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{diagnose()}") from exc

        # The API server reaches the kubelet only through Konnectivity: logs and exec work,
        # while the mothership cannot open a connection to the machine.
        logs = _run(*kubectl, "logs", "hello")
        assert "hello-from-a-k0s-worker" in logs.stdout, logs.stderr
        dns = _run(
            *kubectl, "exec", "hello", "--", "nslookup", "kubernetes.default.svc.cluster.local"
        )
        assert dns.returncode == 0 and "10.96.0.1" in dns.stdout, dns.stdout + dns.stderr
        with socket.socket() as s:
            s.settimeout(3)
            assert s.connect_ex((machine.address, 10250)) != 0, "the machine's kubelet is reachable"

        # Scaled to 3 replicas by editing the manifest: every API server reaches the worker
        # (each has its own konnectivity-server; the agent must connect to all of them).
        kc.patch(Cluster, name, {"spec": {"replicas": 3}}, namespace=ns, patch_type=PatchType.MERGE)
        _wait_ready(kc, operator, name, ns, replicas=3)

        # k0s restarts its konnectivity agents when the controller count changes (the
        # DaemonSet's K0S_CONTROLLER_COUNT), and each agent then connects to the servers one
        # by one through the Service: until it reaches all three, an API server without it
        # answers "No agent available". So first wait until exec works through each API
        # server on its own (its pod's address, the certificate checked for the Service's),
        # then every one of 50 through the Service must.
        def agents_on_every_server() -> bool:
            ds = tenant.get(DaemonSet, "konnectivity-agent", namespace="kube-system")
            env = ds.spec.template.spec.containers[0].env or []  # type: ignore[union-attr]
            if next((e.value for e in env if e.name == "K0S_CONTROLLER_COUNT"), None) != "3":
                return False
            pods = kc.list(
                Pod, namespace=ns, labels={"cluster": name, "component": "control-plane"}
            )
            ips = [p.status.podIP for p in pods if p.status and p.status.podIP]
            if len(ips) != 3:
                return False
            return all(
                _run(
                    *kubectl, f"--server=https://{ip}:{WORKER_API_PORT}",
                    f"--tls-server-name={mothership_real.cfg.node_ip}",
                    "exec", "hello", "--", "true",
                    timeout=60,
                ).returncode == 0
                for ip in ips
            )  # fmt: skip

        kube.wait_until(
            "exec through each of the 3 API servers", agents_on_every_server, JOIN_WITHIN
        )
        failures = []
        for i in range(50):
            run = _run(*kubectl, "exec", "hello", "--", "true", timeout=60)
            if run.returncode != 0:
                failures.append(f"exec {i}: {run.stderr.strip()[-200:]}")
        assert failures == [], f"{len(failures)} of 50 execs failed with 3 replicas: {failures[:5]}"

        # Leaving stops k0s and its children and removes what the join wrote.
        left = machines.run(machine, [node_join.LEAVE_COMMAND], timeout=120)
        assert left.returncode == 0, left.stderr
        procs = machines.run(machine, ["ps", "-eo", "args"]).stdout
        for process in ("k0s worker", "kubelet", "containerd"):
            assert process not in procs, f"{process!r} runs after leaving:\n{procs}"
        files = machines.run(machine, ["sh", "-c", "ls -d /var/lib/k0s /etc/k0s /run/k0s 2>&1"])
        assert files.stdout.count("No such file") == 3, files.stdout
    finally:
        machines.delete(state, machine.name)
        assert machines.leftovers(machine) == [], machines.leftovers(machine)


def test_k0s_on_kine_with_postgres_from_a_secret_keeps_its_data_across_a_restart(
    mothership_real: LocalMothership,
    kc: Client,
    operator: Operator,
    ns: str,
    tmp_path: Path,
    postgres_server: Any,
) -> None:
    """k0smotron's kineDataSourceSecretName: k0s runs kine against a real PostgreSQL; the
    tenant's objects live there, so a replaced pod (emptyDir data dir) finds them again."""
    name = "k0s-kine"
    database = postgres_server.create_database(
        f"k0s_{ns.replace('-', '_')}", mothership_real.cfg.host_ip
    )
    kc.create(
        Secret(
            metadata=ObjectMeta(name="k0s-kine-db", namespace=ns),
            stringData={"K0SMOTRON_KINE_DATASOURCE_URL": database.pod_url},
        )
    )
    _create(kc, name, ns, (31943, 31932), kineDataSourceSecretName="k0s-kine-db")
    _wait_ready(kc, operator, name, ns)
    sts = kc.get(StatefulSet, f"kmc-{name}", namespace=ns)
    assert "postgres://" not in json.dumps(sts.to_dict()), "the URL stays in the Secret"
    tenant = kube.client(_tenant_kubeconfig(kc, name, ns, tmp_path / "kine.kubeconfig"))
    tenant.create(ConfigMap(metadata=ObjectMeta(name="kept", namespace="default"), data={"a": "1"}))
    rows = postgres_server.sql(
        "SELECT count(*) FROM kine WHERE name LIKE '%configmaps/default/kept'", database.name
    )
    assert int(rows.strip()) >= 1, f"the ConfigMap is not in PostgreSQL: {rows!r}"

    old_uid = kc.get(Pod, f"kmc-{name}-0", namespace=ns).metadata.uid  # type: ignore[union-attr]
    kc.delete(Pod, f"kmc-{name}-0", namespace=ns)
    kube.wait_until(
        "the deleted controller pod is replaced",
        lambda: kc.get(Pod, f"kmc-{name}-0", namespace=ns).metadata.uid != old_uid,  # type: ignore[union-attr]
        120,
    )
    _wait_ready(kc, operator, name, ns)
    kube.wait_until(
        "the tenant answers again and still has the ConfigMap",
        lambda: _get_or_none(tenant, ConfigMap, "kept") is not None,
        120,
    )
    assert tenant.get(ConfigMap, "kept", namespace="default").data == {"a": "1"}


def test_k0s_keeps_its_keys_under_its_prefix_on_a_shared_etcd_datastore(
    mothership_real: LocalMothership,
    kc: Client,
    operator: Operator,
    ns: str,
    tmp_path: Path,
) -> None:
    """k0s's external etcd, filled in from the tenant Secret: the endpoints and prefix by
    the entrypoint, the CA and the client pair the operator issued by a mount. Its keys stay
    under the tenant's prefix on an etcd with auth, Secrets sealed with the Cluster's own
    key, and Delete removes them."""
    name = "k0s-etcd"
    server = etcdservers.start(host_ips=(mothership_real.cfg.host_ip,))
    try:
        store = etcd_data_store(kc, server, ns, mothership_real.cfg.host_ip)
        service = {"type": "NodePort", "apiPort": 32043, "konnectivityPort": 32032}
        ref = {"name": store, "reclaimPolicy": "Delete"}
        applied = time.monotonic()
        kc.create(
            ClusterV2(
                metadata=ObjectMeta(name=name, namespace=ns),
                spec={
                    "version": VERSION,
                    "replicas": 1,
                    "service": service,
                    "storage": {"type": "etcd", "etcd": {"dataStoreRef": ref}},
                },
            )
        )
        _wait_ready(kc, operator, name, ns)
        print(f"\nk0s on a shared etcd DataStore: Available in {time.monotonic() - applied:.1f} s")
        assert not _get_or_none_in(kc, StatefulSet, f"kmc-{name}-etcd", ns)
        tenant = kube.client(_tenant_kubeconfig(kc, name, ns, tmp_path / "etcd.kubeconfig"))
        tenant.create(ConfigMap(metadata=ObjectMeta(name="in-etcd", namespace="default")))
        prefix = etcd_admin.etcd_tenant_for(ns, name).prefix
        keys_only_under(server, prefix, "configmaps/default/in-etcd")
        # Secrets reach etcd sealed with the Cluster's own key (read here as etcd's root).
        sealed = f"sealed-{uuid.uuid4().hex}"
        tenant.create(
            Secret(
                metadata=ObjectMeta(name="sealed", namespace="default"), stringData={"v": sealed}
            )
        )
        found = json.loads(server.root("get", f"{prefix}/secrets/default/sealed", "-w", "json"))
        stored = base64.b64decode(found["kvs"][0]["value"])
        assert stored.startswith(encryption.STORED_PREFIX.encode()), stored[:60]
        assert sealed.encode() not in stored
        got = tenant.get(Secret, "sealed", namespace="default").data or {}
        assert base64.b64decode(got["v"]).decode() == sealed

        kc.delete(ClusterV2, name, namespace=ns)
        kube.wait_until(
            "Cluster gone", lambda: _get_or_none_in(kc, ClusterV2, name, ns) is None, 120
        )
        assert server.root("get", f"{prefix}/", "--prefix", "--keys-only").strip() == ""
        kc.delete(DataStore, store)
        kube.wait_until("DataStore released", lambda: _gone(kc, DataStore, store), 60)
    finally:
        # Gone while its etcd still answers: reclaimPolicy Delete waits for the etcd.
        if _get_or_none_in(kc, ClusterV2, name, ns) is not None:
            kc.delete(ClusterV2, name, namespace=ns)
            kube.wait_until(
                "Cluster gone", lambda: _get_or_none_in(kc, ClusterV2, name, ns) is None, 120
            )
        etcdservers.remove(server)


def _gone(client: Client, kind: Any, name: str) -> bool:
    try:
        client.get(kind, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return True
        raise
    return False


def _get_or_none(client: Client, kind: Any, name: str) -> Any:
    try:
        return client.get(kind, name, namespace="default")
    except Exception:  # not found, or the API server is still starting
        return None


def _replace_pods(kc: Client, ns: str, *pods: str) -> None:
    """Delete these pods at once and wait until their StatefulSets have made new ones."""
    old = {pod: kc.get(Pod, pod, namespace=ns).metadata.uid for pod in pods}  # type: ignore[union-attr]
    for pod in pods:
        kc.delete(Pod, pod, namespace=ns)

    def replaced() -> bool:
        return all(kc.get(Pod, p, namespace=ns).metadata.uid != uid for p, uid in old.items())  # type: ignore[union-attr]

    kube.wait_until(f"{', '.join(pods)} replaced", replaced, 120)


# k0smotron's etcd HA case as its docs write it (tests/unit/test_render_golden.py "etcd-ha").
HA_ETCD = {
    "args": [
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=15m",
        "--snapshot-count=20000",
    ],
    "resources": {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"},
    },
    "defragJob": {"enabled": True, "schedule": "0 0 * * *"},
}


def test_k0smotrons_etcd_ha_case_serves_through_the_loss_of_a_controller_and_a_member(
    kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    """Three k0s controllers on a three-member managed etcd. One controller pod and one etcd
    member deleted together: the tenant API keeps answering (the other two controllers
    behind the Service, etcd keeping quorum), the replacements rejoin, no data is lost."""
    name = "k0s-ha"
    _create(kc, name, ns, (30643, 30632), replicas=3, storage={"type": "etcd", "etcd": HA_ETCD})
    started = time.monotonic()
    _wait_ready(kc, operator, name, ns, replicas=3, within=600)
    kube.wait_until(
        "three etcd members ready", lambda: _ready_replicas(kc, f"kmc-{name}-etcd", ns) == 3, 120
    )
    took = time.monotonic() - started
    print(f"\nk0s HA (3 controllers, 3 etcd members): Available in {took:.1f} s")
    kubeconfig = _tenant_kubeconfig(kc, name, ns, tmp_path / "ha.kubeconfig")
    tenant = kube.client(kubeconfig)
    tenant.create(ConfigMap(metadata=ObjectMeta(name="before", namespace="default")))

    with Poller(kubeconfig) as poller:
        _replace_pods(kc, ns, f"kmc-{name}-1", f"kmc-{name}-etcd-1")
        _wait_ready(kc, operator, name, ns, replicas=3, within=300)
        kube.wait_until(
            "the etcd member rejoined",
            lambda: _ready_replicas(kc, f"kmc-{name}-etcd", ns) == 3,
            180,
        )
    print(
        f"k0s HA: {len(poller.failures)} of {poller.requests} requests failed "
        f"({poller.window:.1f} s window) while a controller and an etcd member were replaced"
    )
    assert len(poller.failures) <= 0.05 * poller.requests, poller.errors
    assert _get_or_none(tenant, ConfigMap, "before") is not None
    tenant.create(ConfigMap(metadata=ObjectMeta(name="after", namespace="default")))


def test_k0smotrons_pvc_case_keeps_the_k0s_data_dir_on_its_claim(
    mothership_real: LocalMothership, kc: Client, operator: Operator, ns: str
) -> None:
    """persistence type pvc: /var/lib/k0s lives on the claim (k0s writes its state there),
    a replaced pod mounts the same volume, and autoDeletePVCs removes it with the Cluster.
    The claim omits the doc's `storageClassName: local-path` so the mothership's default
    class serves it."""
    name = "k0s-pvc"
    claim_template = {
        "metadata": {"name": "k0s-data", "labels": {"backup": "daily"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "250Mi"}}},
    }
    persistence = {"type": "pvc", "autoDeletePVCs": True, "persistentVolumeClaim": claim_template}
    _create(kc, name, ns, (30743, 30732), persistence=persistence)
    _wait_ready(kc, operator, name, ns)
    claim_name = f"k0s-data-kmc-{name}-0"
    claim = kc.get(PersistentVolumeClaim, claim_name, namespace=ns)
    assert claim.status and claim.status.phase == "Bound", claim.status
    assert (claim.metadata.labels or {}).get("backup") == "daily"  # type: ignore[union-attr]
    volume_name = claim.spec.volumeName  # type: ignore[union-attr]
    local = kc.get(PersistentVolume, volume_name).spec.local  # type: ignore[union-attr]
    assert local is not None, "the local provisioner's volumes are `local` PVs"
    data_dir = Path(local.path)
    # What k0s writes below its data dir when it starts: the manifests it applies.
    assert (data_dir / "manifests").is_dir(), sorted(p.name for p in data_dir.iterdir())
    marker = data_dir / "mothership-test-marker"
    marker.write_text(ns)

    _replace_pods(kc, ns, f"kmc-{name}-0")
    _wait_ready(kc, operator, name, ns)
    again = kc.get(PersistentVolumeClaim, claim_name, namespace=ns)
    assert again.spec.volumeName == volume_name  # type: ignore[union-attr]
    assert marker.read_text() == ns, "the replaced pod got another volume"

    kc.delete(Cluster, name, namespace=ns)
    kube.wait_until(
        "the claim deleted with the Cluster (autoDeletePVCs)",
        lambda: _get_or_none_in(kc, PersistentVolumeClaim, claim_name, ns) is None,
        180,
    )
    kube.wait_until("its directory removed", lambda: not data_dir.exists(), 120)


def test_k0smotrons_nats_case_runs_k0s_on_three_embedded_nats_servers_and_keeps_data(
    kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    """storage type nats: each k0s controller runs kine with an embedded NATS server, the
    three of them one JetStream cluster on the pods' claims. A replaced pod rejoins and the
    tenant's objects are still there."""
    name = "k0s-nats"
    _create(
        kc,
        name,
        ns,
        (30843, 30832),
        replicas=3,
        storage={"type": "nats", "nats": {"persistence": {"size": "1Gi"}}},
    )
    started = time.monotonic()
    _wait_ready(kc, operator, name, ns, replicas=3, within=600)
    took = time.monotonic() - started
    print(f"\nk0s on embedded NATS (3 controllers): Available in {took:.1f} s")
    tenant = kube.client(_tenant_kubeconfig(kc, name, ns, tmp_path / "nats.kubeconfig"))
    tenant.create(
        ConfigMap(metadata=ObjectMeta(name="in-nats", namespace="default"), data={"x": "y"})
    )
    _replace_pods(kc, ns, f"kmc-{name}-2")
    _wait_ready(kc, operator, name, ns, replicas=3)
    kube.wait_until(
        "the tenant answers and still has the ConfigMap",
        lambda: _get_or_none(tenant, ConfigMap, "in-nats") is not None,
        120,
    )
    assert tenant.get(ConfigMap, "in-nats", namespace="default").data == {"x": "y"}


def _get_or_none_in(client: Client, kind: Any, name: str, ns: str) -> Any:
    try:
        return client.get(kind, name, namespace=ns)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def test_k0smotrons_monitoring_case_serves_the_components_metrics_where_pods_say(
    mothership_real: LocalMothership, kc: Client, operator: Operator, ns: str
) -> None:
    """monitoring.enabled: a Prometheus sidecar scrapes the k0s controller's API server,
    scheduler and controller manager over localhost and the etcd members, and nginx serves
    what it scraped at the port and path the pod's prometheus.io annotations name, where a
    management cluster's Prometheus finds it. The images are the local mothership's
    (operator settings); the stored spec keeps k0smotron's defaults."""
    name = "k0s-mon"
    _create(kc, name, ns, (30543, 30532), monitoring={"enabled": True})
    _wait_ready(kc, operator, name, ns)
    stored = kc.get(ClusterV2, name, namespace=ns)
    assert stored.spec["monitoring"]["prometheusImage"] == DEFAULT_PROMETHEUS_IMAGE
    pod = kc.get(Pod, f"kmc-{name}-0", namespace=ns)
    ready = {c.name: c.ready for c in pod.status.containerStatuses or []}  # type: ignore[union-attr]
    assert ready == {"controller": True, "monitoring-agent": True, "monitoring-proxy": True}, ready
    images = {c.name: c.image for c in pod.spec.containers}  # type: ignore[union-attr]
    assert images["monitoring-agent"] == monitoring_images.PROMETHEUS_IMAGE, images
    url = metrics_scrape.scrape_url(kc, f"kmc-{name}-0", ns)
    metrics_scrape.wait_for_components(
        mothership_real.cfg.node_netns, url, name, tuple(metrics_scrape.COMPONENT_SERIES)
    )
