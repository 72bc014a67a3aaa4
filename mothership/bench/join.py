"""`mothership bench join`: how long workers take to join, and to be reachable again.

On the real-node local mothership, one NodePort-exposed Cluster (kubernetes distribution,
or with `--distribution k0s` the k0s this host builds, configured as at an air-gapped site:
see testenv/k0s_tenant.py) gets N edge machines (behind NAT), joined one after another
with the one-line command of `mothership token create --join-command`, run in the machine
as a user would. Each join is
timed from the token request to the node Ready (the machine's own work in between: token
checks, downloads from the local mirror, containerd and kubelet start, TLS bootstrapping,
the pod network on the node). Then the first machine's link is cut for `cut_seconds` and
restored, and the time until `kubectl exec` works again through the tunnel is measured.
Figures go to stdout, progress to stderr; everything the bench made is removed at the end.
"""

from __future__ import annotations

import base64
import statistics
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mothership.bench.provision import admin_client_config, check_operator, realnode_mothership
from mothership.errors import UserError

Report = Any
API_PORT, KONNECTIVITY_PORT = 31543, 31233


@dataclass
class Options:
    machines: int = 3
    cut_seconds: float = 60.0
    timeout: float = 600.0
    name: str = "default"
    state_dir: Path | None = None
    distribution: str = "kubernetes"


@dataclass
class JoinResult:
    joins: dict[str, float] = field(default_factory=dict)  # machine -> token to Ready (s)
    cluster_available: float = 0.0
    cut_seconds: float = 0.0
    not_ready_after_cut: float | None = None
    exec_after_restore: float | None = None
    mothership_started: bool = False
    distribution: str = "kubernetes"

    @property
    def p50(self) -> float:
        return statistics.median(self.joins.values()) if self.joins else 0.0

    @property
    def max(self) -> float:
        return max(self.joins.values(), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p50": round(self.p50, 1), "max": round(self.max, 1)}

    def lines(self) -> list[str]:
        out = [f"{self.distribution} cluster Available in {self.cluster_available:.1f}s"]
        for name, secs in self.joins.items():
            out.append(f"join {name}: token -> node Ready {secs:.1f}s")
        out.append(
            f"token -> Ready over {len(self.joins)} machines: "
            f"p50 {self.p50:.1f}s, max {self.max:.1f}s"
        )
        if self.exec_after_restore is not None:
            out.append(
                f"link cut {self.cut_seconds:.0f}s (node NotReady after "
                f"{self.not_ready_after_cut or 0:.1f}s); after restore, exec works in "
                f"{self.exec_after_restore:.1f}s"
            )
        return out


def run(opts: Options, report: Report) -> JoinResult:
    with realnode_mothership(opts.name, opts.state_dir, report, opts.timeout) as (ms, started):
        result = _run(ms, opts, report)
        result.mothership_started = started
        return result


def _run(ms: Any, opts: Options, report: Report) -> JoinResult:
    from lightkube import Client
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace, Secret

    from mothership.testenv import k0s_tenant, kube, machines

    cluster_kind = create_namespaced_resource("k0smotron.io", "v1beta2", "Cluster", "clusters")
    kc = Client(config=admin_client_config(ms), field_manager="mothership-bench")
    check_operator(ms, kc)
    result = JoinResult(cut_seconds=opts.cut_seconds, distribution=opts.distribution)
    k0s = opts.distribution == "k0s"
    ns = f"bench-join-{uuid.uuid4().hex[:6]}"
    made: list[machines.Machine] = []
    kc.create(Namespace(metadata=ObjectMeta(name=ns)))
    try:
        report(f"creating a NodePort Cluster in namespace {ns}")
        started = time.monotonic()
        kc.create(
            cluster_kind(
                metadata=ObjectMeta(name="bench", namespace=ns),
                spec={
                    "distribution": opts.distribution,
                    "service": {
                        "type": "NodePort",
                        "apiPort": API_PORT,
                        "konnectivityPort": KONNECTIVITY_PORT,
                    },
                    **(
                        {
                            "version": k0s_tenant.K0S_CLUSTER_VERSION,
                            "k0sConfig": k0s_tenant.air_gapped_k0s_config(),
                        }
                        if k0s
                        else {}
                    ),
                },
            )
        )

        def condition(kind: str) -> bool:
            status: dict[str, Any] = (
                kc.get(cluster_kind, "bench", namespace=ns).to_dict().get("status") or {}
            )
            return any(
                c["type"] == kind and c["status"] == "True" for c in status.get("conditions") or []
            )

        kube.wait_until("Cluster Available", lambda: condition("Available"), opts.timeout)
        if not k0s:  # k0s deploys its system components itself
            kube.wait_until("tenant bootstrapped", lambda: condition("TenantBootstrapped"), 300)
        result.cluster_available = time.monotonic() - started
        secret = kc.get(Secret, "bench-kubeconfig", namespace=ns)
        kubeconfig = ms.cfg.state_dir / f"{ns}.kubeconfig"
        kubeconfig.write_bytes(base64.b64decode((secret.data or {})["value"]))
        tenant = _tenant(kubeconfig)
        if k0s:  # provider custom: the pod network is the user's to apply
            cluster = kc.get(cluster_kind, "bench", namespace=ns).to_dict()
            k0s_tenant.apply_user_cni(tenant, cluster, cluster["status"]["externalAddress"])
        for i in range(opts.machines):
            machine = machines.create(ms.cfg.state_dir, f"bench-{uuid.uuid4().hex[:4]}-{i}")
            made.append(machine)
            t0 = time.monotonic()
            command = _join_command(ms, ns)
            proc = machines.run(machine, ["sh", "-c", command], timeout=opts.timeout)
            if proc.returncode != 0:
                raise UserError(f"the join of {machine.name} failed:\n{proc.stderr[-2000:]}")
            kube.wait_until(
                f"node {machine.name} Ready", _node_ready(tenant, machine.name), opts.timeout
            )
            result.joins[machine.name] = time.monotonic() - t0
            report(f"{machine.name}: token -> Ready in {result.joins[machine.name]:.1f}s")
        if made and opts.cut_seconds > 0:
            _relink(ms, kubeconfig, tenant, made[0], opts, result, report)
        return result
    finally:
        report("cleaning up: machines, Cluster, namespace")
        for machine in made:
            machines.delete(ms.cfg.state_dir, machine.name)
        kc.delete(Namespace, ns)
        (ms.cfg.state_dir / f"{ns}.kubeconfig").unlink(missing_ok=True)
        # Gone before the bench ends (and perhaps stops the mothership): a Cluster left
        # behind would hold its node ports against the next run.
        kube.wait_until(f"namespace {ns} deleted", lambda: namespace_gone(kc, ns), opts.timeout)


def namespace_gone(kc: Any, ns: str) -> bool:
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.core_v1 import Namespace

    try:
        kc.get(Namespace, ns)
    except ApiError as exc:
        return exc.status.code == 404
    return False


def _tenant(kubeconfig: Path) -> Any:
    from lightkube import Client, KubeConfig

    return Client(config=KubeConfig.from_file(str(kubeconfig)), field_manager="mothership-bench")


def _join_command(ms: Any, ns: str) -> str:
    from mothership.testenv.machines import SHARED_DISK_JOIN_ARGS

    proc = subprocess.run(
        ["mothership", "token", "create", "bench", "--expiry", "1h", "--join-command",
         *SHARED_DISK_JOIN_ARGS,
         "--kubeconfig", str(ms.cfg.kubeconfig), "-n", ns],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        raise UserError(f"mothership token create failed: {proc.stderr.strip()[-1000:]}")
    return proc.stdout.strip()


def _node_ready(tenant: Any, node: str) -> Any:
    return lambda: _ready(tenant, node)


def _ready(tenant: Any, node: str) -> bool:
    from lightkube.resources.core_v1 import Node

    try:
        obj = tenant.get(Node, node)
    except Exception:
        return False
    conds = (obj.status.conditions if obj.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conds)


def _relink(
    ms: Any,
    kubeconfig: Path,
    tenant: Any,
    machine: Any,
    opts: Options,
    result: JoinResult,
    report: Report,
) -> None:
    from lightkube.resources.core_v1 import Pod

    from mothership.testenv import kube, machines

    pod = next(
        p.metadata.name
        for p in tenant.list(Pod, namespace="kube-system", fields={"spec.nodeName": machine.name})
        if p.metadata and p.metadata.name and p.metadata.name.startswith("kube-proxy")
    )
    kubectl = [str(ms.cfg.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig)]

    def exec_works() -> bool:
        argv = [*kubectl, "-n", "kube-system", "exec", pod, "--", "kube-proxy", "--version"]
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0

    report(f"cutting {machine.name}'s link for {opts.cut_seconds:.0f}s")
    cut = time.monotonic()
    machines.set_link(machine, up=False)
    try:
        kube.wait_until(
            "node NotReady", lambda: not _ready(tenant, machine.name), opts.cut_seconds + 120
        )
        result.not_ready_after_cut = time.monotonic() - cut
        kube.wait_until(
            "the cut's end", lambda: time.monotonic() - cut >= opts.cut_seconds, opts.cut_seconds
        )
    finally:
        machines.set_link(machine, up=True)
    restored = time.monotonic()
    kube.wait_until("exec through the tunnel again", exec_works, opts.timeout)
    result.exec_after_restore = time.monotonic() - restored
    report(f"exec works {result.exec_after_restore:.1f}s after the link came back")
