"""`mothership bench capi`: how long a MachineDeployment takes to give Ready Nodes.

On the real-node local mothership with real Cluster API (both started if not running,
stopped again at the end): a Cluster API Cluster with a hosted K0smotronControlPlane
(kubernetes distribution, kine, NodePort) and a RemoteCluster, a pool of reachable machines
(PooledRemoteMachines, reached by SSH), and a MachineDeployment of RemoteMachines scaled
through the given replica counts (0 -> 2 -> 3 -> 1 by default). For every Node a scale-up
brings, the time from the replicas change to that Node Ready is recorded (Cluster API
creates Machine, K0sWorkerConfig and RemoteMachine; the operator writes bootstrap data,
reserves a pooled machine and runs the join over SSH; the kubelet joins through TLS
bootstrapping), and for each step the time until the Machines, Ready Nodes and reserved
machines all agree. Figures go to stdout, progress to stderr; everything the bench made is
removed at the end.
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

from mothership.bench.join import namespace_gone
from mothership.bench.provision import admin_client_config, check_operator, realnode_mothership
from mothership.errors import UserError

Report = Any
API_PORT, KONNECTIVITY_PORT = 31843, 31432
POLL_SECONDS = 0.25


@dataclass
class Options:
    machines: int = 3
    steps: tuple[int, ...] = (2, 3, 1)
    timeout: float = 600.0
    name: str = "default"
    state_dir: Path | None = None


@dataclass
class Step:
    replicas_from: int
    replicas_to: int
    settled: float = 0.0  # replicas change -> Machines, Ready Nodes and pool all agree (s)
    nodes_ready: dict[str, float] = field(default_factory=dict)  # new Node -> Ready (s)


@dataclass
class CapiResult:
    control_plane_initialized: float = 0.0
    steps: list[Step] = field(default_factory=list)
    mothership_started: bool = False
    capi_started: bool = False

    @property
    def node_times(self) -> list[float]:
        return [t for step in self.steps for t in step.nodes_ready.values()]

    @property
    def p50(self) -> float:
        return statistics.median(self.node_times) if self.node_times else 0.0

    @property
    def max(self) -> float:
        return max(self.node_times, default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p50": round(self.p50, 1), "max": round(self.max, 1)}

    def lines(self) -> list[str]:
        out = [f"control plane initialized in {self.control_plane_initialized:.1f}s"]
        for step in self.steps:
            out.append(
                f"MachineDeployment {step.replicas_from} -> {step.replicas_to}: settled in "
                f"{step.settled:.1f}s"
            )
            for node, secs in step.nodes_ready.items():
                out.append(f"  node {node}: replicas change -> Ready {secs:.1f}s")
        out.append(
            f"replicas change -> Node Ready over {len(self.node_times)} nodes: "
            f"p50 {self.p50:.1f}s, max {self.max:.1f}s"
        )
        return out


def check_options(opts: Options) -> None:
    if not opts.steps:
        raise UserError("--steps: give at least one replica count, e.g. --steps 2,3,1")
    if any(n < 0 for n in opts.steps):
        raise UserError(f"--steps {opts.steps}: replica counts cannot be negative")
    if max(opts.steps) > opts.machines:
        raise UserError(
            f"--steps {','.join(map(str, opts.steps))} needs {max(opts.steps)} machines in the "
            f"pool; raise --machines (now {opts.machines})"
        )


def run(opts: Options, report: Report) -> CapiResult:
    check_options(opts)
    with realnode_mothership(opts.name, opts.state_dir, report, opts.timeout) as (ms, started):
        from mothership.testenv import localcapi

        capi_started = localcapi.COMPONENT not in ms.running()
        if capi_started:
            ms.start_capi(report, timeout=opts.timeout)
        try:
            result = _run(ms, opts, report)
        finally:
            if capi_started:
                report("stopping Cluster API (the bench started it)")
                ms.stop_capi()
        result.mothership_started, result.capi_started = started, capi_started
        return result


class _Fleet:
    """What the bench watches: the Cluster API objects in its namespace, the tenant's Nodes."""

    def __init__(self, ms: Any, ns: str) -> None:
        from lightkube import Client
        from lightkube.generic_resource import create_namespaced_resource

        self.kc = Client(config=admin_client_config(ms), field_manager="mothership-bench")
        self.ns = ns
        self.cluster = create_namespaced_resource(
            "cluster.x-k8s.io", "v1beta2", "Cluster", "clusters"
        )
        self.machine = create_namespaced_resource(
            "cluster.x-k8s.io", "v1beta2", "Machine", "machines"
        )
        self.deployment = create_namespaced_resource(
            "cluster.x-k8s.io", "v1beta2", "MachineDeployment", "machinedeployments"
        )
        self.pooled = create_namespaced_resource(
            "infrastructure.cluster.x-k8s.io",
            "v1beta2",
            "PooledRemoteMachine",
            "pooledremotemachines",
        )
        self.tenant: Any = None

    def initialized(self, name: str) -> bool:
        status = self.kc.get(self.cluster, name, namespace=self.ns).get("status") or {}
        return bool((status.get("initialization") or {}).get("controlPlaneInitialized"))

    def ready_nodes(self) -> set[str]:
        from lightkube.resources.core_v1 import Node

        from mothership.testenv.capi_pool import NODE_LABEL

        try:
            nodes = self.tenant.list(Node, labels={NODE_LABEL[0]: NODE_LABEL[1]})
            return {
                n.metadata.name
                for n in nodes
                if n.metadata
                and n.metadata.name
                and n.status
                and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            }
        except Exception:  # the tenant API may blink while its Nodes change
            return set()

    def linked(self) -> set[str]:
        return {
            m.metadata.name
            for m in self.kc.list(self.machine, namespace=self.ns)
            if m.metadata
            and m.metadata.name
            and (m.get("status") or {}).get("nodeRef")
            and not m.metadata.deletionTimestamp
        }

    def reserved(self) -> int:
        return sum(
            bool((p.get("status") or {}).get("reserved"))
            for p in self.kc.list(self.pooled, namespace=self.ns)
        )


def _kubectl(ms: Any, *args: str) -> list[str]:
    """kubectl against the mothership's own context (the kubeconfig may hold tenants')."""
    kubeconfig = str(ms.cfg.kubeconfig)
    context = f"mothership-{ms.cfg.name}"
    return [
        str(ms.cfg.bin_dir / "kubectl"),
        "--kubeconfig",
        kubeconfig,
        "--context",
        context,
        *args,
    ]


def _kubectl_apply(ms: Any, manifest: str) -> None:
    proc = subprocess.run(
        _kubectl(ms, "apply", "-f", "-"),
        input=manifest,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise UserError(f"kubectl apply failed: {proc.stderr.strip()[-1500:]}")


def _run(ms: Any, opts: Options, report: Report) -> CapiResult:
    from lightkube import Client, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace, Secret
    from lightkube.types import PatchType

    from mothership.testenv import capi_pool, kube, machines

    fleet = _Fleet(ms, f"bench-capi-{uuid.uuid4().hex[:6]}")
    kc, ns = fleet.kc, fleet.ns
    check_operator(ms, kc)
    result = CapiResult()
    made: list[machines.Machine] = []
    kc.create(Namespace(metadata=ObjectMeta(name=ns)))
    kubeconfig = ms.cfg.state_dir / f"{ns}.kubeconfig"
    try:
        report(f"creating a Cluster API Cluster with a hosted control plane in namespace {ns}")
        started = time.monotonic()
        service = {"type": "NodePort", "apiPort": API_PORT, "konnectivityPort": KONNECTIVITY_PORT}
        _kubectl_apply(ms, capi_pool.hosted_cluster(ns, "bench", service, infra=True))
        report(f"creating {opts.machines} reachable machines for the pool")
        for i in range(opts.machines):
            made.append(
                machines.create(ms.cfg.state_dir, f"bcapi-{uuid.uuid4().hex[:4]}-{i}", "reachable")
            )
        key = machines.ssh_key(ms.cfg.state_dir).read_text()
        _kubectl_apply(
            ms, capi_pool.machine_pool(ns, "bench", [(m.name, m.address) for m in made], key)
        )
        kube.wait_until(
            "control plane initialized", lambda: fleet.initialized("bench"), opts.timeout
        )
        result.control_plane_initialized = time.monotonic() - started
        report(f"control plane initialized in {result.control_plane_initialized:.1f}s")
        secret = kc.get(Secret, "bench-kubeconfig", namespace=ns)
        kubeconfig.write_bytes(base64.b64decode((secret.data or {})["value"]))
        fleet.tenant = Client(config=KubeConfig.from_file(str(kubeconfig)))
        current = 0
        for replicas in opts.steps:
            step = Step(current, replicas)
            before = fleet.ready_nodes()
            t0 = time.monotonic()
            kc.patch(
                fleet.deployment,
                capi_pool.MACHINE_DEPLOYMENT,
                {"spec": {"replicas": replicas}},
                namespace=ns,
                patch_type=PatchType.MERGE,
            )

            def settled(
                n: int = replicas, step: Step = step, t0: float = t0, before: set[str] = before
            ) -> bool:
                ready = fleet.ready_nodes()
                for node in sorted(ready - before - set(step.nodes_ready)):
                    step.nodes_ready[node] = time.monotonic() - t0
                    report(f"  node {node} Ready after {step.nodes_ready[node]:.1f}s")
                linked = fleet.linked()
                return len(linked) == n and linked == ready and fleet.reserved() == n

            kube.wait_until(
                f"MachineDeployment at {replicas} with Ready Nodes",
                settled,
                opts.timeout,
                interval=POLL_SECONDS,
            )
            step.settled = time.monotonic() - t0
            report(f"MachineDeployment {current} -> {replicas}: settled in {step.settled:.1f}s")
            result.steps.append(step)
            current = replicas
        return result
    finally:
        report("cleaning up: Cluster API Cluster, machines, namespace")
        subprocess.run(
            _kubectl(ms, "-n", ns, "delete", "clusters.cluster.x-k8s.io", "bench", "--wait=true"),
            capture_output=True,
            timeout=330,
        )
        for machine in made:
            machines.delete(ms.cfg.state_dir, machine.name)
        kc.delete(Namespace, ns)
        kubeconfig.unlink(missing_ok=True)
        kube.wait_until(f"namespace {ns} deleted", lambda: namespace_gone(kc, ns), opts.timeout)
