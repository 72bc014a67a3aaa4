"""A real node on this host: containerd + CNI bridge + kubelet + kube-proxy.

Pods really run here, from images written locally (no registry). The node lives under
its own cgroup root (`/mothership`) so that `dev down` can find every container process
it caused and leave none behind, even one whose shim died.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from mothership.testenv import (
    clusterdns,
    images,
    monitoring_images,
    netns,
    paths,
    ssh_client_image,
    userland,
)
from mothership.testenv.config import REAL_BRIDGE, MothershipConfig
from mothership.testenv.pins import (
    K0S_IMAGE_REPO,
    K0S_VERSION,
    KUBERNETES_VERSION,
    TENANT_CONTROL_PLANE_BINARIES,
    TENANT_VERSIONS,
    local_control_plane_image,
    version_set,
)
from mothership.testenv.pkiset import NODE_NAME

CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
CONTROL_PLANE_IMAGE = local_control_plane_image(KUBERNETES_VERSION)
K0S_IMAGE = f"{K0S_IMAGE_REPO}:{K0S_VERSION.replace('+', '-')}"
CONTROL_PLANE_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "konnectivity-server",
    "kine",
    "etcd",
    "etcdctl",
)
DEBIAN_PACKAGES = (
    f"containerd runc containernetworking-plugins iptables conntrack {userland.DEBIAN_PACKAGE}"
)


class HostNotReady(RuntimeError):
    """The host lacks something a real node needs; the message says how to get it."""


def node_dir(cfg: MothershipConfig) -> Path:
    return cfg.state_dir / "node"


def containerd_socket(cfg: MothershipConfig) -> Path:
    return node_dir(cfg) / "containerd" / "containerd.sock"


def cni_bin_dir() -> str:
    for d in CNI_BIN_DIRS:
        if Path(d, "bridge").exists():
            return d
    return CNI_BIN_DIRS[0]


def check_host() -> None:
    problems = []
    if os.geteuid() != 0:
        problems.append("a real node needs root (kubelet, containerd and iptables)")
    for tool in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "conntrack"):
        if not shutil.which(tool):
            problems.append(f"`{tool}` is not on PATH")
    if not Path(cni_bin_dir(), "bridge").exists():
        problems.append("the CNI bridge plugin is missing")
    try:
        userland.find_busybox()
    except userland.UserlandMissing:
        problems.append("no static busybox (the control-plane image's shell)")
    if problems:
        raise HostNotReady(
            "cannot start a real node: "
            + "; ".join(problems)
            + f". Install with `apt-get install -y {DEBIAN_PACKAGES}` (or run "
            "`bash scripts/setup-host`), or use `--nodes kwok`."
        )


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def setup_network(cfg: MothershipConfig) -> None:
    """The bridge pods attach to, in the node's network namespace. On the host its address
    is also the node's, where the API server listens; in a machine, the node's address is
    the machine's (testenv/node_host.py)."""
    ns = cfg.node_netns
    if _sh(*netns.ip_argv(ns, "link", "show", REAL_BRIDGE), check=False).returncode != 0:
        _sh(*netns.ip_argv(ns, "link", "add", REAL_BRIDGE, "type", "bridge"))
    addrs = _sh(*netns.ip_argv(ns, "-o", "-4", "addr", "show", REAL_BRIDGE)).stdout
    prefix = cfg.pod_cidr.split("/")[1]
    if f" {cfg.pod_gateway}/" not in addrs:
        _sh(*netns.ip_argv(ns, "addr", "add", f"{cfg.pod_gateway}/{prefix}", "dev", REAL_BRIDGE))
    _sh(*netns.ip_argv(ns, "link", "set", REAL_BRIDGE, "up"))
    if not Path("/proc/sys/net/bridge").exists():
        _sh("modprobe", "br_netfilter", check=False)
    for key in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
        _sh(*netns.argv(ns, ["sysctl", "-qw", f"{key}=1"]), check=False)


# Every kubelet, containerd and kube-proxy holds inotify instances, and they count per user
# across the host: the kernel's default of 128 runs out with a few real nodes and joined
# machines ("too many open files" from a worker's kube-proxy). Raised, never lowered.
HOST_LIMITS = {"fs.inotify.max_user_instances": 8192, "fs.inotify.max_user_watches": 524288}


def raise_host_limits() -> None:
    for key, wanted in HOST_LIMITS.items():
        path = Path("/proc/sys", *key.split("."))
        with contextlib.suppress(OSError, ValueError):
            if int(path.read_text()) < wanted:
                path.write_text(str(wanted))


def teardown_network(cfg: MothershipConfig) -> None:
    _sh(*netns.ip_argv(cfg.node_netns, "link", "del", REAL_BRIDGE), check=False)


def cgroup_dirs(cfg: MothershipConfig) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():  # cgroup v2: one hierarchy
        return [base / cfg.cgroup_root]
    return [
        base / sub / cfg.cgroup_root
        for sub in sorted(os.listdir(base))
        if (base / sub).is_dir() and not (base / sub).is_symlink()
    ]


def ensure_cgroup_root(cfg: MothershipConfig) -> None:
    """kubelet refuses a cgroup root that does not exist in every hierarchy."""
    for d in cgroup_dirs(cfg):
        d.mkdir(exist_ok=True)


def cgroup_pids(cfg: MothershipConfig) -> set[int]:
    pids: set[int] = set()
    for d in cgroup_dirs(cfg):
        if d.exists():
            for procs in d.rglob("cgroup.procs"):
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    continue
    return pids


def has_cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))
    return False


def containerd_config(cfg: MothershipConfig) -> str:
    d = node_dir(cfg) / "containerd"
    return f"""version = 2
root = "{d / "root"}"
state = "{d / "state"}"

[grpc]
  address = "{containerd_socket(cfg)}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  enable_cdi = false
  # Hosts without CAP_SYS_RESOURCE (this VM, rootless setups) cannot lower oom_score_adj;
  # the kubelet asks for -998 on every sandbox. Cap it at containerd's own value instead
  # of failing every pod.
  restrict_oom_score_adj = {"true" if not has_cap_sys_resource() else "false"}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir()}"
    conf_dir = "{node_dir(cfg) / "cni" / "net.d"}"
"""


def cni_config(cfg: MothershipConfig) -> str:
    conf = {
        "cniVersion": "1.0.0",
        "name": "mothership",
        "plugins": [
            {
                "type": "bridge",
                "bridge": REAL_BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": cfg.pod_cidr, "gateway": cfg.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node_dir(cfg) / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


def kubelet_config(cfg: MothershipConfig) -> str:
    p = cfg.pki_dir
    conf = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": cfg.node_ip,
        "port": cfg.ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": cfg.ports["kubelet-healthz"],
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(p / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(p / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(p / "kubelet-serving.key"),
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cfg.cgroup_root}",
        # Each node its own (not /var/log/pods): a kubelet removes the log directories of
        # pods it does not know, which would be another local node's.
        "podLogsDir": str(node_dir(cfg) / "pod-logs"),
        # This host runs cgroup v1; recent kubelets refuse it unless told otherwise.
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{containerd_socket(cfg)}",
        # The local mothership's CoreDNS (mothership/testenv/clusterdns.py) at a fixed IP.
        "clusterDNS": [cfg.dns_ip],
        "clusterDomain": clusterdns.CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        # A dev host's disk is shared with everything else: never evict for disk pressure
        # and never garbage-collect the locally imported images (they cannot be pulled).
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 110,
        "enforceNodeAllocatable": ["pods"],
    }
    return yaml.safe_dump(conf, sort_keys=False)


def kube_proxy_config(cfg: MothershipConfig, node_name: str = NODE_NAME) -> str:
    conf = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(cfg.pki_dir / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "clusterCIDR": cfg.pod_cidr,
        "hostnameOverride": node_name,
        "bindAddress": cfg.node_ip,
        "metricsBindAddress": f"127.0.0.1:{cfg.ports['kube-proxy-metrics']}",
        "healthzBindAddress": f"127.0.0.1:{cfg.ports['kube-proxy-healthz']}",
        # 0 leaves the host's conntrack sysctls as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False},
    }
    return yaml.safe_dump(conf, sort_keys=False)


def write_configs(cfg: MothershipConfig, node_name: str = NODE_NAME) -> None:
    d = node_dir(cfg)
    for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "kube-proxy", "pod-logs"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "containerd" / "config.toml").write_text(containerd_config(cfg))
    (d / "cni" / "net.d" / "10-mothership.conflist").write_text(cni_config(cfg))
    (d / "kubelet" / "config.yaml").write_text(kubelet_config(cfg))
    (d / "kube-proxy" / "config.yaml").write_text(kube_proxy_config(cfg, node_name))


def containerd_argv(cfg: MothershipConfig) -> list[str]:
    return ["containerd", "--config", str(node_dir(cfg) / "containerd" / "config.toml")]


def kubelet_argv(cfg: MothershipConfig, node_name: str = NODE_NAME) -> list[str]:
    d = node_dir(cfg)
    return [
        str(cfg.bin_dir / "kubelet"),
        f"--config={d / 'kubelet' / 'config.yaml'}",
        f"--kubeconfig={cfg.pki_dir / 'kubelet.kubeconfig'}",
        f"--root-dir={d / 'kubelet' / 'root'}",
        f"--cert-dir={d / 'kubelet' / 'pki'}",
        f"--hostname-override={node_name}",
        f"--node-ip={cfg.node_ip}",
        "--v=1",
    ]


def kube_proxy_argv(cfg: MothershipConfig) -> list[str]:
    return [
        str(cfg.bin_dir / "kube-proxy"),
        f"--config={node_dir(cfg) / 'kube-proxy' / 'config.yaml'}",
        "--v=1",
    ]


def _images_dir() -> Path:
    return paths.cache_root() / "images" / version_set()


def control_plane_image_files(bin_dir: Path, version: str) -> dict[str, Path]:
    """What the control-plane image of a Kubernetes version holds, by path in the image.

    Only kube-apiserver, kube-controller-manager and kube-scheduler differ between versions;
    konnectivity-server, kine and etcd are the mothership's own, identical in every image.
    """
    own = bin_dir if version == KUBERNETES_VERSION else paths.tenant_bin_dir(version)
    return {
        f"/usr/local/bin/{b}": (own if b in TENANT_CONTROL_PLANE_BINARIES else bin_dir) / b
        for b in CONTROL_PLANE_BINARIES
    }


def k0s_image_files(bin_dir: Path) -> dict[str, Path]:
    """What the k0s image holds: k0s and, since it is built without embedded binaries, every
    component it starts, on PATH (k0smotron's pod mounts a volume over /var/lib/k0s, where
    k0s would look first). kube-* are the Kubernetes version k0s is built for; kine, etcd
    and konnectivity-server are the mothership's own (flag-compatible, see pins)."""
    k0s_dir = paths.k0s_bin_dir()
    own = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    files = {"/usr/local/bin/k0s": k0s_dir / "k0s"}
    for b in CONTROL_PLANE_BINARIES:
        files[f"/usr/local/bin/{b}"] = (k0s_dir if b in own else bin_dir) / b
    return files


def _archive_name(name: str, files: dict[str, images.Content], entrypoint: list[str]) -> str:
    """Named after its inputs (host files by path, size and mtime), so a changed input
    writes a new archive instead of reusing a stale one under the image's name."""
    inputs: list[tuple[object, ...]] = []
    for path, content in sorted(files.items()):
        if isinstance(content, Path):
            st = content.stat()
            inputs.append((path, str(content), st.st_size, st.st_mtime_ns))
        else:
            inputs.append((path, repr(content)))
    key = hashlib.sha256(repr((inputs, entrypoint)).encode()).hexdigest()[:12]
    return f"{name.replace('/', '_').replace(':', '_')}-{key}.tar"


def prepare_images(cfg: MothershipConfig, report: Callable[[str], None]) -> None:
    """Write (once per set of inputs) and import every image the local node runs.

    Pause, one control-plane image per version in TENANT_VERSIONS (so tenants can be
    created at and upgraded between those versions with nothing pulled; each with the
    shell userland the managed etcd scripts need), CoreDNS for cluster DNS, k0s, and the
    monitoring sidecars' Prometheus and nginx (testenv/monitoring_images.py). An image
    already in containerd is kept only if it is the one these inputs give.
    """
    from mothership.testenv.gobuild import build_env

    cache = _images_dir()
    cache.mkdir(parents=True, exist_ok=True)
    env = build_env()
    pause = images.build_pause(paths.build_root() / "pause", env)
    shell = userland.files(paths.build_root() / "userland", env)
    wanted: list[tuple[str, dict[str, images.Content], list[str]]] = [
        (PAUSE_IMAGE, {"/pause": pause}, ["/pause"]),
        (clusterdns.IMAGE, clusterdns.image_files(), list(clusterdns.ENTRYPOINT)),
    ]
    for version in TENANT_VERSIONS:
        files: dict[str, images.Content] = {**control_plane_image_files(cfg.bin_dir, version)}
        wanted.append((local_control_plane_image(version), {**files, **shell}, []))
    wanted.append((K0S_IMAGE, {**k0s_image_files(cfg.bin_dir), **shell}, []))
    wanted.extend(monitoring_images.images())
    wanted.append((ssh_client_image.image(), ssh_client_image.files(), []))
    address = str(containerd_socket(cfg))
    for name, files, entrypoint in wanted:
        archive = ensure_archive(name, files, entrypoint, report)
        digest = images.archive_digest(archive)
        if images.image_present(name, address=address, digest=digest):
            continue
        report(f"importing image {name}")
        images.import_image(archive, address=address)


def ensure_archive(
    name: str,
    files: dict[str, images.Content],
    entrypoint: list[str],
    report: Callable[[str], None],
) -> Path:
    """The OCI archive of this image, written once per set of inputs into the image cache."""
    cache = _images_dir()
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / _archive_name(name, files, entrypoint)
    if not archive.exists():
        report(f"writing image {name}")
        tmp = archive.with_suffix(".tmp")
        images.write_oci_archive(tmp, name=name, files=files, entrypoint=entrypoint)
        tmp.rename(archive)
        _remove_older_archives(archive)
    return archive


def _remove_older_archives(current: Path) -> None:
    """Archives of the same image from earlier inputs (or the older naming, by image name and
    tenant version set): never imported again."""
    stem = current.name.rsplit("-", 1)[0]
    older = re.compile(re.escape(stem) + r"(-[0-9a-f]{12}|-tenant-k8s-[^/]+)?\.tar")
    for old in current.parent.glob(f"{stem}*.tar"):
        if old != current and older.fullmatch(old.name):
            old.unlink(missing_ok=True)


def ctr(cfg: MothershipConfig, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _sh("ctr", "--address", str(containerd_socket(cfg)), "-n", "k8s.io", *args, check=check)


def kill_all_tasks(cfg: MothershipConfig, timeout: float = 30.0) -> None:
    """Stop every container of the node and release its pod network.

    Going through containerd (not signals) lets the shims exit cleanly; CNI DEL for each
    sandbox removes its iptables masquerade rules, IP lease and network namespace, as
    the kubelet would have done had it stopped the pods itself.
    """
    if not containerd_socket(cfg).exists():
        return
    listed = ctr(cfg, "tasks", "ls", "-q", check=False)
    if listed.returncode != 0:
        return
    tasks = listed.stdout.split()
    for task in tasks:
        ctr(cfg, "tasks", "kill", "-a", "-s", "SIGKILL", task, check=False)
    deadline = time.monotonic() + timeout
    for task in tasks:
        while time.monotonic() < deadline:
            if ctr(cfg, "tasks", "delete", task, check=False).returncode == 0:
                break
            if task not in ctr(cfg, "tasks", "ls", "-q", check=False).stdout.split():
                break
            time.sleep(0.2)
    for container in ctr(cfg, "containers", "ls", "-q", check=False).stdout.split():
        pod_netns = _sandbox_netns(cfg, container)
        if pod_netns:
            release_pod_network(cfg, container, pod_netns)
        ctr(cfg, "containers", "rm", container, check=False)


def _sandbox_netns(cfg: MothershipConfig, container: str) -> str | None:
    info = ctr(cfg, "containers", "info", container, check=False)
    if info.returncode != 0:
        return None
    try:
        data = json.loads(info.stdout)
    except json.JSONDecodeError:
        return None
    if data.get("Labels", {}).get("io.cri-containerd.kind") != "sandbox":
        return None
    for ns in data.get("Spec", {}).get("linux", {}).get("namespaces", []):
        if ns.get("type") == "network" and ns.get("path", "").startswith(("/var/run/", "/run/")):
            return str(ns["path"])
    return None


def release_pod_network(cfg: MothershipConfig, container: str, pod_netns: str) -> None:
    conf = json.loads(cni_config(cfg))
    for plugin in reversed(conf["plugins"]):
        netconf = {"cniVersion": conf["cniVersion"], "name": conf["name"], **plugin}
        subprocess.run(
            netns.argv(cfg.node_netns, [str(Path(cni_bin_dir(), plugin["type"]))]),
            input=json.dumps(netconf),
            capture_output=True,
            text=True,
            check=False,
            env={
                "CNI_COMMAND": "DEL",
                "CNI_CONTAINERID": container,
                "CNI_NETNS": pod_netns,
                "CNI_IFNAME": "eth0",
                "CNI_PATH": cni_bin_dir(),
                "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            },
        )
    if Path(pod_netns).exists():
        _sh("umount", pod_netns, check=False)
        try:
            Path(pod_netns).unlink(missing_ok=True)
        except OSError:
            # Still busy (mounted twice through propagation, or a process entering it):
            # detach it lazily, so the kernel frees it once the last user is gone.
            _sh("umount", "-l", pod_netns, check=False)
            with contextlib.suppress(OSError):
                Path(pod_netns).unlink(missing_ok=True)


# Chains kubelet and kube-proxy create and `kube-proxy --cleanup` leaves behind. Any
# real kubelet/kube-proxy on the host recreates them on its next sync.
LEFTOVER_CHAINS = {
    "filter": ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY"),
    "nat": ("KUBE-KUBELET-CANARY",),
    "mangle": ("KUBE-KUBELET-CANARY",),
}


def remove_host_leftovers(cfg: MothershipConfig) -> None:
    """What the kubelet and kube-proxy leave on the host: a few chains, empty cgroups.

    A node in a machine leaves its chains in the machine's network namespace, which goes
    with the machine."""
    for tool in ("iptables", "ip6tables"):
        if cfg.node_netns or not shutil.which(tool):
            continue
        for table, chains in LEFTOVER_CHAINS.items():
            for chain in chains:
                for builtin in ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"):
                    while (
                        _sh(tool, "-t", table, "-D", builtin, "-j", chain, check=False).returncode
                        == 0
                    ):
                        pass
                _sh(tool, "-t", table, "-F", chain, check=False)
                _sh(tool, "-t", table, "-X", chain, check=False)
    for root in cgroup_dirs(cfg):
        if not root.exists():
            continue
        subdirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*subdirs, root]:
            with contextlib.suppress(OSError):
                d.rmdir()


def shim_pids(cfg: MothershipConfig) -> set[int]:
    """containerd shims serving our containerd: they re-parent to init, so find by address."""
    needle = str(containerd_socket(cfg)).encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and needle in cmdline:
            found.add(int(entry.name))
    return found


def unmount_under(root: Path) -> None:
    """Lazy-unmount everything the kubelet and containerd mounted below the state dir."""
    prefix = str(root.resolve())
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == prefix or target.startswith(prefix + "/"):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        _sh("umount", "-l", target, check=False)
