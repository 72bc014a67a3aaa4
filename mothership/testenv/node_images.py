"""The images a tenant's worker nodes run, under their upstream names, for the local registry.

Workers pull what the tenant's add-ons name (registry.k8s.io/kube-proxy, the konnectivity
agent, CoreDNS, flannel, metrics-server, the pause image) through a registry mirror, as an
air-gapped site does. Here each image is written from the binaries this project builds
plus, where a component shells out to netfilter tools (kube-proxy, flannel), Debian's
iptables-nft and conntrack with the shared libraries they load. A small busybox image is
there for tests and demos, and a small admission webhook (testenv/webhook_demo.py).

The names are the upstream ones on purpose: a worker's containerd asks its mirror for
`kube-proxy:v1.35.4` exactly as it would ask registry.k8s.io, so nothing in the tenant
names the mirror.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_COREDNS_IMAGE,
    DEFAULT_KONNECTIVITY_AGENT_IMAGE,
    UPSTREAM_REGISTRY,
)
from mothership.render import network_addons
from mothership.testenv import paths, userland, webhook_demo
from mothership.testenv.images import Content, Symlink
from mothership.testenv.pins import K0S_KUBERNETES_VERSION, KUBERNETES_VERSION, TENANT_VERSIONS

PAUSE_IMAGE = f"{UPSTREAM_REGISTRY}/pause:3.10"
KUBE_PROXY_IMAGE = f"{UPSTREAM_REGISTRY}/kube-proxy:{KUBERNETES_VERSION}"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.35.0"
BUSYBOX_APPLETS = (
    "sh", "ash", "cat", "cp", "date", "echo", "env", "false", "grep", "head", "hostname",
    "httpd", "id", "ip", "ls", "mkdir", "mv", "nc", "nslookup", "ping", "ps", "rm", "sed",
    "sleep", "tail", "tee", "touch", "true", "uname", "wc", "wget",
)  # fmt: skip
XTABLES_MULTI = Path("/usr/sbin/xtables-nft-multi")
XTABLES_EXTENSIONS = Path("/usr/lib/x86_64-linux-gnu/xtables")
CONNTRACK = Path("/usr/sbin/conntrack")
IPTABLES_NAMES = (
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
    "iptables-nft",
    "iptables-nft-save",
    "iptables-nft-restore",
    "ip6tables-nft",
    "ip6tables-nft-save",
    "ip6tables-nft-restore",
)


class NodeImageError(RuntimeError):
    """A file an image needs is missing on this host; the message says what to install."""


@dataclass(frozen=True)
class NodeImage:
    name: str
    files: dict[str, Content]
    entrypoint: list[str] = field(default_factory=list)


def shared_libraries(binaries: list[Path]) -> dict[str, Path]:
    """Path in the image -> host file, for every library these binaries load (by ldd)."""
    found: dict[str, Path] = {}
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        for line in out.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                target = parts[parts.index("=>") + 1]
                if target == "not":
                    raise NodeImageError(f"{binary} needs {parts[0]}, which is not on this host")
                if target.startswith("/"):
                    found[target] = Path(target).resolve()
            elif parts and parts[0].startswith("/"):
                found[parts[0]] = Path(parts[0]).resolve()
    return found


def netfilter_userland() -> dict[str, Content]:
    """iptables (nf_tables backend) under all its names, its extensions, and conntrack."""
    for path in (XTABLES_MULTI, XTABLES_EXTENSIONS, CONNTRACK):
        if not path.exists():
            raise NodeImageError(
                f"{path} is missing: install Debian's iptables and conntrack "
                "(`bash scripts/setup-host`)"
            )
    files: dict[str, Content] = {"/usr/sbin/xtables-nft-multi": XTABLES_MULTI}
    files.update({f"/usr/sbin/{n}": Symlink("xtables-nft-multi") for n in IPTABLES_NAMES})
    files["/usr/sbin/conntrack"] = CONNTRACK
    extensions = sorted(XTABLES_EXTENSIONS.glob("*.so"))
    files.update({f"{XTABLES_EXTENSIONS}/{p.name}": p for p in extensions})
    files.update(shared_libraries([XTABLES_MULTI, CONNTRACK, *extensions]))
    return files


def busybox_files() -> dict[str, Content]:
    """Debian's static busybox under the names tests and demos use (a web server, clients)."""
    files: dict[str, Content] = {"/bin/busybox": userland.find_busybox()}
    files.update({f"/bin/{applet}": Symlink("busybox") for applet in BUSYBOX_APPLETS})
    files["/etc/passwd"] = (
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    files["/etc/group"] = b"root:x:0:\nnogroup:x:65534:\n"
    return files


def node_images(bin_dir: Path) -> list[NodeImage]:
    """Every image a joined worker may run, with what it holds."""
    from mothership.testenv.gobuild import build_env
    from mothership.testenv.images import build_pause

    env = build_env()
    pause = build_pause(paths.build_root() / "pause", env)
    webhook = webhook_demo.build(paths.build_root() / "webhook-demo", env)
    shell = userland.files(paths.build_root() / "userland", env)
    netfilter = netfilter_userland()
    return [
        NodeImage(PAUSE_IMAGE, {"/pause": pause}, ["/pause"]),
        *(
            NodeImage(
                f"{UPSTREAM_REGISTRY}/kube-proxy:{version}",
                {
                    "/usr/local/bin/kube-proxy": paths.kubernetes_bin_dir(bin_dir, version)
                    / "kube-proxy",
                    **netfilter,
                },
                ["/usr/local/bin/kube-proxy"],
            )
            # k0s workers run k0s's kube-proxy version (an air-gapped k0s config points
            # spec.images.kubeproxy at registry.k8s.io/kube-proxy)
            for version in (*TENANT_VERSIONS, K0S_KUBERNETES_VERSION)
        ),
        NodeImage(
            DEFAULT_KONNECTIVITY_AGENT_IMAGE,
            {"/proxy-agent": bin_dir / "konnectivity-agent"},
            ["/proxy-agent"],
        ),
        NodeImage(DEFAULT_COREDNS_IMAGE, {"/coredns": paths.addon("coredns")}, ["/coredns"]),
        NodeImage(
            network_addons.FLANNEL_IMAGE,
            {
                "/opt/bin/flanneld": paths.addon("flanneld"),
                **netfilter,
                **shared_libraries([paths.addon("flanneld")]),
                **shell,
            },
            ["/opt/bin/flanneld"],
        ),
        NodeImage(
            network_addons.METRICS_SERVER_IMAGE,
            {"/metrics-server": paths.addon("metrics-server")},
            ["/metrics-server"],
        ),
        NodeImage(BUSYBOX_IMAGE, busybox_files(), ["/bin/sh"]),
        NodeImage(webhook_demo.IMAGE, {webhook_demo.BINARY: webhook}, [webhook_demo.BINARY]),
    ]
