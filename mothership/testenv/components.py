"""Command lines of the local mothership's components: pure functions of its config.

Kept apart from process handling so the flags can be read (and unit-tested) in one place.
The flags follow what a kubeadm-built control plane passes, minus what needs a real
network: everything binds to loopback (or the project's bridge with a real node).
"""

from __future__ import annotations

from pathlib import Path

from mothership.testenv.config import MothershipConfig

ADMISSION_PLUGINS = "NodeRestriction"  # on top of the default set, as kubeadm enables
# The controllers a real cluster runs, plus the bootstrap-token ones kubeadm turns on.
CONTROLLERS = "*,bootstrapsigner,tokencleaner"


def etcd(cfg: MothershipConfig) -> list[str]:
    client = f"http://127.0.0.1:{cfg.ports['etcd']}"
    peer = f"http://127.0.0.1:{cfg.ports['etcd-peer']}"
    return [
        str(cfg.bin_dir / "etcd"),
        "--name=mothership",
        f"--data-dir={cfg.state_dir / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=mothership={peer}",
        "--listen-metrics-urls=",
        # A test and dev datastore: losing the last writes on power loss is acceptable,
        # waiting on fsync for every write on a shared disk is not.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def kine(cfg: MothershipConfig) -> list[str]:
    db = cfg.state_dir / "kine" / "state.db"
    return [
        str(cfg.bin_dir / "kine"),
        f"--endpoint=sqlite://{db}?_journal=WAL&cache=shared&_busy_timeout=30000",
        f"--listen-address=127.0.0.1:{cfg.ports['etcd']}",
        f"--metrics-bind-address=127.0.0.1:{cfg.ports['kine-metrics']}",
    ]


def datastore_url(cfg: MothershipConfig) -> str:
    return f"http://127.0.0.1:{cfg.ports['etcd']}"


def apiserver(cfg: MothershipConfig) -> list[str]:
    p = cfg.pki_dir
    return [
        str(cfg.bin_dir / "kube-apiserver"),
        f"--etcd-servers={datastore_url(cfg)}",
        f"--bind-address={cfg.api_host}",
        f"--advertise-address={cfg.api_host}",
        f"--secure-port={cfg.ports['apiserver']}",
        f"--cert-dir={cfg.state_dir / 'apiserver'}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={ADMISSION_PLUGINS}",
        "--enable-bootstrap-token-auth=true",
        "--allow-privileged=true",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={p / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
        f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        "--profiling=false",
        "--v=1",
        *cfg.apiserver_args,
    ]


def _auth_kubeconfig_flags(kubeconfig: Path) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]


def controller_manager(cfg: MothershipConfig) -> list[str]:
    p = cfg.pki_dir
    return [
        str(cfg.bin_dir / "kube-controller-manager"),
        *_auth_kubeconfig_flags(p / "controller-manager.kubeconfig"),
        "--bind-address=127.0.0.1",
        f"--secure-port={cfg.ports['controller-manager']}",
        f"--cert-dir={cfg.state_dir / 'controller-manager'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--service-account-private-key-file={p / 'sa.key'}",
        "--use-service-account-credentials=true",
        f"--controllers={CONTROLLERS}",
        # The client defaults (20 QPS) throttle pod creation long before this machine is
        # busy; a mothership hosting hundreds of control planes needs more.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        f"--service-cluster-ip-range={cfg.service_cidr}",
        "--leader-elect=false",
        "--v=1",
    ]


def scheduler(cfg: MothershipConfig) -> list[str]:
    return [
        str(cfg.bin_dir / "kube-scheduler"),
        *_auth_kubeconfig_flags(cfg.pki_dir / "scheduler.kubeconfig"),
        "--bind-address=127.0.0.1",
        f"--secure-port={cfg.ports['scheduler']}",
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--leader-elect=false",
        "--v=1",
    ]
