"""Where the project keeps what it builds and what the local mothership writes.

Everything lives in the user's cache dir, never inside the repository, so a clean
clone stays clean and CI can reuse a warm cache between runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from mothership.testenv.pins import (
    KUBERNETES_VERSION,
    Family,
    addon_families,
    addon_version_set,
    capi_version_set,
    k0s_version_set,
    node_families,
    node_version_set,
    tenant_version_set,
    tool_families,
    tool_version_set,
    version_set,
)

CACHE_ENV = "MOTHERSHIP_CACHE_DIR"
BIN_ENV = "MOTHERSHIP_BIN_DIR"
STATE_ENV = "MOTHERSHIP_STATE_DIR"


def cache_root() -> Path:
    if value := os.environ.get(CACHE_ENV):
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mothership"


def bin_dir() -> Path:
    """The versioned directory holding the pinned upstream binaries."""
    if value := os.environ.get(BIN_ENV):
        return Path(value).expanduser()
    return cache_root() / "bin" / version_set()


def tenant_bin_dir(version: str) -> Path:
    """Where the tenant control-plane binaries of a Kubernetes version are.

    The mothership's own version shares its bin dir; another version gets a sibling dir
    named after its own build inputs (or a subdir named after the version when
    MOTHERSHIP_BIN_DIR is set), so changing an unrelated pin does not rebuild it.
    """
    if version == KUBERNETES_VERSION:
        return bin_dir()
    if value := os.environ.get(BIN_ENV):
        return Path(value).expanduser() / version
    return cache_root() / "bin" / tenant_version_set(version)


def tool_bin_dir(family: Family) -> Path:
    """Where a tool (helm) is built: beside the mothership's binaries when
    MOTHERSHIP_BIN_DIR is set, else a bin dir of its own."""
    if value := os.environ.get(BIN_ENV):
        return Path(value).expanduser()
    return cache_root() / "bin" / tool_version_set(family)


def tool(name: str) -> Path:
    """The path of a pinned tool's binary (present once `mothership tools install` ran)."""
    for family in tool_families():
        if any(b.name == name for b in family.binaries):
            return tool_bin_dir(family) / name
    raise KeyError(f"no pinned tool {name!r} (see tool_families in mothership/testenv/pins.py)")


def addon_bin_dir(family: Family) -> Path:
    """Where a cluster add-on (CoreDNS) is built: beside the mothership's binaries when
    MOTHERSHIP_BIN_DIR is set, else a bin dir of its own."""
    if value := os.environ.get(BIN_ENV):
        return Path(value).expanduser()
    return cache_root() / "bin" / addon_version_set(family)


def addon(name: str) -> Path:
    """The path of a pinned add-on's binary (present once `mothership tools install` ran)."""
    for family in addon_families():
        if any(b.name == name for b in family.binaries):
            return addon_bin_dir(family) / name
    raise KeyError(f"no pinned add-on {name!r} (see addon_families in mothership/testenv/pins.py)")


def node_bin_dir(family: Family) -> Path:
    """Where a worker node component (containerd, runc, CNI plugins) is built: beside the
    mothership's binaries when MOTHERSHIP_BIN_DIR is set, else a bin dir of its own."""
    if value := os.environ.get(BIN_ENV):
        return Path(value).expanduser()
    return cache_root() / "bin" / node_version_set(family)


def node_component(name: str) -> Path:
    """The path of a pinned node component's binary (present once `tools install` ran)."""
    for family in node_families():
        if any(b.name == name for b in family.binaries):
            return node_bin_dir(family) / name
    raise KeyError(f"no pinned node component {name!r} (see node_families in testenv/pins.py)")


def kubernetes_bin_dir(bin_dir: Path, version: str) -> Path:
    """Where the kubelet and kube-proxy of one Kubernetes version are: the mothership's own
    (``bin_dir``), a tenant version's, or those built beside k0s. A worker's kubelet may not
    be newer than its API server, so each version served to workers has its own."""
    from mothership.testenv.pins import K0S_KUBERNETES_VERSION

    if version == K0S_KUBERNETES_VERSION:
        return k0s_bin_dir()
    return bin_dir if version == KUBERNETES_VERSION else tenant_bin_dir(version)


def k0s_bin_dir() -> Path:
    """Where k0s and the Kubernetes binaries it runs are built: beside the mothership's
    binaries when MOTHERSHIP_BIN_DIR is set (in a subdir, their names clash), else a bin
    dir of its own."""
    if value := os.environ.get(BIN_ENV):
        return Path(value).expanduser() / "k0s"
    return cache_root() / "bin" / k0s_version_set()


def go_root() -> Path:
    """GOPATH, module cache and build cache, kept warm across builds."""
    return cache_root() / "go"


def build_root() -> Path:
    """Wrapper Go modules, one per family."""
    return cache_root() / "build"


def state_root() -> Path:
    """Default parent of local mothership state dirs (certs, logs, data, pids)."""
    if value := os.environ.get(STATE_ENV):
        return Path(value).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mothership"


def capi_bin_dir() -> Path:
    """Where Cluster API's manager and clusterctl are built: beside the mothership's
    binaries when MOTHERSHIP_BIN_DIR is set, else a bin dir of its own."""
    if value := os.environ.get(BIN_ENV):
        return Path(value).expanduser()
    return cache_root() / "bin" / capi_version_set()
