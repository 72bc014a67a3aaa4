"""The local mothership's download mirror for node components, served over HTTP.

Machines join with `--download-url http://10.200.0.1:8880`: the join script asks for each
component at its upstream location's host and path below that base
(`render/node_join.artifact_urls`), as a mirror of dl.k8s.io and GitHub releases at an
air-gapped site would. It holds what this project builds from Go modules (`mothership
tools install`): the kubelet of every tenant version, and containerd, runc and the CNI
plugins at the versions `node_join` pins, packed the way upstream releases pack them; and
for k0s workers the k0s binary (at GitHub's release path) with the kubelet of its
Kubernetes version. That k0s is built without embedded binaries, so a k0s worker also
takes containerd, runc and the kubelet from here.

Archives are written once per set of inputs into the cache and linked into the served
tree under the state dir, so a restart serves the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import sys
import tarfile
from pathlib import Path

from mothership.render.node_join import NodeVersions, artifact_urls
from mothership.testenv import paths
from mothership.testenv.config import MothershipConfig
from mothership.testenv.pins import (
    K0S_KUBERNETES_VERSION,
    K0S_VERSION,
    KUBERNETES_VERSION,
    TENANT_VERSIONS,
    node_families,
)

PORT = 8880
COMPONENT = "artifacts"
ARCH = "amd64"
CONTAINERD_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr")


class ArtifactsError(RuntimeError):
    """A component the mirror should hold is missing on this host."""


def url(cfg: MothershipConfig) -> str:
    return f"http://{cfg.node_ip}:{PORT}"


def served_dir(cfg: MothershipConfig) -> Path:
    return cfg.state_dir / "artifacts"


def versions() -> NodeVersions:
    return NodeVersions(kubernetes=KUBERNETES_VERSION, k0s=K0S_VERSION)


def _built(name: str) -> Path:
    path = paths.node_component(name)
    if not path.exists():
        raise ArtifactsError(f"{path} is not built; run `mothership tools install`")
    return path


def _tarball(entries: dict[str, Path]) -> bytes:
    """A gzipped tar of these files (name in archive -> host file), reproducible."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, src in sorted(entries.items()):
            info = tarfile.TarInfo(name)
            info.size = src.stat().st_size
            info.mode = 0o755
            info.mtime = 0
            with open(src, "rb") as fh:
                tar.addfile(info, fh)
    return gzip.compress(raw.getvalue(), mtime=0)


def _cached(name: str, entries: dict[str, Path]) -> Path:
    key = hashlib.sha256(
        repr(
            sorted((n, str(p), p.stat().st_size, p.stat().st_mtime_ns) for n, p in entries.items())
        ).encode()
    ).hexdigest()[:12]
    out = paths.cache_root() / "artifacts" / f"{key}-{name}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(_tarball(entries))
        tmp.rename(out)
    return out


def files(cfg: MothershipConfig) -> dict[str, Path]:
    """URL path below the mirror -> host file, for every component a join fetches."""
    v = versions()
    urls = {
        name: u.replace("${ARCH}", ARCH).split("://", 1)[1] for name, u in artifact_urls(v).items()
    }
    containerd = {f"bin/{b}": _built(b) for b in CONTAINERD_BINARIES}
    cni_family = next(f for f in node_families() if f.name == "cni-plugins")
    cni = {b.name: _built(b.name) for b in cni_family.binaries}
    kubelets = {
        artifact_urls(NodeVersions(kubernetes=version))["kubelet"]
        .replace("${ARCH}", ARCH)
        .split("://", 1)[1]: paths.kubernetes_bin_dir(cfg.bin_dir, version) / "kubelet"
        for version in (*TENANT_VERSIONS, K0S_KUBERNETES_VERSION)
    }
    return {
        **kubelets,
        urls["k0s"]: paths.k0s_bin_dir() / "k0s",
        urls["containerd"]: _cached(Path(urls["containerd"]).name, containerd),
        urls["runc"]: _built("runc"),
        urls["cni-plugins"]: _cached(Path(urls["cni-plugins"]).name, cni),
    }


def prepare(cfg: MothershipConfig) -> Path:
    """The served tree: links to the files above, nothing else."""
    root = served_dir(cfg)
    shutil.rmtree(root, ignore_errors=True)
    for rel, src in files(cfg).items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(src)
    return root


def argv(cfg: MothershipConfig) -> list[str]:
    root = prepare(cfg)
    return [
        sys.executable, "-m", "http.server", str(PORT), "--bind", cfg.node_ip,
        "--directory", str(root),
    ]  # fmt: skip
