"""Workers anywhere, for real: machines behind NAT join a kubernetes-distribution tenant.

On the real-node local mothership, a Cluster exposed on NodePorts gets two edge machines
(network namespaces behind NAT, each with its own filesystem view, processes and
cgroups) that join with the one-line command `mothership token create --join-command`
prints, exactly as a user runs it on a machine. Their containerd pulls every image
through the mothership's registry mirror and their node components come from its
download mirror, as at an air-gapped site. The API server reaches the kubelets only
through the Konnectivity tunnel: the test asserts that the mothership cannot open a
connection to either machine.

No lock wrapper is needed: the session fixture (tests/conftest.py) starts its real node
beside any other local mothership's (in a machine when the host's network is taken):

    python -m pytest tests/integration/test_workers.py
"""

from __future__ import annotations

import base64
import gzip
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Node, Pod, Secret

from mothership.pki.certs import CertKey, issue_cert, new_ca
from mothership.render import node_join
from mothership.render.tenant_addons import AGENT_HEALTH_PORT
from mothership.testenv import kube, machines, webhook_demo
from mothership.testenv.local import LocalMothership
from mothership.testenv.localoperator import node_mirror_args
from mothership.testenv.ports import free_ports
from tests.nodes import node_ready
from tests.operator_proc import Operator

Cluster = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")
JTR = create_namespaced_resource("k0smotron.io", "v1beta2", "JoinTokenRequest", "jointokenrequests")
IMAGE_TEMPLATE = "localhost/mothership/control-plane:{version}"
VERSION = "v1.35.4"
API_PORT, KONNECTIVITY_PORT = 31443, 31132
BUSYBOX = "docker.io/library/busybox:1.35.0"
JOIN_WITHIN = 300


@pytest.fixture(scope="module")
def operator(
    mothership_real: LocalMothership, kc: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(
        mothership_real.cfg.kubeconfig,
        tmp_path_factory.mktemp("op") / "operator.log",
        IMAGE_TEMPLATE,
        IMAGE_TEMPLATE.format(version=VERSION),
        extra_args=tuple(node_mirror_args(mothership_real.cfg)),
        identity="workers-test",
        node_netns=mothership_real.cfg.node_netns,
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def ns(kc: Client) -> Iterator[str]:
    name = f"workers-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kc.delete(Namespace, name)


class Tenant:
    """A NodePort-exposed kubernetes-distribution Cluster and the tools to look inside it."""

    def __init__(
        self,
        ms: LocalMothership,
        kc: Client,
        op: Operator,
        ns: str,
        tmp: Path,
        name: str = "work",
        ports: tuple[int, int] = (API_PORT, KONNECTIVITY_PORT),
    ) -> None:
        self.ms, self.kc, self.op, self.ns = ms, kc, op, ns
        self.name, self.ports = name, ports
        self.kubeconfig = tmp / f"{name}.kubeconfig"

    def create(self, **spec: Any) -> None:
        self.kc.create(
            Cluster(
                metadata=ObjectMeta(name=self.name, namespace=self.ns),
                spec={
                    "distribution": "kubernetes",
                    "version": VERSION,
                    "replicas": 1,
                    "service": {
                        "type": "NodePort",
                        "apiPort": self.ports[0],
                        "konnectivityPort": self.ports[1],
                    },
                    **spec,
                },
            )
        )
        for kind in ("Available", "TenantBootstrapped"):
            self.wait(f"{kind}=True", lambda k=kind: self.condition(k) == "True", 300)
        secret = self.kc.get(Secret, f"{self.name}-kubeconfig", namespace=self.ns)
        self.kubeconfig.write_bytes(base64.b64decode(secret.data["value"]))

    def condition(self, kind: str) -> str:
        status = self.kc.get(Cluster, self.name, namespace=self.ns).status or {}
        found = [c for c in status.get("conditions") or [] if c["type"] == kind]
        return found[0]["status"] if found else ""

    def client(self) -> Client:
        return Client(config=KubeConfig.from_file(str(self.kubeconfig)), field_manager="tests")

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def kubectl_apply(self, manifest: str, verb: str = "apply") -> subprocess.CompletedProcess[str]:
        """`kubectl apply` (or `create`) of a YAML stream."""
        kubectl = [str(self.ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig)]
        return subprocess.run(
            [*kubectl, verb, "-f", "-"],
            input=manifest,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def mothership_cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mothership", *args, "--kubeconfig", str(self.ms.cfg.kubeconfig), "-n", self.ns],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def join_command(self, *extra: str) -> str:
        proc = self.mothership_cli(
            "token", "create", self.name, "--join-command", *machines.SHARED_DISK_JOIN_ARGS, *extra
        )
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, f"the join command is not one line: {proc.stdout[:300]}"
        return lines[0]

    def wait(self, what: str, check: Any, timeout: float) -> None:
        try:
            kube.wait_until(what, check, timeout)
        except Exception as exc:
            raise AssertionError(f"{exc}\n{self.diagnose()}") from exc

    def diagnose(self) -> str:
        parts = []
        if self.kubeconfig.exists():
            parts.append(self.kubectl("get", "nodes,pods", "-A", "-o", "wide").stdout)
            parts.append(self.kubectl("describe", "nodes").stdout[-4000:])
            parts.append(self.kubectl("get", "events", "-A").stdout[-4000:])
        parts.append("--- operator log\n" + self.op.log.read_text()[-3000:])
        return "\n".join(parts)


@pytest.fixture(scope="module")
def tenant(
    mothership_real: LocalMothership,
    kc: Client,
    operator: Operator,
    ns: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Tenant:
    t = Tenant(mothership_real, kc, operator, ns, tmp_path_factory.mktemp("tenant"))
    t.create()
    return t


@pytest.fixture(scope="module")
def edge(mothership_real: LocalMothership) -> Iterator[list[machines.Machine]]:
    """Two machines of one edge site (one LAN, behind NAT)."""
    state = mothership_real.cfg.state_dir
    made = [machines.create(state, f"edge-{uuid.uuid4().hex[:4]}", "edge") for _ in range(2)]
    yield made
    for m in made:
        machines.delete(state, m.name)
        assert machines.leftovers(m) == [], f"machine {m.name} left {machines.leftovers(m)}"


def _deployment_available(client: Client, name: str, namespace: str = "kube-system") -> bool:
    dep = client.get(Deployment, name, namespace=namespace)
    conds = (dep.status.conditions if dep.status else None) or []
    return any(c.type == "Available" and c.status == "True" for c in conds)


def _connect(host: str, port: int) -> str:
    """What happens when this host opens a TCP connection: 'open' or the error."""
    with socket.socket() as s:
        s.settimeout(3)
        try:
            s.connect((host, port))
            return "open"
        except OSError as exc:
            return type(exc).__name__


def _join(machine: machines.Machine, command: str) -> subprocess.CompletedProcess[str]:
    return machines.run(machine, ["sh", "-c", command], timeout=JOIN_WITHIN)


# --- tests --------------------------------------------------------------------------------------


def test_edge_machines_join_with_one_command_and_everything_works_through_the_tunnel(
    tenant: Tenant, edge: list[machines.Machine]
) -> None:
    command = tenant.join_command("--expiry", "1h")
    started = time.monotonic()
    for m in edge:
        proc = _join(m, command)
        assert proc.returncode == 0, f"join of {m.name} failed:\n{proc.stderr[-3000:]}"
        assert f"joined {tenant.ns}/{tenant.name} as node {m.name}" in proc.stderr
    client = tenant.client()
    for m in edge:
        tenant.wait(f"node {m.name} Ready", lambda m=m: node_ready(client, m.name), JOIN_WITHIN)
    print(f"two machines joined and Ready in {time.monotonic() - started:.1f}s")

    # The mothership cannot open a connection to either machine (kubelet, sshd).
    for m in edge:
        for port in (10250, 22):
            assert _connect(m.address, port) != "open", f"{m.address}:{port} is reachable"

    # A 2-replica Deployment spread over both machines, behind a Service.
    proc = tenant.kubectl_apply(_web_manifest())
    assert proc.returncode == 0, proc.stderr

    def spread() -> bool:
        pods = [p for p in client.list(Pod, namespace="default", labels={"app": "web"})]
        ready = [
            p
            for p in pods
            if p.status
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]
        return len({p.spec.nodeName for p in ready if p.spec}) == 2

    tenant.wait("web pods Ready on both machines", spread, 240)
    pods = list(client.list(Pod, namespace="default", labels={"app": "web"}))
    a, b = pods[0], pods[1]
    assert a.status and b.status and a.status.podIP and b.status.podIP
    # pod -> pod across machines, pod -> Service name, pod -> the tenant's kubernetes Service.
    name_a = a.metadata.name if a.metadata else ""

    def fetch(url: str) -> subprocess.CompletedProcess[str]:
        # (busybox 1.35's wget crashes with -T; the kubectl call has its own timeout)
        return tenant.kubectl("exec", name_a, "--", "wget", "-q", "-O", "-", url)

    out = fetch(f"http://{b.status.podIP}:8080/")
    assert out.returncode == 0 and "hello from" in out.stdout, ("pod -> pod", out.stderr)
    # Names need CoreDNS, which starts on the workers too: a user waits for it the same way.
    tenant.wait("CoreDNS Available", lambda: _deployment_available(client, "coredns"), 240)
    by_name = "http://web.default.svc.cluster.local:8080/"
    tenant.wait(
        "the web Service answers by name",
        lambda: "hello from" in fetch(by_name).stdout,
        60,
    )
    # A TCP connection: busybox's TLS cannot talk to the API server's ECDSA certificate.
    out = tenant.kubectl(
        "exec", name_a, "--", "sh", "-c", "echo | nc -w 5 kubernetes.default.svc 443"
    )
    assert out.returncode == 0 and not out.stderr, f"pod -> kubernetes Service: {out.stderr}"
    # logs and exec through the tunnel (the API server cannot reach the kubelets otherwise).
    logs = tenant.kubectl("logs", name_a)
    assert logs.returncode == 0, logs.stderr
    # port-forward through the tunnel.
    _port_forward_works(tenant, name_a)
    # kubectl top through metrics-server, an aggregated API served on a worker.
    tenant.wait(
        "kubectl top nodes",
        lambda: tenant.kubectl("top", "nodes").returncode == 0,
        240,
    )
    top = tenant.kubectl("top", "nodes").stdout
    assert all(m.name in top for m in edge), top
    # An admission webhook served by a pod on a worker: the API server calls it only
    # through the tunnel, on every create it matches (failurePolicy Fail).
    _webhook_on_a_worker_admits_and_denies(tenant, {m.name for m in edge})


def _web_manifest() -> str:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": {"app": "web"}},
                        }
                    ],
                    "containers": [
                        {
                            "name": "web",
                            "image": BUSYBOX,
                            "command": [
                                "sh",
                                "-c",
                                'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html'
                                " && echo serving && exec httpd -f -p 8080 -h /www",
                            ],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]},
    }
    return yaml.safe_dump_all([deployment, service])


def _webhook_manifests(ca_pem: bytes, serving: CertKey) -> str:
    name, labels = "webhook-demo", {"app": "webhook-demo"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(serving.cert_pem).decode(),
            "tls.key": base64.b64encode(serving.key_pem).decode(),
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": webhook_demo.IMAGE,
                            "ports": [{"containerPort": webhook_demo.PORT}],
                            "volumeMounts": [{"name": "tls", "mountPath": "/tls"}],
                            "readinessProbe": {
                                "httpGet": {
                                    "path": "/healthz",
                                    "port": webhook_demo.PORT,
                                    "scheme": "HTTPS",
                                },
                                "periodSeconds": 2,
                            },
                        }
                    ],
                    "volumes": [{"name": "tls", "secret": {"secretName": name}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": webhook_demo.PORT}]},
    }
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "configmaps.webhook-demo.example.com",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                # Only objects that ask for it: the cluster's own ConfigMaps never wait on it.
                "objectSelector": {"matchLabels": {"webhook-demo": "on"}},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ],
                "clientConfig": {
                    "service": {"name": name, "namespace": "default", "path": webhook_demo.PATH},
                    "caBundle": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
    }
    return yaml.safe_dump_all([secret, deployment, service, config])


def _webhook_on_a_worker_admits_and_denies(tenant: Tenant, workers: set[str]) -> None:
    ca = new_ca("webhook-demo-ca")
    serving = issue_cert(ca, "webhook-demo", dns_names=["webhook-demo.default.svc"], server=True)
    applied = tenant.kubectl_apply(_webhook_manifests(ca.cert_pem, serving))
    assert applied.returncode == 0, applied.stderr
    tenant.wait(
        "webhook-demo Available",
        lambda: _deployment_available(tenant.client(), "webhook-demo", "default"),
        120,
    )
    pods = list(tenant.client().list(Pod, namespace="default", labels={"app": "webhook-demo"}))
    on = {p.spec.nodeName for p in pods if p.spec}
    assert on and on <= workers, f"webhook-demo runs on {on}, not on a worker"

    def create(name: str, *labels: str) -> subprocess.CompletedProcess[str]:
        return tenant.kubectl_apply(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": name,
                        "namespace": "default",
                        "labels": dict(label.split("=", 1) for label in labels),
                    },
                }
            ),
            "create",
        )

    allowed = create("webhook-allowed", "webhook-demo=on")
    assert allowed.returncode == 0, f"an object the webhook allows was refused: {allowed.stderr}"
    denied = create("webhook-denied", "webhook-demo=on", f"{webhook_demo.DENY_LABEL}=not-here")
    assert denied.returncode != 0, "the webhook's deny label was admitted"
    pod_names = {p.metadata.name for p in pods if p.metadata}
    assert "denied by webhook-demo on " in denied.stderr, denied.stderr
    assert any(f"on {p}: not-here" in denied.stderr for p in pod_names), denied.stderr


def _port_forward_works(tenant: Tenant, pod: str) -> None:
    port = free_ports(["port-forward"])["port-forward"]
    proc = subprocess.Popen(
        [
            str(tenant.ms.cfg.bin_dir / "kubectl"),
            "--kubeconfig",
            str(tenant.kubeconfig),
            "port-forward",
            f"pod/{pod}",
            f"{port}:8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
                    return b"hello from" in resp.read()
            except OSError:
                return False

        tenant.wait("port-forward answers", answers, 30)
    finally:
        proc.terminate()
        proc.wait(10)


def _token_of(command: str) -> tuple[str, bytes, str]:
    """(server, CA, bootstrap token) of the token a join command carries."""
    script = gzip.decompress(base64.b64decode(command.split()[1])).decode()
    line = next(x for x in script.splitlines() if x.startswith("JOIN_TOKEN="))
    return node_join.token_parts(line.split("=", 1)[1].strip("'"))


def _api_answer(server: str, ca_pem: bytes, bearer: str) -> int:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    req = urllib.request.Request(
        f"{server}/apis/certificates.k8s.io/v1/certificatesigningrequests?limit=1",
        headers={"Authorization": f"Bearer {bearer}"},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _nothing_installed(machine: machines.Machine) -> None:
    probe = machines.run(
        machine,
        ["sh", "-c", "ls /var/lib/mothership-node /usr/local/bin/kubelet /etc/kubernetes 2>&1"],
    )
    assert probe.stdout.count("No such file") == 3, f"the join left files: {probe.stdout}"


def test_expired_and_revoked_tokens_fail_at_once_with_nothing_installed(
    tenant: Tenant, mothership_real: LocalMothership
) -> None:
    state = mothership_real.cfg.state_dir
    spare = machines.create(state, f"spare-{uuid.uuid4().hex[:4]}", "edge")
    try:
        # Expired: the command knows its token's expiry and refuses before touching anything.
        expiring = tenant.join_command("--expiry", "2s")
        deadline = time.time() + 3
        kube.wait_until("the token's expiry", lambda: time.time() > deadline, 10)
        proc = _join(spare, expiring)
        assert proc.returncode == 1 and "the join token expired at" in proc.stderr, proc.stderr
        _nothing_installed(spare)

        # Revoked: deleting the JoinTokenRequest deletes the bootstrap token in the tenant.
        name = f"revoked-{uuid.uuid4().hex[:4]}"
        revoked = tenant.join_command("--name", name)
        server, ca_pem, bearer = _token_of(revoked)
        assert _api_answer(server, ca_pem, bearer) == 200
        tenant.kc.delete(JTR, name, namespace=tenant.ns)
        tenant.wait(
            "the API server refusing the revoked token",
            lambda: _api_answer(server, ca_pem, bearer) == 401,
            60,
        )
        proc = _join(spare, revoked)
        assert proc.returncode == 1, proc.stderr
        assert "refused the token (401): it was revoked" in proc.stderr, proc.stderr
        _nothing_installed(spare)
    finally:
        machines.delete(state, spare.name)


def _restarts(client: Client, node: str) -> dict[str, int]:
    pods = client.list(Pod, namespace="*", fields={"spec.nodeName": node})
    return {
        f"{p.metadata.namespace}/{p.metadata.name}": sum(
            c.restartCount for c in (p.status.containerStatuses or [])
        )
        for p in pods
        if p.metadata and p.status
    }


def test_a_link_cut_for_60s_makes_the_node_not_ready_then_ready_with_no_restarts(
    tenant: Tenant, edge: list[machines.Machine]
) -> None:
    machine = edge[0]
    client = tenant.client()
    assert node_ready(client, machine.name)
    before = _restarts(client, machine.name)
    assert before, "no pods on the machine to watch"
    cut = time.monotonic()
    machines.set_link(machine, up=False)
    try:
        tenant.wait(
            f"node {machine.name} NotReady with its link cut",
            lambda: not node_ready(client, machine.name),
            120,
        )
        kube.wait_until("60 s of cut link", lambda: time.monotonic() - cut >= 60, 90)
    finally:
        machines.set_link(machine, up=True)
    restored = time.monotonic()
    tenant.wait(f"node {machine.name} Ready again", lambda: node_ready(client, machine.name), 180)
    pod = next(
        p
        for p in client.list(Pod, namespace="default", fields={"spec.nodeName": machine.name})
        if p.metadata
    )
    assert pod.metadata is not None
    tenant.wait(
        "exec through the tunnel again",
        lambda: tenant.kubectl("exec", pod.metadata.name, "--", "true").returncode == 0,
        120,
    )
    print(f"after the link came back: exec works in {time.monotonic() - restored:.1f}s")
    after = _restarts(client, machine.name)
    assert after == before, f"containers restarted: {before} -> {after}"


def test_a_machine_on_a_slow_lossy_link_joins_and_execs(
    tenant: Tenant, mothership_real: LocalMothership
) -> None:
    """200 ms round trips and 5 % packet loss each way, from before the join to the execs."""
    state = mothership_real.cfg.state_dir
    lossy = machines.create(state, f"lossy-{uuid.uuid4().hex[:4]}", "edge")
    connect_ms = (
        f"s=$(date +%s%N); exec 3<>/dev/tcp/{mothership_real.cfg.node_ip}/{API_PORT}; "
        "echo $(( ($(date +%s%N) - s) / 1000000 ))"
    )
    try:
        machines.set_latency(lossy, 200)
        rtt = [int(machines.run(lossy, ["bash", "-c", connect_ms]).stdout) for _ in range(3)]
        assert min(rtt) >= 200, f"a TCP connect took {rtt} ms: the delay is not applied"
        machines.set_loss(lossy, 5)
        started = time.monotonic()
        proc = _join(lossy, tenant.join_command("--expiry", "1h"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        print(f"join script over 200 ms RTT and 5 % loss: {time.monotonic() - started:.1f}s")
        client = tenant.client()
        tenant.wait(f"node {lossy.name} Ready", lambda: node_ready(client, lossy.name), JOIN_WITHIN)
        pod = _kube_proxy_pod(client, lossy.name)
        tenant.wait("exec over the lossy link", lambda: not _execs(tenant, pod, 1), 120)
        print(f"node Ready, exec works: {time.monotonic() - started:.1f}s after the join began")
        failures = _execs(tenant, pod, 10)
        assert failures == [], f"{len(failures)} of 10 execs failed: {failures}"
    finally:
        machines.delete(state, lossy.name)
        tenant.kubectl("delete", "node", lossy.name)


def test_a_machine_leaves_with_one_command(tenant: Tenant, edge: list[machines.Machine]) -> None:
    machine = edge[-1]
    client = tenant.client()
    if not node_ready(client, machine.name):
        pytest.skip("the join test did not leave a joined machine")
    proc = machines.run(machine, ["mothership-node-leave"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"kubectl delete node {machine.name}" in proc.stderr
    left = machines.run(
        machine, ["sh", "-c", "ps -eo comm= | grep -E 'kubelet|containerd' || true"]
    )
    assert left.stdout.strip() == "", f"still running after leave: {left.stdout}"
    _nothing_installed(machine)
    tenant.wait(
        f"node {machine.name} NotReady after leaving",
        lambda: not node_ready(client, machine.name),
        120,
    )
    assert tenant.kubectl("delete", "node", machine.name).returncode == 0


def _unit(machine: machines.Machine, unit: str, prop: str) -> str:
    out = machines.run(machine, ["systemctl", "show", "-p", prop, "--value", unit], timeout=30)
    return out.stdout.strip()


def test_a_systemd_machine_joins_as_units_that_systemd_restarts_and_leaves_clean(
    tenant: Tenant, mothership_real: LocalMothership
) -> None:
    """The join on a server whose init is systemd: containerd and the kubelet become enabled
    units with the systemd cgroup driver, a killed kubelet is restarted by systemd alone, and
    the leave command disables and removes the units. Its token is single-use: revoked once
    the node is registered, which the kubelet (restarted below) no longer needs."""
    state = mothership_real.cfg.state_dir
    booted = time.monotonic()
    machine = machines.create(state, f"sysd-{uuid.uuid4().hex[:4]}", "edge", init="systemd")
    print(f"systemd machine booted in {time.monotonic() - booted:.1f}s")
    try:
        started = time.monotonic()
        request = f"once-{uuid.uuid4().hex[:4]}"
        command = tenant.join_command("--expiry", "1h", "--single-use", "--name", request)
        server, ca_pem, bearer = _token_of(command)
        proc = _join(machine, command)
        assert proc.returncode == 0, f"join failed:\n{proc.stderr[-3000:]}"
        assert "started containerd and kubelet (systemd)" in proc.stderr, proc.stderr[-2000:]
        client = tenant.client()
        tenant.wait(
            f"node {machine.name} Ready", lambda: node_ready(client, machine.name), JOIN_WITHIN
        )
        print(f"systemd machine joined and Ready in {time.monotonic() - started:.1f}s")

        def used() -> str:
            status = tenant.kc.get(JTR, request, namespace=tenant.ns).to_dict().get("status")
            conds = (status or {}).get("conditions") or []
            return next((c["message"] for c in conds if c["type"] == "TokenUsed"), "")

        tenant.wait("the single-use token marked used", used, 60)
        assert f"node {machine.name} joined with token" in used(), used()
        tenant.wait(
            "the API server refusing the used token",
            lambda: _api_answer(server, ca_pem, bearer) == 401,
            30,
        )
        for unit in ("mothership-containerd.service", "mothership-kubelet.service"):
            assert _unit(machine, unit, "ActiveState") == "active"
            assert _unit(machine, unit, "UnitFileState") == "enabled"
        # The kubelet asked systemd for its pods' cgroups (the systemd cgroup driver).
        slices = machines.run(machine, ["systemctl", "list-units", "--type=slice", "--plain"])
        assert "kubepods.slice" in slices.stdout, slices.stdout
        pod = _kube_proxy_pod(client, machine.name)
        tenant.wait("exec into the node's kube-proxy", lambda: not _execs(tenant, pod, 1), 120)

        # A killed kubelet comes back by systemd's Restart= alone, and the node stays joined.
        first = _unit(machine, "mothership-kubelet.service", "MainPID")
        machines.run(machine, ["systemctl", "kill", "-s", "KILL", "mothership-kubelet"], check=True)
        tenant.wait(
            "systemd restarting the killed kubelet",
            lambda: (
                _unit(machine, "mothership-kubelet.service", "MainPID") not in ("0", first)
                and _unit(machine, "mothership-kubelet.service", "ActiveState") == "active"
            ),
            60,
        )
        restarts = _unit(machine, "mothership-kubelet.service", "NRestarts")
        assert int(restarts) >= 1, restarts
        tenant.wait("exec after the kubelet's restart", lambda: not _execs(tenant, pod, 1), 120)

        proc = machines.run(machine, ["mothership-node-leave"], timeout=120)
        assert proc.returncode == 0, proc.stderr
        units = machines.run(
            machine,
            [
                "systemctl",
                "list-unit-files",
                "--no-legend",
                "mothership-kubelet*",
                "mothership-containerd*",
            ],
        )
        assert units.stdout.strip() == "", f"units left after leaving: {units.stdout}"
        left = machines.run(
            machine, ["sh", "-c", "ps -eo comm= | grep -E 'kubelet|containerd' || true"]
        )
        assert left.stdout.strip() == "", f"still running after leave: {left.stdout}"
        _nothing_installed(machine)
    finally:
        machines.delete(state, machine.name)
        tenant.kubectl("delete", "node", machine.name)
    assert machines.leftovers(machine) == [], machines.leftovers(machine)


def _agent_server_connections(machine: machines.Machine) -> int:
    """Tunnels the machine's Konnectivity agent holds, one per control-plane replica."""
    url = f"http://127.0.0.1:{AGENT_HEALTH_PORT}/metrics"  # the admin port only redirects here
    out = machines.run(machine, ["curl", "-s", "--max-time", "5", url])
    for line in out.stdout.splitlines():
        if line.startswith("konnectivity_network_proxy_agent_open_server_connections"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _kube_proxy_pod(client: Client, node: str) -> str:
    return next(
        p.metadata.name
        for p in client.list(Pod, namespace="kube-system", fields={"spec.nodeName": node})
        if p.metadata and p.metadata.name and p.metadata.name.startswith("kube-proxy")
    )


def _execs(tenant: Tenant, pod: str, count: int) -> list[str]:
    failures = []
    for i in range(count):
        out = tenant.kubectl("-n", "kube-system", "exec", pod, "--", "kube-proxy", "--version")
        if out.returncode != 0:
            failures.append(f"{i}: {out.stderr.strip()[:200]}")
    return failures


def test_three_replicas_serve_every_exec_and_a_rolling_upgrade_keeps_the_worker(
    mothership_real: LocalMothership,
    kc: Client,
    operator: Operator,
    ns: str,
    postgres_server: Any,
    tmp_path: Path,
) -> None:
    """k0smotron's "No agent available": with 3 servers, each must have the agent; then the
    control plane rolls v1.34 -> v1.35 one replica at a time and the worker stays joined."""
    from lightkube.resources.apps_v1 import StatefulSet
    from lightkube.types import PatchType

    from mothership.testenv.pins import KUBERNETES_VERSION, PREVIOUS_KUBERNETES_VERSION

    db = postgres_server.create_database(f"ha_{uuid.uuid4().hex[:6]}", mothership_real.cfg.host_ip)
    ha = Tenant(mothership_real, kc, operator, ns, tmp_path, name="ha", ports=(31444, 31133))
    ha.create(
        replicas=3,
        version=PREVIOUS_KUBERNETES_VERSION,
        storage={"type": "kine", "kine": {"dataSourceURL": db.pod_url}},
    )
    state = mothership_real.cfg.state_dir
    machine = machines.create(state, f"ha-{uuid.uuid4().hex[:4]}", "edge")
    try:
        proc = _join(machine, ha.join_command("--expiry", "1h"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        client = ha.client()
        ha.wait(f"node {machine.name} Ready", lambda: node_ready(client, machine.name), JOIN_WITHIN)
        node = client.get(Node, machine.name)
        assert node.status and node.status.nodeInfo
        assert node.status.nodeInfo.kubeletVersion == PREVIOUS_KUBERNETES_VERSION
        ha.wait(
            "the agent connected to all 3 Konnectivity servers",
            lambda: _agent_server_connections(machine) == 3,
            180,
        )
        failures = _execs(ha, _kube_proxy_pod(client, machine.name), 50)
        assert failures == [], f"{len(failures)} of 50 execs failed: {failures[:5]}"

        before = kc.get(StatefulSet, "kmc-ha", namespace=ns).status.updateRevision
        kc.patch(
            Cluster,
            "ha",
            {"spec": {"version": KUBERNETES_VERSION}},
            namespace=ns,
            patch_type=PatchType.MERGE,
        )

        def rolled() -> bool:
            status = kc.get(StatefulSet, "kmc-ha", namespace=ns).status
            return bool(
                status.updateRevision != before
                and status.currentRevision == status.updateRevision
                and status.updatedReplicas == 3
                and status.readyReplicas == 3
            )

        ha.wait("all three replicas on the new version", rolled, 420)
        ha.wait(
            "the agent connected to the 3 new servers",
            lambda: _agent_server_connections(machine) == 3,
            180,
        )
        assert node_ready(client, machine.name)
        ha.wait(
            "kube-proxy of the new version on the worker",
            lambda: "v1.35" in ha.kubectl(
                "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-proxy",
                "-o", "jsonpath={.items[*].spec.containers[0].image}",
            ).stdout,
            180,
        )  # fmt: skip
        pod = _kube_proxy_pod(client, machine.name)
        ha.wait(
            "exec after the upgrade",
            lambda: not _execs(ha, pod, 1),  # the image has kube-proxy and netfilter tools only
            120,
        )
        failures = _execs(ha, pod, 20)
        assert failures == [], f"{len(failures)} of 20 execs failed after the upgrade: {failures}"
    finally:
        machines.delete(state, machine.name)
        kc.delete(Cluster, "ha", namespace=ns)
