"""Every upstream version the project builds and runs, pinned in one place.

Why these versions:

* Kubernetes v1.35.4: the newest minor whose kubelet still runs on containerd 1.x
  (Debian bookworm ships containerd 1.6); v1.36 and later need containerd 2.
  It is inside upstream's support window and its go directive (1.25) is met by the
  machine's Go, so no toolchain is downloaded.
* Kubernetes v1.34.4 (tenant control planes only): the version tenants upgrade *from*.
  One minor below, so an upgrade crosses a minor as real ones do; the module proxy
  carries no other v1.35 patch release to upgrade between.
* etcd v3.6.16: the 3.6 line Kubernetes 1.35 is tested with.
* kine v0.17.5: the newest release whose go directive the local Go satisfies
  (v0.16.6 asks for go 1.26.10); it carries SQLite (pure Go), PostgreSQL, MySQL
  and, with the ``nats`` tag, NATS.
* apiserver-network-proxy v0.34.0 with konnectivity-client v0.34.0: the proxy
  release cut for Kubernetes 1.34/1.35; the client is required explicitly because
  the server module's own go.mod points at an older client.
* kwok v0.8.0: current release; built in its own module so its Kubernetes libraries
  (v0.36) never mix with the v0.35 ones above.
* helm v3.22.0 (a tool, not part of the mothership): the newest Helm 3 on the proxy; it
  lints and renders the chart in deploy/helm in the tests. Its go directive (1.26.0) is
  met by the machine's Go; built in its own bin dir so it never rebuilds Kubernetes.
* Ignition v2.24.0 (a tool): the newest release on the proxy. The tests run its `files`
  stage into a directory standing for a machine's root, and its validator, over the
  Ignition bootstrap data of a K0sWorkerConfig. Built with cgo (it links libblkid) and, as
  Flatcar builds it, without SELinux relabelling.
* CoreDNS v1.14.7 (the local mothership's cluster DNS, run in a pod): the newest release
  built against client-go v0.35.4, the Kubernetes libraries pinned above (v1.15.0 wants
  v0.37 and go 1.26). Built from a wrapper main that keeps only the plugins cluster DNS
  uses (mothership/testenv/coredns_main.py), in a bin dir of its own.
* registry v3.1.2 (CNCF distribution): the newest release on the proxy. The local
  mothership runs it as the registry mirror that machines pull every tenant image from,
  as an air-gapped site does.
* flannel v0.28.10: the tenant pod network (VXLAN overlay). k0s's default, kube-router, is
  served only at v2.1.0, which has reported security flaws; flannel's newest release has
  none reported. Built with cgo: its main links every backend, and the udp one has C
  code (the image carries the libc it links against). The split
  module of its Tencent Cloud backend's SDK is refused by the proxy; an empty local
  replacement makes Go take that package from the SDK's monolithic module, which is
  served (mothership/testenv/flannel_shim.py).
* metrics-server v0.8.0: the newest approved release (v0.9.0 is served but not approved);
  deployed into tenants as k0s does, so `kubectl top` works through the tunnel.
* Prometheus v3.16.0 (Go module version v0.316.0, as Prometheus tags its library): the
  newest release on the proxy; the monitoring sidecar of a Cluster with
  `spec.monitoring.enabled` (k0smotron names quay.io/k0sproject/prometheus:v2.44.0, which
  cannot be pulled here; the 2.x line is out of support). Built without the web UI's
  embedded assets (tag `builtinassets`): the sidecar serves /federate, not the UI. Its
  proxy beside it is Debian's nginx (testenv/monitoring_images.py), not built.
* cert-manager v1.21.2: the newest release on the proxy; Cluster API's releases, which
  clusterctl installs, get their webhook certificates and CA bundles from it. Built from a
  main of ours over the core module's packages (mothership/testenv/certmanager_main.py):
  upstream's commands are separate modules the proxy does not serve.
* Worker node components, served to joining machines by the local mirror and pinned as
  the join's defaults (mothership/render/node_join.py):
  - containerd v2.3.7: the newest patch of 2.3, containerd's current long-term-stable
    line (supported to April 2028); still runs on cgroup v1 hosts (deprecated there, kept
    until 2029). Built without cgo, as upstream's static release (no btrfs snapshotter).
  - runc v1.5.2: the version containerd v2.3.7 is tested with. Needs cgo (its nsexec is C)
    and libseccomp; linked statically, with seccomp, like upstream's release binary.
  - CNI plugins v1.10.0: the newest release; every Linux plugin of upstream's tarball.
* k0s (the `k0s` distribution, k0smotron's default): the proxy serves no k0s release for
  Kubernetes 1.34/1.35, only the release-1.33 commit cd041608f44a (Feb 2026, after
  v1.33.8+k0s.0). Its Kubernetes libraries at v0.33.8 are refused, so they are moved to
  v0.33.13 (k8s.io/kubernetes to v1.33.13), the newest 1.33 patch served. Built as k0s's
  Makefile does with EMBEDDED_BINS_BUILDMODE=none (tag `noembedbins`: k0s runs the
  components it finds on PATH), with cgo (its backup code links SQLite) linked
  statically. The components beside it are Kubernetes v1.33.13, so the version it reports
  is v1.33.13+k0s.0.
* Cluster API v1.13.6 (core controller manager and clusterctl; `mothership dev up --capi`):
  the newest patch of the newest minor, newer than the release k0smotron builds against;
  its Kubernetes libraries are v0.35.4 and controller-runtime v0.23.3, as pinned above,
  and every dependency is served at the version its go.mod asks for. In a bin dir of its
  own, so Cluster API pins never rebuild Kubernetes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

KUBERNETES_VERSION = "v1.35.4"
# The version a tenant control plane is upgraded from; the mothership itself never runs it.
PREVIOUS_KUBERNETES_VERSION = "v1.34.4"
# Every Kubernetes version whose control-plane image the local mothership has, oldest first.
TENANT_VERSIONS = (PREVIOUS_KUBERNETES_VERSION, KUBERNETES_VERSION)
CONTROL_PLANE_IMAGE_REPO = "localhost/mothership/control-plane"
# What a tenant control-plane pod runs: the only binaries built for PREVIOUS_KUBERNETES_VERSION.
TENANT_CONTROL_PLANE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# What a worker of such a tenant runs: a kubelet may not be newer than its API server, so a
# tenant at the previous version gets workers (and kube-proxy) of that version too.
TENANT_NODE_BINARIES = ("kubelet", "kube-proxy")
ETCD_VERSION = "v3.6.16"
KINE_VERSION = "v0.17.5"
KONNECTIVITY_VERSION = "v0.34.0"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"
IGNITION_VERSION = "v2.24.0"
COREDNS_VERSION = "v1.14.7"
REGISTRY_VERSION = "v3.1.2"
FLANNEL_VERSION = "v0.28.10"
METRICS_SERVER_VERSION = "v0.8.0"
PROMETHEUS_MODULE_VERSION = "v0.316.0"
PROMETHEUS_VERSION = "v3.16.0"
CONTAINERD_VERSION = "v2.3.7"
RUNC_VERSION = "v1.5.2"
CNI_PLUGINS_VERSION = "v1.10.0"
K0S_MODULE_VERSION = "v1.33.9-0.20260218131128-cd041608f44a"
K0S_KUBERNETES_VERSION = "v1.33.13"
K0S_VERSION = f"{K0S_KUBERNETES_VERSION}+k0s.0"
K0S_IMAGE_REPO = "localhost/mothership/k0s"
CAPI_VERSION = "v1.13.6"
CERT_MANAGER_VERSION = "v1.21.2"
# zitadel/oidc: its example OpenID provider, run by the identity tests (oidc_provider_main.py).
OIDC_PROVIDER_VERSION = "v3.52.0"
CAPI_MODULE = "sigs.k8s.io/cluster-api"
# upstream's cni-plugins-linux tarball, by directory under plugins/
CNI_PLUGINS = {
    "main": ("bridge", "dummy", "host-device", "ipvlan", "loopback", "macvlan", "ptp", "tap",
             "vlan"),
    "ipam": ("dhcp", "host-local", "static"),
    "meta": ("bandwidth", "firewall", "portmap", "sbr", "tuning", "vrf"),
}  # fmt: skip


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
    # The wrapper module's own main.go, for a family built from a main of ours rather than
    # an upstream package (its binaries' package is then ".").
    main_source: str = ""
    # Modules of ours the wrapper replaces an upstream module with: (module path, dir name,
    # ((file name, content), ...)). Only for a dependency the proxy does not serve.
    local_modules: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()
    # (module prefix, version, served version): dependencies the proxy refuses at the version
    # upstream asks for, moved to a served one (see gomod.bump_versions).
    version_bumps: tuple[tuple[str, str, str], ...] = ()


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


def tenant_family(version: str) -> Family:
    """The tenant control-plane binaries of a Kubernetes version other than the mothership's.

    Its own wrapper module (named after the version) keeps its dependency graph apart
    from the mothership's Kubernetes.
    """
    full = kubernetes_family(version)
    return Family(
        name=f"kubernetes-{version}",
        module=full.module,
        version=version,
        binaries=tuple(
            b
            for b in full.binaries
            if b.name in TENANT_CONTROL_PLANE_BINARIES + TENANT_NODE_BINARIES
        ),
        sibling_prefix=full.sibling_prefix,
        sibling_version=full.sibling_version,
        ldflags=full.ldflags,
    )


def tenant_families() -> tuple[Family, ...]:
    """Families built into their own bin dirs, one per tenant-only version."""
    return tuple(tenant_family(v) for v in TENANT_VERSIONS if v != KUBERNETES_VERSION)


def local_control_plane_image(version: str) -> str:
    """The locally written image holding a tenant control plane of this Kubernetes version."""
    if version not in TENANT_VERSIONS:
        raise ValueError(
            f"no local control-plane image for Kubernetes {version}: the local mothership "
            f"builds {', '.join(TENANT_VERSIONS)} (pins in mothership/testenv/pins.py)"
        )
    return f"{CONTROL_PLANE_IMAGE_REPO}:{version}"


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


def _build_inputs(fams: tuple[Family, ...]) -> str:
    """Only what changes the bytes of a binary (modules, versions, packages, tags, flags),
    so adjusting how a binary is verified reuses the build."""
    inputs = [
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
            # Only when set, so families without a main of ours keep their bin dir names.
            *((hashlib.sha256(f.main_source.encode()).hexdigest(),) if f.main_source else ()),
            *(
                (hashlib.sha256(repr(f.local_modules).encode()).hexdigest(),)
                if f.local_modules
                else ()
            ),
            *((repr(f.version_bumps),) if f.version_bumps else ()),
        )
        for f in fams
    ]
    return hashlib.sha256(repr(inputs).encode()).hexdigest()[:10]


def version_set() -> str:
    """Name of the bin dir for this exact set of pins."""
    return f"k8s-{KUBERNETES_VERSION}-{_build_inputs(families())}"


def tenant_version_set(version: str) -> str:
    """Name of the bin dir of one tenant-only version, independent of the mothership's pins,
    so a new pin elsewhere does not rebuild it."""
    return f"tenant-k8s-{version}-{_build_inputs((tenant_family(version),))}"


def tool_families() -> tuple[Family, ...]:
    """Tools the project uses around the mothership (never run by it), each in its own bin dir."""
    return (
        Family(
            name="helm",
            module="helm.sh/helm/v3",
            version=HELM_VERSION,
            binaries=(
                Binary("helm", "helm.sh/helm/v3/cmd/helm", ("version", "--short"), HELM_VERSION),
            ),
            ldflags=(
                f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
                "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            ),
        ),
        Family(
            name="ignition",
            module="github.com/coreos/ignition/v2",
            version=IGNITION_VERSION,
            binaries=(
                Binary(
                    "ignition",
                    "github.com/coreos/ignition/v2/internal",
                    ("-version",),
                    f"Ignition {IGNITION_VERSION}",
                ),
                Binary(
                    "ignition-validate",
                    "github.com/coreos/ignition/v2/validate",
                    ("-version",),
                    IGNITION_VERSION,
                ),
            ),
            ldflags=(
                f"-X github.com/coreos/ignition/v2/internal/version.Raw={IGNITION_VERSION}",
                "-X github.com/coreos/ignition/v2/internal/distro.selinuxRelabel=false",
            ),
            cgo=True,
        ),
        oidc_provider_family(),
    )


def oidc_provider_family() -> Family:
    """The tests' OpenID provider: zitadel/oidc's example provider from a main of ours."""
    from mothership.testenv import oidc_provider_main

    return Family(
        name="oidc-provider",
        module=oidc_provider_main.MODULE,
        version=OIDC_PROVIDER_VERSION,
        binaries=(
            Binary("oidc-provider", ".", ("-version",), f"zitadel/oidc {OIDC_PROVIDER_VERSION}"),
        ),
        ldflags=(f"-X {oidc_provider_main.VERSION_VAR}={OIDC_PROVIDER_VERSION}",),
        main_source=oidc_provider_main.main_source(),
    )


def tool_version_set(family: Family) -> str:
    """Name of a tool's bin dir: its own build inputs only, so other pins never rebuild it."""
    return f"tool-{family.name}-{family.version}-{_build_inputs((family,))}"


def addon_families() -> tuple[Family, ...]:
    """Cluster add-ons the local mothership runs in pods, each in a bin dir of its own so
    that a new add-on pin never rebuilds Kubernetes."""
    from mothership.testenv import flannel_shim
    from mothership.testenv.coredns_main import MODULE, main_source

    return (
        Family(
            name="coredns",
            module=MODULE,
            version=COREDNS_VERSION,
            binaries=(Binary("coredns", ".", ("-version",), f"CoreDNS-{COREDNS_VERSION[1:]}"),),
            ldflags=(f"-X {MODULE}/coremain.GitCommit={COREDNS_VERSION}",),
            main_source=main_source(),
        ),
        Family(
            name="registry",
            module="github.com/distribution/distribution/v3",
            version=REGISTRY_VERSION,
            binaries=(
                Binary(
                    "registry",
                    "github.com/distribution/distribution/v3/cmd/registry",
                    ("--version",),
                    REGISTRY_VERSION,
                ),
            ),
            ldflags=(
                f"-X github.com/distribution/distribution/v3/version.version={REGISTRY_VERSION}",
            ),
        ),
        Family(
            name="flannel",
            module="github.com/flannel-io/flannel",
            version=FLANNEL_VERSION,
            binaries=(
                Binary(
                    "flanneld", "github.com/flannel-io/flannel", ("--version",), FLANNEL_VERSION
                ),
            ),
            ldflags=(f"-X github.com/flannel-io/flannel/pkg/version.Version={FLANNEL_VERSION}",),
            local_modules=((flannel_shim.MODULE, flannel_shim.DIR, flannel_shim.FILES),),
            cgo=True,
        ),
        Family(
            name="metrics-server",
            module="sigs.k8s.io/metrics-server",
            version=METRICS_SERVER_VERSION,
            binaries=(
                Binary(
                    "metrics-server",
                    "sigs.k8s.io/metrics-server/cmd/metrics-server",
                    ("--version",),
                    METRICS_SERVER_VERSION,
                ),
            ),
            # Where metrics-server's Makefile sets its version.
            ldflags=(f"-X k8s.io/client-go/pkg/version.gitVersion={METRICS_SERVER_VERSION}",),
        ),
        Family(
            name="prometheus",
            module="github.com/prometheus/prometheus",
            version=PROMETHEUS_MODULE_VERSION,
            binaries=(
                Binary(
                    "prometheus",
                    "github.com/prometheus/prometheus/cmd/prometheus",
                    ("--version",),
                    f"version {PROMETHEUS_VERSION[1:]}",
                ),
            ),
            # Where Prometheus's release build (promu) sets its version.
            ldflags=(
                f"-X github.com/prometheus/common/version.Version={PROMETHEUS_VERSION[1:]}",
                "-X github.com/prometheus/common/version.Branch=HEAD",
            ),
        ),
        cert_manager_family(),
    )


def cert_manager_family() -> Family:
    """cert-manager's controllers and CA injector, one binary from a main of ours."""
    from mothership.testenv import certmanager_main

    return Family(
        name="cert-manager",
        module=certmanager_main.MODULE,
        version=CERT_MANAGER_VERSION,
        binaries=(
            Binary("cert-manager", ".", ("--version",), f"cert-manager {CERT_MANAGER_VERSION}"),
        ),
        ldflags=(f"-X {certmanager_main.VERSION_VAR}={CERT_MANAGER_VERSION}",),
        main_source=certmanager_main.main_source(),
    )


def addon_version_set(family: Family) -> str:
    """Name of an add-on's bin dir: its own build inputs only."""
    return f"addon-{family.name}-{family.version}-{_build_inputs((family,))}"


def node_families() -> tuple[Family, ...]:
    """What a joining worker installs beside the kubelet, each in a bin dir of its own; the
    local mirror serves them packed as upstream releases are (testenv/artifacts.py)."""
    containerd = "github.com/containerd/containerd/v2"
    cni = "github.com/containernetworking/plugins"
    return (
        Family(
            name="containerd",
            module=containerd,
            version=CONTAINERD_VERSION,
            binaries=tuple(
                Binary(n, f"{containerd}/cmd/{n}", args, CONTAINERD_VERSION)
                for n, args in (
                    ("containerd", ("--version",)),
                    ("containerd-shim-runc-v2", ("-v",)),
                    ("ctr", ("--version",)),
                )
            ),
            ldflags=(
                f"-X {containerd}/version.Version={CONTAINERD_VERSION}",
                f"-X {containerd}/version.Package=github.com/containerd/containerd/v2",
            ),
        ),
        Family(
            name="runc",
            module="github.com/opencontainers/runc",
            version=RUNC_VERSION,
            binaries=(
                Binary("runc", "github.com/opencontainers/runc", ("--version",), RUNC_VERSION[1:]),
            ),
            tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"),
            ldflags=(
                f"-X main.version={RUNC_VERSION[1:]}",
                "-linkmode external",
                "-extldflags -static",
            ),
            cgo=True,
        ),
        Family(
            name="cni-plugins",
            module=cni,
            version=CNI_PLUGINS_VERSION,
            binaries=tuple(
                Binary(n, f"{cni}/plugins/{kind}/{n}", (), CNI_PLUGINS_VERSION)
                for kind, names in CNI_PLUGINS.items()
                for n in names
            ),
            ldflags=(f"-X {cni}/pkg/utils/buildversion.BuildVersion={CNI_PLUGINS_VERSION}",),
        ),
    )


def node_version_set(family: Family) -> str:
    """Name of a node component's bin dir: its own build inputs only."""
    return f"node-{family.name}-{family.version}-{_build_inputs((family,))}"


def k0s_families() -> tuple[Family, ...]:
    """k0s and the Kubernetes binaries it runs, built into one bin dir of their own."""
    k0s = "github.com/k0sproject/k0s"
    kube = kubernetes_family(K0S_KUBERNETES_VERSION)
    build = f"{k0s}/pkg/build"
    return (
        Family(
            name="k0s",
            module=k0s,
            version=K0S_MODULE_VERSION,
            binaries=(Binary("k0s", k0s, ("version",), K0S_VERSION),),
            tags=("osusergo", "netgo", "noembedbins"),
            ldflags=(
                f"-X {build}.Version={K0S_VERSION}",
                f"-X {build}.KubernetesVersion={K0S_KUBERNETES_VERSION[1:]}",
                f"-X {build}.KineVersion={KINE_VERSION[1:]}",
                f"-X {build}.EtcdVersion={ETCD_VERSION[1:]}",
                f"-X {build}.KonnectivityVersion={KONNECTIVITY_VERSION[1:]}",
                *_kubernetes_ldflags(K0S_KUBERNETES_VERSION)[:6],
                "-linkmode external",
                "-extldflags -static",
            ),
            cgo=True,
            version_bumps=(
                ("k8s.io/kubernetes", "v1.33.8", K0S_KUBERNETES_VERSION),
                ("k8s.io/", "v0.33.8", "v0." + K0S_KUBERNETES_VERSION.split(".", 1)[1]),
            ),
        ),
        Family(
            name=f"kubernetes-{K0S_KUBERNETES_VERSION}",
            module=kube.module,
            version=K0S_KUBERNETES_VERSION,
            binaries=tuple(
                b
                for b in kube.binaries
                if b.name in TENANT_CONTROL_PLANE_BINARIES + TENANT_NODE_BINARIES
            ),
            sibling_prefix=kube.sibling_prefix,
            sibling_version=kube.sibling_version,
            ldflags=kube.ldflags,
        ),
    )


def k0s_version_set() -> str:
    """Name of the k0s bin dir: its own build inputs only."""
    return f"k0s-{K0S_VERSION.replace('+', '-')}-{_build_inputs(k0s_families())}"


def capi_family() -> Family:
    """Cluster API's core controller manager and clusterctl, from one wrapper module."""
    return Family(
        name="cluster-api",
        module=CAPI_MODULE,
        version=CAPI_VERSION,
        binaries=(
            # The manager has no version flag: its usage names the webhook port it serves.
            Binary("capi-manager", CAPI_MODULE, ("--help",), "webhook-port"),
            Binary("clusterctl", f"{CAPI_MODULE}/cmd/clusterctl", ("version",), CAPI_VERSION),
        ),
        ldflags=(f"-X {CAPI_MODULE}/version.gitVersion={CAPI_VERSION}",),
    )


def capi_version_set() -> str:
    """Name of the Cluster API bin dir: its own build inputs only."""
    return f"capi-{CAPI_VERSION}-{_build_inputs((capi_family(),))}"
