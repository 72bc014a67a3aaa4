"""The operator, run as `mothership operator run`, reconciling Clusters on a kwok mothership."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import ResourceQuotaSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Namespace,
    ResourceQuota,
    Secret,
    Service,
)
from lightkube.types import PatchType

from mothership.install import apply
from mothership.testenv import health, kube
from mothership.testenv.local import LocalMothership
from mothership.testenv.ports import free_ports
from tests.crds import apply_checked_in_crds

Cluster = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")


class Operator:
    """One `mothership operator run` subprocess and its metrics endpoint."""

    def __init__(self, kubeconfig: Path, log: Path, identity: str = "op-a") -> None:
        self.kubeconfig, self.log, self.identity = kubeconfig, log, identity
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports = free_ports(["metrics", "health", "webhook"])

    def start(self) -> None:
        argv = [
            "mothership", "operator", "run",
            f"--kubeconfig={self.kubeconfig}",
            f"--metrics-port={self.ports['metrics']}",
            f"--health-port={self.ports['health']}",
            "--resync=3",
            "--log-format=plain",
            f"--webhook-port={self.ports['webhook']}",
            f"--webhook-cert-dir={self.log.parent / 'webhook'}",
            "--unregister-webhooks-on-exit",
            f"--leader-identity={self.identity}",
        ]  # fmt: skip
        fh = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
        kube.wait_until("operator healthz", self._healthy, 60)

    def _healthy(self) -> bool:
        assert self.proc and self.proc.poll() is None, self.log.read_text()[-3000:]
        return health.http_ok(f"http://127.0.0.1:{self.ports['health']}/healthz")

    def metric(self, name: str) -> float:
        _, text = health.http_get(f"http://127.0.0.1:{self.ports['metrics']}/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def kc(mothership_kwok: LocalMothership) -> Client:
    return apply_checked_in_crds(kube.client(mothership_kwok.cfg.kubeconfig))


@pytest.fixture(scope="module")
def operator(mothership_kwok: LocalMothership, kc: Client, tmp_path_factory) -> Iterator[Operator]:
    op = Operator(mothership_kwok.cfg.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log")
    op.start()
    yield op
    op.stop()


@pytest.fixture
def ns(kc: Client) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:6]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kc.delete(Namespace, name)


def _cluster(name: str, namespace: str, **spec: object) -> object:
    return Cluster(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec={"replicas": 1, "version": "v1.35.4-k0s.0", **spec},
    )


def _exists(kc: Client, res: type, name: str, ns: str) -> bool:
    try:
        kc.get(res, name, namespace=ns)
        return True
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise


def _condition(kc: Client, name: str, ns: str, kind: str) -> dict | None:
    status = kc.get(Cluster, name, namespace=ns).status or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def test_basic_cluster_gets_every_object_and_a_status(
    kc: Client, operator: Operator, ns: str
) -> None:
    kc.create(_cluster("basic", ns))
    for res, name in (
        (StatefulSet, "kmc-basic"),
        (Service, "kmc-basic"),
        (ConfigMap, "kmc-basic-config"),
        (Secret, "basic-ca"),
        (Secret, "basic-proxy"),
        (Secret, "basic-sa"),
        (Secret, "basic-etcd"),
        (Secret, "basic-kubeconfig"),
    ):
        kube.wait_until(f"{res.__name__} {name}", lambda r=res, n=name: _exists(kc, r, n, ns), 60)

    def ready() -> bool:
        st = kc.get(Cluster, "basic", namespace=ns).status or {}
        return st.get("readyReplicas") == 1

    kube.wait_until("status.readyReplicas == 1 (kwok pod Ready)", ready, 90)
    cluster = kc.get(Cluster, "basic", namespace=ns)
    st = cluster.status
    assert st["selector"] == "app=k0smotron,cluster=basic,component=control-plane"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", st["externalAddress"])
    types = {c["type"] for c in st["conditions"]}
    assert {"Available", "ControlPlaneFunctional", "CertificatesAvailable"} <= types
    # The tenant cannot serve on kwok: Available says so instead of pretending.
    functional = _condition(kc, "basic", ns, "ControlPlaneFunctional")
    assert functional and functional["status"] == "False"
    # The user's spec is never written to.
    assert cluster.metadata.generation == 1
    assert "externalAddress" not in cluster.spec

    sts = kc.get(StatefulSet, "kmc-basic", namespace=ns)
    owner = sts.metadata.ownerReferences[0]
    assert (owner.kind, owner.name, owner.controller) == ("Cluster", "basic", True)
    assert sts.metadata.labels["app.kubernetes.io/managed-by"] == "mothership"

    kubeconfig = yaml.safe_load(
        base64.b64decode(kc.get(Secret, "basic-kubeconfig", namespace=ns).data["value"])
    )
    assert (
        kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{st['externalAddress']}:30443"
    )


def test_resync_of_a_converged_cluster_writes_nothing(
    kc: Client, operator: Operator, ns: str
) -> None:
    kc.create(_cluster("quiet", ns))

    def settled() -> bool:
        status = kc.get(Cluster, "quiet", namespace=ns).status or {}
        conds = status.get("conditions") or []
        return status.get("readyReplicas") == 1 and all(c["status"] != "Unknown" for c in conds)

    kube.wait_until("quiet converged and probed", settled, 90)

    def versions() -> dict[str, str]:
        out = {"Cluster": kc.get(Cluster, "quiet", namespace=ns).metadata.resourceVersion}
        for res in (StatefulSet, Service, ConfigMap, Secret):
            for obj in kc.list(res, namespace=ns, labels={"cluster": "quiet"}):
                out[f"{res.__name__}/{obj.metadata.name}"] = obj.metadata.resourceVersion
        return out

    before = versions()
    reconciles = operator.metric("mothership_reconciles_total")
    kube.wait_until(
        "two resync rounds",
        lambda: operator.metric("mothership_reconciles_total") >= reconciles + 4,
        60,
    )
    assert versions() == before


def test_restarted_operator_keeps_the_ca_and_rolls_nothing(
    kc: Client, operator: Operator, ns: str
) -> None:
    kc.create(_cluster("steady", ns))
    kube.wait_until("kubeconfig", lambda: _exists(kc, Secret, "steady-kubeconfig", ns), 60)
    ca_before = kc.get(Secret, "steady-ca", namespace=ns).data
    sts_before = kc.get(StatefulSet, "kmc-steady", namespace=ns).metadata
    operator.stop(signal.SIGKILL)
    operator.start()
    kube.wait_until(
        "operator reconciled again", lambda: operator.metric("mothership_reconciles_total") > 2, 60
    )
    assert kc.get(Secret, "steady-ca", namespace=ns).data == ca_before
    sts_after = kc.get(StatefulSet, "kmc-steady", namespace=ns).metadata
    assert sts_after.generation == sts_before.generation


def test_changing_replicas_and_version_updates_the_statefulset(
    kc: Client, operator: Operator, ns: str
) -> None:
    kc.create(_cluster("grow", ns))
    kube.wait_until("sts", lambda: _exists(kc, StatefulSet, "kmc-grow", ns), 60)
    kc.patch(
        Cluster,
        "grow",
        {"spec": {"replicas": 3, "version": "v1.35.5-k0s.0"}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )

    def updated() -> bool:
        sts = kc.get(StatefulSet, "kmc-grow", namespace=ns)
        image = sts.spec.template.spec.containers[0].image
        return sts.spec.replicas == 3 and image.endswith(":v1.35.5-k0s.0")

    kube.wait_until("statefulset follows the spec", updated, 60)


def test_deleting_a_cluster_removes_it_and_its_dependents(
    kc: Client, operator: Operator, ns: str
) -> None:
    kc.create(_cluster("gone", ns))
    kube.wait_until("sts", lambda: _exists(kc, StatefulSet, "kmc-gone", ns), 60)
    assert "k0smotron.io/finalizer" in kc.get(Cluster, "gone", namespace=ns).metadata.finalizers
    kc.delete(Cluster, "gone", namespace=ns)
    kube.wait_until("cluster gone", lambda: not _exists(kc, Cluster, "gone", ns), 60)
    kube.wait_until(
        "statefulset garbage-collected", lambda: not _exists(kc, StatefulSet, "kmc-gone", ns), 90
    )


def _refused(kc: Client, name: str, ns: str) -> dict | None:
    available = _condition(kc, name, ns, "Available")
    return available if available and available["reason"] == "RefusedByAPIServer" else None


def _warnings(kc: Client, name: str, ns: str, reason: str) -> list[str]:
    return [
        e.message or ""
        for e in kc.list(Event, namespace=ns)
        if e.involvedObject.name == name and e.reason == reason
    ]


def test_an_object_the_api_server_refuses_is_told_on_the_cluster_with_its_spec_field(
    kc: Client, operator: Operator, ns: str
) -> None:
    """A patch admission cannot judge renders a StatefulSet the API server will not store:
    the Cluster says which object, the API server's reason and the spec field, the CLI shows
    it, and fixing the spec clears it."""
    bad_patch = {
        "target": {"kind": "StatefulSet", "component": "control-plane"},
        "patch": {
            "type": "json",
            "content": '[{"op": "add", "path": "/spec/template/spec/restartPolicy",'
            ' "value": "Never"}]',
        },
    }
    kc.create(_cluster("refused", ns, patches=[bad_patch]))
    kube.wait_until("Available=False RefusedByAPIServer", lambda: _refused(kc, "refused", ns), 60)
    message = (_refused(kc, "refused", ns) or {})["message"]
    assert "StatefulSet kmc-refused" in message, message
    assert "restartPolicy" in message and "422 Invalid" in message, message
    assert "it comes from spec.patches[0]" in message, message
    assert not _exists(kc, StatefulSet, "kmc-refused", ns)
    kube.wait_until(
        "a RefusedByAPIServer event",
        lambda: _warnings(kc, "refused", ns, "RefusedByAPIServer"),
        30,
    )
    shown = subprocess.run(
        ["mothership", "cluster", "get", "refused", "-n", ns,
         f"--kubeconfig={operator.kubeconfig}"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "RefusedByAPIServer" in shown.stdout and "spec.patches[0]" in shown.stdout, shown.stdout
    # Resyncs (every 3 s here) retry the write but do not repeat the event.
    reconciles = operator.metric("mothership_reconciles_total")
    kube.wait_until(
        "two resync rounds",
        lambda: operator.metric("mothership_reconciles_total") >= reconciles + 2,
        60,
    )
    assert len(_warnings(kc, "refused", ns, "RefusedByAPIServer")) == 1

    kc.patch(Cluster, "refused", {"spec": {"patches": None}}, namespace=ns,
             patch_type=PatchType.MERGE)  # fmt: skip
    kube.wait_until("the StatefulSet", lambda: _exists(kc, StatefulSet, "kmc-refused", ns), 60)
    kube.wait_until("the refusal cleared", lambda: _refused(kc, "refused", ns) is None, 60)


def test_a_quota_that_refuses_a_child_is_told_and_retried_without_a_spec_change(
    kc: Client, operator: Operator, ns: str
) -> None:
    """A namespace quota is the platform's, not the spec's: the Cluster names the refused
    object and the quota; once the quota allows it, the next resync carries on."""
    quota = ResourceQuota(
        metadata=ObjectMeta(name="few-configmaps"),
        spec=ResourceQuotaSpec(hard={"configmaps": "1"}),  # kube-root-ca.crt has it
    )
    kc.create(quota, namespace=ns)
    kc.create(_cluster("quota", ns))
    kube.wait_until("Available=False RefusedByAPIServer", lambda: _refused(kc, "quota", ns), 60)
    message = (_refused(kc, "quota", ns) or {})["message"]
    assert "ConfigMap kmc-" in message and "403 Forbidden" in message, message
    assert "few-configmaps" in message, message
    kc.delete(ResourceQuota, "few-configmaps", namespace=ns)
    kube.wait_until("the StatefulSet", lambda: _exists(kc, StatefulSet, "kmc-quota", ns), 60)
    kube.wait_until("the refusal cleared", lambda: _refused(kc, "quota", ns) is None, 60)


def test_a_deleting_cluster_reports_the_deleting_condition(
    kc: Client, operator: Operator, ns: str
) -> None:
    """A second finalizer holds the Cluster after ours is gone, so the condition can be read."""
    hold = "example.com/hold"
    kc.create(_cluster("going", ns))
    kube.wait_until(
        "our finalizer",
        lambda: (
            "k0smotron.io/finalizer"
            in (kc.get(Cluster, "going", namespace=ns).metadata.finalizers or [])
        ),
        60,
    )
    # The first reconcile's status is written before the deletion, so "the other conditions
    # stay" has something to keep (a Cluster deleted before its first status has none).
    kube.wait_until(
        "the first status",
        lambda: _condition(kc, "going", ns, "CertificatesAvailable") is not None,
        60,
    )
    finalizers = kc.get(Cluster, "going", namespace=ns).metadata.finalizers or []
    kc.patch(
        Cluster,
        "going",
        {"metadata": {"finalizers": [*finalizers, hold]}},
        namespace=ns,
        patch_type=PatchType.MERGE,
    )
    kc.delete(Cluster, "going", namespace=ns)
    try:
        kube.wait_until(
            "operator finalizer removed",
            lambda: kc.get(Cluster, "going", namespace=ns).metadata.finalizers == [hold],
            60,
        )
        deleting = _condition(kc, "going", ns, "Deleting")
        assert deleting is not None and deleting["status"] == "True", deleting
        assert deleting["reason"] == "Deleting"
        assert "volume claims kept" in deleting["message"], deleting
        # the other conditions stay as they were
        assert _condition(kc, "going", ns, "CertificatesAvailable") is not None
    finally:
        kc.patch(
            Cluster,
            "going",
            {"metadata": {"finalizers": []}},
            namespace=ns,
            patch_type=PatchType.MERGE,
        )
    kube.wait_until("cluster gone", lambda: not _exists(kc, Cluster, "going", ns), 60)


@pytest.fixture(scope="module")
def tenant_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMothership]:
    """A real kube-apiserver standing in for a tenant control plane.

    The k0s image cannot run here, so the Cluster is given this API server's CA (as a
    user-provided `<name>-ca` Secret) and its address: the operator then signs the
    kubeconfig with that CA and talks to a real API, which is what it does in production.
    """
    ms = LocalMothership.configure(
        "tenant", state_dir=tmp_path_factory.mktemp("tenant"), nodes="none"
    )
    ms.up(timeout=120)
    yield ms
    ms.down()


def _served_cluster(kc: Client, tenant: LocalMothership, name: str, ns: str) -> None:
    pki_dir = tenant.cfg.pki_dir
    kc.create(
        Secret(
            metadata=ObjectMeta(name=f"{name}-ca", namespace=ns),
            type="cluster.x-k8s.io/secret",
            data={
                "tls.crt": base64.b64encode((pki_dir / "ca.crt").read_bytes()).decode(),
                "tls.key": base64.b64encode((pki_dir / "ca.key").read_bytes()).decode(),
            },
        )
    )
    kc.create(
        _cluster(
            name,
            ns,
            externalAddress="127.0.0.1",
            service={"type": "ClusterIP", "apiPort": tenant.cfg.ports["apiserver"]},
        )
    )


def test_cluster_with_a_serving_api_becomes_available(
    kc: Client, operator: Operator, tenant_api: LocalMothership, ns: str
) -> None:
    _served_cluster(kc, tenant_api, "served", ns)

    def available() -> bool:
        cond = _condition(kc, "served", ns, "Available")
        return bool(cond and cond["status"] == "True")

    kube.wait_until("Available=True", available, 90)
    functional = _condition(kc, "served", ns, "ControlPlaneFunctional")
    assert functional and functional["reason"] == "APIServing"
    # The user's CA Secret was used, never replaced.
    ca = kc.get(Secret, "served-ca", namespace=ns)
    assert base64.b64decode(ca.data["tls.crt"]) == (tenant_api.cfg.pki_dir / "ca.crt").read_bytes()


def test_join_token_authenticates_as_a_bootstrap_user_and_is_revoked_on_delete(
    kc: Client, operator: Operator, tenant_api: LocalMothership, ns: str, tmp_path: Path
) -> None:
    from mothership.render.join_token import decode_join_token

    _served_cluster(kc, tenant_api, "joiny", ns)
    kube.wait_until(
        "Available",
        lambda: (_condition(kc, "joiny", ns, "Available") or {}).get("status") == "True",
        90,
    )
    JTR = create_namespaced_resource(
        "k0smotron.io", "v1beta2", "JoinTokenRequest", "jointokenrequests"
    )
    kc.create(
        JTR(
            metadata=ObjectMeta(name="worker-token", namespace=ns),
            spec={"clusterName": "joiny", "role": "worker", "expiry": "1h"},
        )
    )

    def issued() -> bool:
        return bool((kc.get(JTR, "worker-token", namespace=ns).status or {}).get("tokenID"))

    kube.wait_until("status.tokenID", issued, 60)
    jtr_status = kc.get(JTR, "worker-token", namespace=ns).status
    tid = jtr_status["tokenID"]
    # k0smotron's condition type and reason, so `kubectl wait --for=condition=...` scripts work
    created = {c["type"]: c for c in jtr_status["conditions"]}["JoinTokenSecretCreated"]
    assert (created["status"], created["reason"]) == ("True", "Created"), created
    token = base64.b64decode(kc.get(Secret, "worker-token", namespace=ns).data["token"]).decode()
    config = decode_join_token(token)
    assert config["users"][0]["name"] == "kubelet-bootstrap"
    assert config["users"][0]["user"]["token"].startswith(f"{tid}.")
    path = tmp_path / "bootstrap.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    whoami = subprocess.run(
        [str(tenant_api.cfg.bin_dir / "kubectl"), "--kubeconfig", str(path), "auth", "whoami",
         "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.startswith(f"system:bootstrap:{tid} ")
    assert "system:bootstrappers" in whoami.stdout

    tenant_kc = kube.client(tenant_api.cfg.kubeconfig)
    boot = tenant_kc.get(Secret, f"bootstrap-token-{tid}", namespace="kube-system")
    assert boot.type == "bootstrap.kubernetes.io/token"
    assert "expiration" in boot.data
    kc.delete(JTR, "worker-token", namespace=ns)
    kube.wait_until(
        "token revoked in the tenant",
        lambda: not _exists(tenant_kc, Secret, f"bootstrap-token-{tid}", "kube-system"),
        60,
    )
    kube.wait_until("request gone", lambda: not _exists(kc, JTR, "worker-token", ns), 60)


def test_admission_defaults_the_version_and_rejects_bad_specs_readably(
    mothership_kwok: LocalMothership, operator: Operator, ns: str
) -> None:
    kubectl = str(mothership_kwok.cfg.bin_dir / "kubectl")
    env = {**os.environ, "KUBECONFIG": str(mothership_kwok.cfg.kubeconfig)}

    def apply(manifest: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl, "apply", "-n", ns, "-f", "-"],
            input=manifest, capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    bad = apply(
        "apiVersion: k0smotron.io/v1beta2\nkind: Cluster\nmetadata: {name: bad}\n"
        "spec:\n  version: '1.30'\n  storage:\n    type: kine\n    kine:\n"
        "      dataSourceURL: postgres://x\n      dataSourceSecretName: s\n"
    )
    assert bad.returncode != 0
    assert "spec.version" in bad.stderr and "vX.Y.Z-k0s.N" in bad.stderr
    assert "spec.storage.kine.dataSourceSecretName" in bad.stderr
    good = apply("apiVersion: k0smotron.io/v1beta2\nkind: Cluster\nmetadata: {name: plain}\n")
    assert good.returncode == 0, good.stderr
    kc = kube.client(mothership_kwok.cfg.kubeconfig)
    assert kc.get(Cluster, "plain", namespace=ns).spec["version"].endswith("-k0s.0")


def test_a_second_replica_waits_for_the_lease_and_takes_over(
    mothership_kwok: LocalMothership, kc: Client, operator: Operator, ns: str, tmp_path: Path
) -> None:
    standby = Operator(mothership_kwok.cfg.kubeconfig, tmp_path / "b.log", identity="op-b")
    standby.start()  # healthz answers while it waits
    try:
        _, body = health.http_get(f"http://127.0.0.1:{standby.ports['health']}/healthz")
        assert "standby" in body
        kc.create(_cluster("leased", ns))
        kube.wait_until(
            "active operator reconciles", lambda: _exists(kc, StatefulSet, "kmc-leased", ns), 60
        )
        assert standby.metric("mothership_reconciles_total") == 0
        operator.stop()  # clean stop hands the lease over at once
        kube.wait_until(
            "standby takes over", lambda: standby.metric("mothership_reconciles_total") > 0, 60
        )
    finally:
        standby.stop()
        operator.start()


def test_a_lost_encryption_key_is_told_and_never_replaced(
    kc: Client, operator: Operator, ns: str
) -> None:
    """The key Secret survives a plain delete (finalizer); forced away from a control plane
    that ran with it, the operator says so and makes no new key, which could not read what
    the old one wrote."""
    kc.create(
        _cluster(
            "sealed", ns, distribution="kubernetes", version="v1.35.4", storage={"type": "kine"}
        )
    )
    kube.wait_until("the StatefulSet", lambda: _exists(kc, StatefulSet, "kmc-sealed", ns), 60)
    key = kc.get(Secret, "kmc-sealed-encryption", namespace=ns)
    assert key.metadata.finalizers == ["k0smotron.io/encryption-key"]
    sts = kc.get(StatefulSet, "kmc-sealed", namespace=ns)
    assert (
        sts.metadata.annotations["mothership.io/encryption-key-secret"] == "kmc-sealed-encryption"
    )

    message = _lose_guarded_secret(
        kc, operator, ns, "sealed", "kmc-sealed-encryption", "EncryptionKeyMissing"
    )
    assert "kmc-sealed-encryption" in message and "restore the Secret" in message, message


def _lose_guarded_secret(
    kc: Client, operator: Operator, ns: str, cluster: str, secret: str, reason: str
) -> str:
    """Delete a Secret the operator guards with a finalizer: it stays, terminating, with
    its data; force the finalizer off, and the Cluster must say `reason` (returned: its
    message), once as a Warning, and no new Secret of that name appear over two resyncs."""
    data = kc.get(Secret, secret, namespace=ns).data
    assert data, f"{secret} holds nothing"
    kc.delete(Secret, secret, namespace=ns)
    kept = kc.get(Secret, secret, namespace=ns)
    assert kept.metadata.deletionTimestamp, "the guarded Secret went at once"
    assert kept.data == data, "the terminating Secret must keep its keys (tls.key, ...)"
    kc.patch(Secret, secret, {"metadata": {"finalizers": None}}, namespace=ns,
             patch_type=PatchType.MERGE)  # fmt: skip
    kube.wait_until(
        f"Available=False {reason}",
        lambda: (_condition(kc, cluster, ns, "Available") or {}).get("reason") == reason,
        60,
    )
    message: str = (_condition(kc, cluster, ns, "Available") or {})["message"]
    reconciles = operator.metric("mothership_reconciles_total")
    kube.wait_until(
        "two resync rounds",
        lambda: operator.metric("mothership_reconciles_total") >= reconciles + 2,
        60,
    )
    assert not _exists(kc, Secret, secret, ns), f"a new {secret} was made"
    assert len(_warnings(kc, cluster, ns, reason)) == 1
    return message


def test_a_lost_certificate_authority_is_told_and_never_replaced(
    kc: Client, operator: Operator, ns: str
) -> None:
    """The CA and service-account Secrets survive a plain delete (finalizer); forced away
    from a control plane that ran with them, the operator says so and makes no new one,
    which everything signed by the old one would not trust. The Cluster's delete still
    takes them."""
    authorities = [f"trusted-{p}" for p in ("ca", "proxy", "etcd", "sa")]
    kc.create(_cluster("trusted", ns))
    kube.wait_until("the StatefulSet", lambda: _exists(kc, StatefulSet, "kmc-trusted", ns), 60)
    for name in authorities:
        assert kc.get(Secret, name, namespace=ns).metadata.finalizers == ["k0smotron.io/pki"]

    # A Secret without it (made before it existed) gets it back, next to anyone else's.
    kc.patch(Secret, "trusted-proxy", {"metadata": {"finalizers": ["example.com/keep"]}},
             namespace=ns, patch_type=PatchType.MERGE)  # fmt: skip
    kube.wait_until(
        "the finalizer added again",
        lambda: (
            "k0smotron.io/pki"
            in (kc.get(Secret, "trusted-proxy", namespace=ns).metadata.finalizers or [])
        ),
        60,
    )
    kc.patch(Secret, "trusted-proxy", {"metadata": {"finalizers": ["k0smotron.io/pki"]}},
             namespace=ns, patch_type=PatchType.MERGE)  # fmt: skip

    message = _lose_guarded_secret(
        kc, operator, ns, "trusted", "trusted-ca", "CertificateAuthorityMissing"
    )
    assert f"{ns}/trusted-ca" in message and "restore the Secret from a backup" in message

    kc.delete(Cluster, "trusted", namespace=ns)
    kube.wait_until(
        "the authorities released and garbage-collected",
        lambda: not any(_exists(kc, Secret, name, ns) for name in authorities),
        90,
    )


def test_uninstall_without_an_operator_releases_the_secrets_finalizers_too(
    kc: Client, ns: str
) -> None:
    """`uninstall --force`'s last resort takes our finalizers off the PKI and key Secrets
    (garbage collection would leave them terminating) and leaves anyone else's."""
    labels = {"app.kubernetes.io/managed-by": "mothership"}
    held = ["k0smotron.io/pki", "example.com/keep"]
    for name, finalizers in (
        ("held-ca", held),
        ("held-encryption", ["k0smotron.io/encryption-key"]),
    ):
        meta = ObjectMeta(name=name, namespace=ns, labels=labels, finalizers=finalizers)
        kc.create(Secret(metadata=meta, data={}))
    released = apply.release_finalizers(kc)
    assert {f"{ns}/held-ca", f"{ns}/held-encryption"} <= set(released)
    assert kc.get(Secret, "held-ca", namespace=ns).metadata.finalizers == ["example.com/keep"]
    assert not kc.get(Secret, "held-encryption", namespace=ns).metadata.finalizers
    kc.patch(Secret, "held-ca", {"metadata": {"finalizers": None}}, namespace=ns,
             patch_type=PatchType.MERGE)  # fmt: skip
