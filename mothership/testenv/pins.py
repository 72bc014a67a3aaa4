"""Every upstream version the project builds and runs, pinned in one place.

Why these versions:

* Kubernetes v1.35.4: the newest minor whose kubelet still runs on containerd 1.x
  (Debian bookworm ships containerd 1.6); v1.36 and later need containerd 2.
  It is inside upstream's support window and its go directive (1.25) is met by the
  machine's Go, so no toolchain is downloaded.
* etcd v3.6.16: the 3.6 line Kubernetes 1.35 is tested with.
* kine v0.17.5: the newest release whose go directive the local Go satisfies
  (v0.16.6 asks for go 1.26.10); it carries SQLite (pure Go), PostgreSQL, MySQL
  and, with the ``nats`` tag, NATS.
* apiserver-network-proxy v0.34.0 with konnectivity-client v0.34.0: the proxy
  release cut for Kubernetes 1.34/1.35; the client is required explicitly because
  the server module's own go.mod points at an older client.
* kwok v0.8.0: current release; built in its own module so its Kubernetes libraries
  (v0.36) never mix with the v0.35 ones above.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"
KINE_VERSION = "v0.17.5"
KONNECTIVITY_VERSION = "v0.34.0"
KWOK_VERSION = "v0.8.0"


@dataclass(frozen=True)
class Binary:
    """One executable: the name it gets in the bin dir and the Go package it is built from."""

    name: str
    package: str
    version_args: tuple[str, ...] = ("--version",)
    # A substring the version output must contain, proving the binary is the pinned one.
    expect: str = ""


@dataclass(frozen=True)
class Family:
    """A group of binaries built from one wrapper module.

    Families never share a wrapper, so minimal version selection cannot mix the
    grpc/otel/k8s.io versions of one upstream project into another.
    """

    name: str
    module: str
    version: str
    binaries: tuple[Binary, ...]
    # Local-path replaces in the upstream go.mod whose target module starts with this
    # prefix are pinned to ``sibling_version`` (e.g. k8s.io staging modules -> v0.35.4).
    sibling_prefix: str = ""
    sibling_version: str = ""
    extra_requires: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    cgo: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _kube_minor(version: str) -> tuple[str, str]:
    major, minor, _ = version.lstrip("v").split(".")
    return major, minor


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    major, minor = _kube_minor(version)
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{k}={v}" for k, v in values.items()]
    return tuple(flags)


def kubernetes_family(version: str = KUBERNETES_VERSION) -> Family:
    _, minor = _kube_minor(version)
    patch = version.rsplit(".", 1)[1]
    cmd = "k8s.io/kubernetes/cmd/"
    names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
    bins = tuple(Binary(n, cmd + n, ("--version",), version) for n in names)
    bins += (Binary("kubectl", cmd + "kubectl", ("version", "--client"), version),)
    return Family(
        name="kubernetes",
        module="k8s.io/kubernetes",
        version=version,
        binaries=bins,
        sibling_prefix="k8s.io/",
        sibling_version=f"v0.{minor}.{patch}",
        ldflags=_kubernetes_ldflags(version),
    )


def families() -> tuple[Family, ...]:
    return (
        kubernetes_family(),
        Family(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version=ETCD_VERSION,
            binaries=(
                Binary("etcd", "go.etcd.io/etcd/server/v3", ("--version",), ETCD_VERSION[1:]),
                Binary("etcdctl", "go.etcd.io/etcd/etcdctl/v3", ("version",), ETCD_VERSION[1:]),
            ),
            sibling_prefix="go.etcd.io/etcd/",
            sibling_version=ETCD_VERSION,
            extra_requires=(("go.etcd.io/etcd/etcdctl/v3", ETCD_VERSION),),
        ),
        Family(
            name="kine",
            module="github.com/k3s-io/kine",
            version=KINE_VERSION,
            binaries=(Binary("kine", "github.com/k3s-io/kine", ("--version",), KINE_VERSION),),
            tags=("nats",),
            ldflags=(f"-X github.com/k3s-io/kine/pkg/version.Version={KINE_VERSION}",),
        ),
        Family(
            name="konnectivity",
            module="sigs.k8s.io/apiserver-network-proxy",
            version=KONNECTIVITY_VERSION,
            binaries=(
                Binary(
                    "konnectivity-server",
                    "sigs.k8s.io/apiserver-network-proxy/cmd/server",
                    ("--help",),
                    "gRPC proxy server",
                ),
                Binary(
                    "konnectivity-agent",
                    "sigs.k8s.io/apiserver-network-proxy/cmd/agent",
                    ("--help",),
                    "gRPC agent",
                ),
            ),
            sibling_prefix="sigs.k8s.io/apiserver-network-proxy/",
            sibling_version=KONNECTIVITY_VERSION,
            extra_requires=(
                ("sigs.k8s.io/apiserver-network-proxy/konnectivity-client", KONNECTIVITY_VERSION),
            ),
        ),
        Family(
            name="kwok",
            module="sigs.k8s.io/kwok",
            version=KWOK_VERSION,
            binaries=(Binary("kwok", "sigs.k8s.io/kwok/cmd/kwok", ("--version",), ""),),
            ldflags=(f"-X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}",),
        ),
    )


def version_set() -> str:
    """Name of the bin dir for this exact set of pins.

    Only what changes the bytes of a binary goes into the name (modules, versions,
    packages, tags, flags), so adjusting how a binary is verified reuses the build.
    """
    build_inputs = [
        (
            f.module,
            f.version,
            f.sibling_version,
            f.extra_requires,
            f.tags,
            f.ldflags,
            f.cgo,
            sorted(f.env.items()),
            [(b.name, b.package) for b in f.binaries],
        )
        for f in families()
    ]
    digest = hashlib.sha256(repr(build_inputs).encode()).hexdigest()[:10]
    return f"k8s-{KUBERNETES_VERSION}-{digest}"
