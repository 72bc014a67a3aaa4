"""The local mothership: a real Kubernetes made of upstream binaries, on this host.

One class drives start, status and stop for both the CLI (`mothership dev ...`) and the
pytest fixtures, so what the tests run is exactly what a user runs.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from mothership.testenv import (
    artifacts,
    clusterdns,
    components,
    extra_node,
    gobuild,
    health,
    kube,
    kwoknodes,
    localcapi,
    localcertmanager,
    localoperator,
    machines,
    netns,
    netpol,
    node_host,
    node_images,
    paths,
    pins,
    provisioner,
    realnode,
    registry,
)
from mothership.testenv.config import Datastore, MothershipConfig, NodeMode
from mothership.testenv.pkiset import NODE_NAME, ensure_pki, write_kubeconfigs
from mothership.testenv.ports import free_ports, port_is_free
from mothership.testenv.procs import (
    ComponentFailed,
    Running,
    Supervisor,
    start_time,
    terminate,
    wait_for,
)

Report = Callable[[str], None]
PORT_NAMES = (
    "apiserver",
    "etcd",
    "etcd-peer",
    "kine-metrics",
    "controller-manager",
    "scheduler",
    "kwok",
    "kubelet",
    "kubelet-healthz",
    "kube-proxy-metrics",
    "kube-proxy-healthz",
)
# Start order; stop runs it backwards.
CONTROL_PLANE = ("datastore", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The storage provisioner gives PVCs directories on the real node's disk, so it comes with it.
REAL_NODE = (
    "containerd",
    "kubelet",
    "kube-proxy",
    "storage-provisioner",
    registry.COMPONENT,
    artifacts.COMPONENT,
)
REAL_LOCK = Path("/run/mothership-real-node.lock")


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str


def default_state_dir(name: str) -> Path:
    return paths.state_root() / name


def _quiet(_: str) -> None:
    pass


def _runs_from(state_dir: str) -> bool:
    """Some component of the mothership in this state dir is running."""
    if not state_dir or not Path(state_dir).exists():
        return False
    return any(r.alive() for r in Supervisor(Path(state_dir)).all())


class LocalMothership:
    def __init__(self, cfg: MothershipConfig) -> None:
        self.cfg = cfg
        self.sup = Supervisor(cfg.state_dir)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def configure(
        cls,
        name: str = "default",
        *,
        state_dir: Path | None = None,
        datastore: Datastore = "etcd",
        nodes: NodeMode = "kwok",
        kwok_nodes: int = 3,
        apiserver_args: list[str] | None = None,
        operator: bool | None = False,
        capi: bool | None = None,
        cert_manager: bool | None = None,
        network_policy: bool | None = None,
    ) -> LocalMothership:
        """A mothership with these settings; an existing state dir keeps its data and PKI.

        Changing the datastore of an existing state dir would silently start on an empty
        one, so that is refused.
        """
        sdir = state_dir or default_state_dir(name)
        fresh = False
        try:
            cfg = MothershipConfig.load(sdir)
        except FileNotFoundError:
            cfg = MothershipConfig(name=name, state_dir=sdir, datastore=datastore)
            fresh = True
        if cfg.datastore != datastore:
            raise ValueError(
                f"mothership {name!r} in {sdir} stores its data in {cfg.datastore}, not "
                f"{datastore}: pass --datastore {cfg.datastore}, or remove it first with "
                f"`mothership dev down --purge`"
            )
        if nodes != cfg.nodes and cfg.ports and cls(cfg).running():
            raise ValueError(
                f"mothership {name!r} is running with {cfg.nodes} nodes; "
                "stop it with `mothership dev down` before changing --nodes"
            )
        cfg.nodes, cfg.kwok_nodes = nodes, kwok_nodes
        if apiserver_args is not None:
            cfg.apiserver_args = list(apiserver_args)
        # None keeps the saved choice (on for a new mothership): `mothership install` turns
        # the host operator off for good when an in-cluster one replaces it.
        cfg.operator = (fresh or cfg.operator) if operator is None else operator
        # None keeps the saved choice (off for a new mothership).
        cfg.capi = cfg.capi if capi is None else capi
        cfg.cert_manager = cfg.cert_manager if cert_manager is None else cert_manager
        cfg.network_policy = cfg.network_policy if network_policy is None else network_policy
        if cfg.network_policy and nodes != "real":
            raise ValueError(
                "--network-policy enforces NetworkPolicies on the real node's pod network; "
                "add --nodes real, or pass --no-network-policy (the choice is remembered)"
            )
        cfg.bin_dir = paths.bin_dir()
        return cls(cfg)

    @classmethod
    def load(cls, name: str = "default", state_dir: Path | None = None) -> LocalMothership:
        return cls(MothershipConfig.load(state_dir or default_state_dir(name)))

    # -- queries --------------------------------------------------------------------

    def components(self) -> list[str]:
        names = list(CONTROL_PLANE)
        if self.cfg.nodes == "kwok":
            names.append("kwok")
        elif self.cfg.nodes == "real":
            names += REAL_NODE
        if self.cfg.operator:
            names.append(localoperator.COMPONENT)
        if self.cfg.capi:
            names.append(localcapi.COMPONENT)
        if self.cfg.cert_manager:
            names.append(localcertmanager.COMPONENT)
        if self.cfg.network_policy and self.cfg.nodes == "real":
            names.append(netpol.COMPONENT)
        return names

    def running(self) -> list[str]:
        return [r.name for r in self.sup.all() if r.alive()]

    def env(self) -> str:
        return f"export KUBECONFIG={self.cfg.kubeconfig}\nexport PATH={self.cfg.bin_dir}:$PATH"

    # -- start ----------------------------------------------------------------------

    def up(self, report: Report = _quiet, timeout: float = 180.0) -> None:
        cfg = self.cfg
        report(f"binaries: {cfg.bin_dir}")
        gobuild.install(report)
        if cfg.nodes == "real":
            realnode.check_host()
        with self._real_node_placed(report):
            try:
                self._start(report, timeout)
            except BaseException:
                report("start-up failed; stopping what was started (logs are kept)")
                self.down(delete_machines=False)
                raise

    def _choose_ports(self) -> None:
        cfg = self.cfg
        running = self.running()
        if cfg.ports and (running or all(port_is_free(p) for p in cfg.ports.values())):
            return
        cfg.ports = free_ports(list(PORT_NAMES))

    def _start(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        self._choose_ports()
        cfg.save()
        if cfg.nodes == "real":
            realnode.raise_host_limits()
            realnode.setup_network(cfg)
        ensure_pki(cfg)
        write_kubeconfigs(cfg)
        self._start_datastore(report, timeout)
        self._start_apiserver(report, timeout)
        self._start_controllers(report, timeout)
        if cfg.nodes == "kwok":
            self._start_kwok(report, timeout)
        elif cfg.nodes == "real":
            self._start_real_node(report, timeout)
        if cfg.operator:
            self._start_operator(report, timeout)
        elif self.sup.stop(localoperator.COMPONENT):
            report("stopped the operator (--no-operator)")
        if cfg.cert_manager:
            self._start_cert_manager(report, timeout)
        elif self.sup.stop(localcertmanager.COMPONENT):
            report("stopped cert-manager (--no-cert-manager)")
        if cfg.capi:
            self._start_capi(report, timeout)
        elif self._stop_capi():
            report("stopped Cluster API (--no-capi)")
        report(f"mothership {cfg.name!r} is up: {cfg.api_url}")

    def start_capi(self, report: Report = _quiet, timeout: float = 180.0) -> None:
        """Run Cluster API beside this running mothership and remember it (`dev up --capi`
        on one that is up, without touching the rest)."""
        self.cfg.capi = True
        self.cfg.save()
        self._start_capi(report, timeout)

    def stop_capi(self) -> bool:
        """Stop Cluster API and remember it; its CRDs and objects stay."""
        self.cfg.capi = False
        self.cfg.save()
        return self._stop_capi()

    def _start_capi(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        localcapi.check_installed()
        localcapi.prepare(cfg)
        report(f"applying Cluster API {pins.CAPI_VERSION} CRDs and webhooks")
        crds = localcapi.register(cfg)
        self._start_beside_crds(
            localcapi.COMPONENT,
            crds,
            localcapi.argv(cfg),
            localcapi.health_url(cfg),
            report,
            timeout,
        )

    def start_cert_manager(self, report: Report = _quiet, timeout: float = 180.0) -> None:
        """Run cert-manager beside this running mothership and remember it."""
        self.cfg.cert_manager = True
        self.cfg.save()
        self._start_cert_manager(report, timeout)

    def _start_cert_manager(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        localcertmanager.check_installed()
        localcertmanager.prepare(cfg)
        report(f"applying cert-manager {pins.CERT_MANAGER_VERSION} CRDs")
        crds = localcertmanager.register(cfg)
        self._start_beside_crds(
            localcertmanager.COMPONENT,
            crds,
            localcertmanager.argv(cfg),
            localcertmanager.health_url(cfg),
            report,
            timeout,
        )

    def _stop_capi(self) -> bool:
        """Stop the manager and, while the API server answers, remove its webhooks."""
        stopped = self.sup.stop(localcapi.COMPONENT, timeout=30.0)
        if stopped:
            localcapi.unregister(self.cfg)
        return stopped

    def _start_operator(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        report("applying the k0smotron.io CRDs")
        crds = localoperator.apply_crds(cfg.kubeconfig)
        localoperator.prepare(cfg)
        self._start_beside_crds(
            localoperator.COMPONENT,
            crds,
            localoperator.argv(cfg),
            localoperator.health_url(cfg),
            report,
            timeout,
        )

    def _start_beside_crds(
        self,
        component: str,
        crds: list[str],
        argv: list[str],
        health_url: str,
        report: Report,
        timeout: float,
    ) -> None:
        """Start a controller once the CRDs it watches are established, and wait until its
        health endpoint answers (the operator, Cluster API)."""
        cfg = self.cfg
        kube.wait_until(
            f"CRDs of {component} established",
            lambda: localoperator.crds_established(cfg.kubeconfig, crds),
            timeout,
        )
        report(f"starting {component}")
        self._spawn(component, argv)
        self._wait_for(
            f"{component} {health_url.rsplit('/', 1)[-1]}",
            lambda: health.http_ok(health_url),
            timeout=timeout,
            component=component,
        )

    def _start_datastore(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        report(f"starting datastore ({cfg.datastore})")
        if cfg.datastore == "etcd":
            self._spawn("datastore", components.etcd(cfg))
            url = f"http://127.0.0.1:{cfg.ports['etcd']}/health"
            probe: Callable[[], bool] = lambda: health.http_ok(url)  # noqa: E731
        else:
            (cfg.state_dir / "kine").mkdir(parents=True, exist_ok=True)
            self._spawn("datastore", components.kine(cfg))
            port = cfg.ports["etcd"]
            probe = lambda: health.tcp_open("127.0.0.1", port)  # noqa: E731
        self._wait_for("datastore", probe, timeout=timeout, component="datastore")

    def _admin_tls(self) -> ssl.SSLContext:
        p = self.cfg.pki_dir
        return health.tls_context(p / "ca.crt", p / "admin.crt", p / "admin.key")

    def _start_apiserver(self, report: Report, timeout: float) -> None:
        report("starting kube-apiserver")
        self._spawn("kube-apiserver", components.apiserver(self.cfg))
        ctx = self._admin_tls()
        url = f"{self.cfg.api_url}/readyz"
        self._wait_for(
            "kube-apiserver /readyz",
            lambda: health.http_ok(url, ctx),
            timeout=timeout,
            component="kube-apiserver",
        )

    def restart_apiserver(self, report: Report = _quiet, timeout: float = 120.0) -> float:
        """SIGKILL kube-apiserver and start it again on the same flags, as a crash and a
        supervisor's restart would; the seconds it answered no /readyz (for chaos)."""
        began = time.monotonic()
        running = self.sup.get("kube-apiserver")
        if running is not None and running.alive():
            terminate(running.pid, running.started, crash=True)
        self._start_apiserver(report, timeout)
        return time.monotonic() - began

    @contextmanager
    def datastore_stalled(self) -> Iterator[None]:
        """The mothership's datastore frozen (SIGSTOP) inside the block, thawed (SIGCONT) at
        its end whatever happens: a disk or network stall as the API server sees it."""
        running = self.sup.get("datastore")
        if running is None or not running.alive():
            raise ComponentFailed("the datastore is not running: nothing to stall")
        os.kill(running.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            with suppress(ProcessLookupError):
                os.kill(running.pid, signal.SIGCONT)

    def _start_controllers(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        report("starting kube-controller-manager and kube-scheduler")
        self._spawn("kube-controller-manager", components.controller_manager(cfg))
        self._spawn("kube-scheduler", components.scheduler(cfg))
        for name, port in (
            ("kube-controller-manager", cfg.ports["controller-manager"]),
            ("kube-scheduler", cfg.ports["scheduler"]),
        ):
            url = f"https://127.0.0.1:{port}/healthz"
            ctx = health.tls_context(None)
            self._wait_for(
                f"{name} /healthz",
                functools.partial(health.http_ok, url, ctx),
                timeout=timeout,
                component=name,
            )

    def _start_kwok(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        report(f"starting kwok with {cfg.kwok_nodes} simulated nodes")
        self._spawn("kwok", kwoknodes.kwok_argv(cfg))
        kc = kube.client(cfg.kubeconfig)
        names = kwoknodes.ensure_nodes(kc, cfg)
        self._wait_nodes(kc, names, "kwok", timeout)

    def _wait_nodes(self, kc: object, names: list[str], component: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.sup.check(component)
            try:
                kube.wait_nodes_ready(kc, names, timeout=2.0)  # type: ignore[arg-type]
                return
            except TimeoutError as exc:
                if time.monotonic() > deadline:
                    raise ComponentFailed(f"{exc} (see {self.sup.log_path(component)})") from exc

    def _start_real_node(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        realnode.write_configs(cfg)
        realnode.ensure_cgroup_root(cfg)
        report("starting containerd")
        self._spawn("containerd", realnode.containerd_argv(cfg))
        sock = realnode.containerd_socket(cfg)
        self._wait_for(
            "containerd socket",
            lambda: sock.exists() and realnode.ctr(cfg, "version", check=False).returncode == 0,
            timeout=timeout,
            component="containerd",
        )
        realnode.prepare_images(cfg, report)
        report("starting kubelet")
        self._spawn("kubelet", realnode.kubelet_argv(cfg))
        report("starting kube-proxy")
        self._spawn("kube-proxy", realnode.kube_proxy_argv(cfg))
        kc = kube.client(cfg.kubeconfig)
        self._wait_nodes(kc, [NODE_NAME], "kubelet", timeout)
        url = f"http://127.0.0.1:{cfg.ports['kube-proxy-healthz']}/healthz"
        self._wait_for(
            "kube-proxy /healthz",
            lambda: health.http_ok(url),
            timeout=timeout,
            component="kube-proxy",
        )
        self._start_storage_provisioner(report, timeout)
        if cfg.network_policy:
            self._start_network_policy(report, timeout)
        elif self._stop_network_policy():
            report("stopped the NetworkPolicy enforcer (--no-network-policy)")
        self._start_cluster_dns(report, timeout)
        self._start_registry(report, timeout)
        self._start_artifacts(report, timeout)

    def _start_registry(self, report: Report, timeout: float) -> None:
        """The registry mirror workers pull from, holding every image a tenant node runs."""
        cfg = self.cfg
        report(f"starting the registry mirror at {registry.url(cfg)}")
        self._spawn(registry.COMPONENT, registry.argv(cfg))
        self._wait_for(
            "registry /v2/",
            lambda: registry.healthy(cfg),
            timeout=timeout,
            component=registry.COMPONENT,
        )
        archives = [
            (img.name, realnode.ensure_archive(img.name, img.files, img.entrypoint, report))
            for img in node_images.node_images(cfg.bin_dir)
        ]
        registry.push_all(cfg, archives, report)

    def _start_artifacts(self, report: Report, timeout: float) -> None:
        """The download mirror for node components (kubelet, containerd, runc, CNI)."""
        cfg = self.cfg
        report(f"starting the download mirror for node components at {artifacts.url(cfg)}")
        self._spawn(artifacts.COMPONENT, artifacts.argv(cfg))
        self._wait_for(
            "download mirror",
            lambda: health.http_ok(f"{artifacts.url(cfg)}/"),
            timeout=timeout,
            component=artifacts.COMPONENT,
        )

    def _start_cluster_dns(self, report: Report, timeout: float) -> None:
        """CoreDNS in kube-system behind kube-dns; up only when it answers through the
        Service IP (see clusterdns.answers), so pods started next resolve at once."""
        cfg = self.cfg
        started = time.monotonic()
        upstreams = clusterdns.environment_upstreams()
        if upstreams is None:
            upstreams = netns.call(cfg.node_netns, clusterdns.usable_upstreams)
        report(f"starting cluster DNS at {cfg.dns_ip} ({clusterdns.upstream_note(upstreams)})")
        clusterdns.apply(cfg, upstreams)
        deadline = time.monotonic() + timeout
        while not netns.call(cfg.node_netns, lambda: clusterdns.answers(cfg)):
            self.sup.check("kubelet")
            if time.monotonic() > deadline:
                raise ComponentFailed(
                    f"cluster DNS at {cfg.dns_ip} does not answer after {timeout:.0f}s\n"
                    f"{clusterdns.diagnose(cfg)}"
                )
            time.sleep(0.5)
        report(f"cluster DNS answers ({time.monotonic() - started:.1f}s)")

    def _start_storage_provisioner(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        volumes = provisioner.volumes_dir(cfg.state_dir)
        report(f"starting storage-provisioner (volumes in {volumes})")
        argv = provisioner.argv(cfg.kubeconfig, volumes, NODE_NAME)
        pid = self._spawn("storage-provisioner", argv).pid
        self._wait_for(
            "storage-provisioner first pass",
            lambda: provisioner.healthy(volumes, pid),
            timeout=timeout,
            component="storage-provisioner",
        )

    def start_network_policy(self, report: Report = _quiet, timeout: float = 60.0) -> None:
        """Enforce NetworkPolicies on this running real-node mothership and remember it
        (`dev up --network-policy` on one that is up)."""
        if self.cfg.nodes != "real":
            raise ValueError("NetworkPolicies are enforced on a real node only (--nodes real)")
        self.cfg.network_policy = True
        self.cfg.save()
        self._start_network_policy(report, timeout)

    def stop_network_policy(self) -> bool:
        """Stop enforcing (the enforcer removes its rules) and remember it."""
        self.cfg.network_policy = False
        self.cfg.save()
        return self._stop_network_policy()

    def _start_network_policy(self, report: Report, timeout: float) -> None:
        cfg = self.cfg
        state = netpol.state_dir(cfg.state_dir)
        report("starting the NetworkPolicy enforcer (iptables chains MSNP-*)")
        pid = self._spawn(netpol.COMPONENT, netpol.argv(cfg.kubeconfig, NODE_NAME, state)).pid
        self._wait_for(
            "NetworkPolicy enforcer first pass",
            lambda: netpol.healthy(state, pid),
            timeout=timeout,
            component=netpol.COMPONENT,
        )

    def _stop_network_policy(self) -> bool:
        stopped = self.sup.stop(netpol.COMPONENT)
        if self.cfg.nodes == "real":
            # Also after a SIGKILL, which leaves the chains: a stopped enforcer means an
            # open network.
            netns.call(self.cfg.node_netns, netpol.remove_all)
        return stopped

    @contextmanager
    def _real_node_placed(self, report: Report) -> Iterator[None]:
        """Decide where the real node runs (testenv/node_host.py), for the whole start-up.

        The host's network takes one real node (kube-proxy's iptables chains and the pod
        bridge are global to a network namespace); REAL_LOCK names its owner. A mothership
        finds it taken by another running one, or already runs in its machine: its node
        goes to (stays in) a reachable machine of its own. Starts are serialized by the
        lock, so two never pick the host at once.
        """
        cfg = self.cfg
        if cfg.nodes != "real":
            yield
            return
        with open(REAL_LOCK, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                owner = fh.read().strip()
                taken = owner != str(cfg.state_dir) and _runs_from(owner)
                if taken or (cfg.node_machine and self.running()):
                    node_host.use_machine(cfg)
                    why = (
                        f"the host's network holds the real node of {owner}"
                        if taken
                        else "it is running there"
                    )
                    report(
                        f"{why}: this node runs in machine {cfg.node_machine!r} at "
                        f"{cfg.node_ip} (pods {cfg.pod_cidr})"
                    )
                else:
                    node_host.use_host(cfg)
                    fh.seek(0)
                    fh.truncate()
                    fh.write(str(cfg.state_dir))
                    fh.flush()
                cfg.save()
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _spawn(self, name: str, argv: list[str]) -> Running:
        """Start a component in the node's network namespace (the host's unless the node
        runs in a machine: then the whole mothership does, see node_host)."""
        return self.sup.start(name, netns.argv(self.cfg.node_netns, argv))

    def _wait_for(
        self, what: str, probe: Callable[[], bool], *, timeout: float, component: str
    ) -> None:
        """wait_for, probing from the node's network namespace (loopback and Service IPs
        there are the mothership's)."""
        ns = self.cfg.node_netns
        wait_for(
            what,
            lambda: netns.call(ns, probe),
            timeout=timeout,
            supervisor=self.sup,
            component=component,
        )

    # -- status ---------------------------------------------------------------------

    def status(self) -> list[ComponentStatus]:
        cfg = self.cfg
        out = []
        probes: dict[str, Callable[[], bool]] = {
            "kube-apiserver": lambda: health.http_ok(f"{cfg.api_url}/readyz", self._admin_tls()),
            "kube-controller-manager": lambda: health.http_ok(
                f"https://127.0.0.1:{cfg.ports['controller-manager']}/healthz",
                health.tls_context(None),
            ),
            "kube-scheduler": lambda: health.http_ok(
                f"https://127.0.0.1:{cfg.ports['scheduler']}/healthz", health.tls_context(None)
            ),
            "kubelet": lambda: health.http_ok(
                f"http://127.0.0.1:{cfg.ports['kubelet-healthz']}/healthz"
            ),
            "kube-proxy": lambda: health.http_ok(
                f"http://127.0.0.1:{cfg.ports['kube-proxy-healthz']}/healthz"
            ),
            "containerd": lambda: realnode.ctr(cfg, "version", check=False).returncode == 0,
            registry.COMPONENT: lambda: registry.healthy(cfg),
            artifacts.COMPONENT: lambda: health.http_ok(f"{artifacts.url(cfg)}/"),
            "storage-provisioner": lambda: provisioner.healthy(
                provisioner.volumes_dir(cfg.state_dir)
            ),
            netpol.COMPONENT: lambda: netpol.healthy(netpol.state_dir(cfg.state_dir)),
            "kwok": lambda: health.tcp_open("127.0.0.1", cfg.ports["kwok"]),
            localoperator.COMPONENT: lambda: health.http_ok(localoperator.health_url(cfg)),
            localcapi.COMPONENT: lambda: health.http_ok(localcapi.health_url(cfg)),
            localcertmanager.COMPONENT: lambda: health.http_ok(localcertmanager.health_url(cfg)),
            "datastore": (
                (lambda: health.http_ok(f"http://127.0.0.1:{cfg.ports['etcd']}/health"))
                if cfg.datastore == "etcd"
                else (lambda: health.tcp_open("127.0.0.1", cfg.ports["etcd"]))
            ),
        }
        for name in self.components():
            running = self.sup.get(name)
            alive = bool(running and running.alive())
            healthy = False
            detail = "not running"
            if alive:
                try:
                    healthy = netns.call(cfg.node_netns, probes[name])
                    detail = "healthy" if healthy else "unhealthy"
                except Exception as exc:
                    detail = f"unhealthy: {exc}"
            out.append(
                ComponentStatus(name, running.pid if running else None, alive, healthy, detail)
            )
        return out

    # -- stop -----------------------------------------------------------------------

    def down(
        self, report: Report = _quiet, purge: bool = False, delete_machines: bool = True
    ) -> list[str]:
        """Stop every process this mothership started, newest first; return their names.

        Its machines go too, unless a failed start-up is cleaning up after itself: a
        machine is the user's, and only `dev down` removes it."""
        cfg = self.cfg
        stopped = []
        if delete_machines or purge:
            for name in machines.delete_all(cfg.state_dir, keep=(node_host.NODE_MACHINE,)):
                report(f"deleted machine {name}")
        node_started = any(self.sup.get(n) for n in REAL_NODE)
        # First, while the API server is up: extra nodes delete their Node objects, the
        # operator unregisters its webhooks on exit.
        for node in extra_node.stop_all(cfg, report):
            stopped.append(f"node {node}")
        if self.sup.stop(localoperator.COMPONENT, timeout=30.0):
            stopped.append(localoperator.COMPONENT)
        if self._stop_capi():
            stopped.append(localcapi.COMPONENT)
        if self.sup.stop(localcertmanager.COMPONENT):
            stopped.append(localcertmanager.COMPONENT)
        if node_started and self._stop_network_policy():
            stopped.append(netpol.COMPONENT)
        for name in (
            artifacts.COMPONENT,
            registry.COMPONENT,
            "storage-provisioner",
            "kube-proxy",
            "kubelet",
        ):
            if self.sup.stop(name):
                stopped.append(name)
        if node_started:
            report("stopping containers")
            realnode.kill_all_tasks(cfg)
        if self.sup.stop("containerd"):
            stopped.append("containerd")
        if node_started:
            self._reap_node_leftovers(report)
        for name in (
            "kwok",
            "kube-scheduler",
            "kube-controller-manager",
            "kube-apiserver",
            "datastore",
        ):
            if self.sup.stop(name):
                stopped.append(name)
        for leftover in self.sup.all():  # components of an older layout, if any
            if self.sup.stop(leftover.name):
                stopped.append(leftover.name)
        if node_started:
            realnode.unmount_under(cfg.state_dir)
            realnode.remove_host_leftovers(cfg)
            realnode.teardown_network(cfg)
            # Every pod is gone: IP leases of the last run must not fill the pool.
            shutil.rmtree(realnode.node_dir(cfg) / "cni" / "ipam", ignore_errors=True)
        if cfg.node_machine:
            node_host.release(cfg)
            report(f"deleted the node's machine {cfg.node_machine}")
        if purge and cfg.state_dir.exists():
            realnode.unmount_under(cfg.state_dir)
            shutil.rmtree(cfg.state_dir)
        for name in stopped:
            report(f"stopped {name}")
        return stopped

    def _reap_node_leftovers(self, report: Report) -> None:
        """Shims and container processes outlive containerd; they are ours, end them."""
        for pid in sorted(realnode.shim_pids(self.cfg) | realnode.cgroup_pids(self.cfg)):
            started = start_time(pid)
            if started is not None:
                report(f"stopping leftover process {pid}")
                terminate(pid, started, timeout=5.0)
        if self.cfg.node_machine:
            return  # its chains go with the machine's network namespace
        # kube-proxy leaves its iptables chains behind on exit; remove them.
        subprocess.run(
            [str(self.cfg.bin_dir / "kube-proxy"), "--cleanup"], capture_output=True, check=False
        )
