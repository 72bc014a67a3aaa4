"""What a machine runs to join a tenant as a worker: pure.

One POSIX shell script, rendered from the cluster's facts and a join token, which needs
only `sh`, `curl` or `wget`, `base64`, `gunzip`, `sha256sum`, `tar` and root:

1. it checks the token before touching the machine: well-formed, for this cluster (its
   CA), not expired, and accepted by the API server (not revoked), each failure with a
   message that says which and what to do; nothing is installed when a check fails;
2. it downloads the node components from their upstream release locations, or from a
   mirror laid out the same way (`--download-url`), or uses those already installed
   (`--preinstalled`); every download completes before anything is moved into place.
   `kubernetes` distribution: kubelet, containerd and its shim, runc, the CNI plugins.
   `k0s` distribution: the k0s release of the Cluster's version and the CNI plugins (a
   `custom` network provider needs them); a k0s built without its embedded binaries (Go
   tag `noembedbins`, as this project builds it) also gets kubelet, containerd and runc;
3. it writes the configuration and starts the components as systemd units, or under a
   small supervisor where systemd does not run. `kubernetes`: cluster DNS and domain, the
   cluster CA, the bootstrap kubeconfig from the token, node name, labels, taints, extra
   kubelet flags, containerd with a registry mirror for air-gapped sites. `k0s`: the token
   file and containerd drop-ins (the registry mirror) for `k0s worker`, which reads the
   rest from the cluster's worker profile; node name, labels, taints and kubelet flags
   become `k0s worker` flags;
4. the kubelet joins through TLS bootstrapping (the tenant approves its CSR); the script
   waits until it has its client certificate.

Everything it writes is listed in `/var/lib/mothership-node/installed`, which
`mothership-node-leave` (written by the join) reads to stop the components and remove what
the join wrote; the Node object is deleted with kubectl (a kubelet may not delete it).

The Cluster API bootstrap provider will render the same script into cloud-init, so the
inputs are plain data (`JoinFacts`, `JoinOptions`), never API objects.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files

from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_K0S_VERSION,
    DEFAULT_KUBERNETES_VERSION,
    Cluster,
)
from mothership.render import network
from mothership.render.join_token import decode_join_token

# The versions this project builds from Go modules, serves from its local mirror and tests
# the join with (why these: mothership/testenv/pins.py; a unit test keeps both equal).
DEFAULT_CONTAINERD_VERSION = "2.3.7"
DEFAULT_RUNC_VERSION = "1.5.2"
DEFAULT_CNI_PLUGINS_VERSION = "1.10.0"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
MIRRORED_REGISTRIES = ("registry.k8s.io", "docker.io", "quay.io", "ghcr.io")
STATE_DIR = "/var/lib/mothership-node"
LEAVE_COMMAND = "/usr/local/bin/mothership-node-leave"
# Upstream release locations, with ${ARCH} filled in on the machine.
UPSTREAM = {
    "kubelet": "https://dl.k8s.io/release/{kubernetes}/bin/linux/${{ARCH}}/kubelet",
    "containerd": "https://github.com/containerd/containerd/releases/download/v{containerd}/"
    "containerd-{containerd}-linux-${{ARCH}}.tar.gz",
    "runc": "https://github.com/opencontainers/runc/releases/download/v{runc}/runc.${{ARCH}}",
    "cni-plugins": "https://github.com/containernetworking/plugins/releases/download/"
    "v{cni_plugins}/cni-plugins-linux-${{ARCH}}-v{cni_plugins}.tgz",
    "k0s": "https://github.com/k0sproject/k0s/releases/download/{k0s}/k0s-{k0s}-${{ARCH}}",
}
DISTRIBUTIONS = ("kubernetes", "k0s")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_TAINT = re.compile(r"^[^=:\s]+(=[^=:\s]*)?:(NoSchedule|PreferNoSchedule|NoExecute)$")
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class JoinError(ValueError):
    """An option cannot be turned into a join script; the message names it and the fix."""


@dataclass(frozen=True)
class NodeVersions:
    kubernetes: str
    containerd: str = DEFAULT_CONTAINERD_VERSION
    runc: str = DEFAULT_RUNC_VERSION
    cni_plugins: str = DEFAULT_CNI_PLUGINS_VERSION
    k0s: str = ""  # a k0s release (v1.33.13+k0s.0), for the k0s distribution


@dataclass(frozen=True)
class JoinFacts:
    """What the cluster says: who it is, its token, and what its nodes need to know."""

    cluster: str  # namespace/name, for messages
    token: str  # k0s-format join token (base64 of a gzipped bootstrap kubeconfig)
    ca_pem: bytes
    cluster_dns: str
    cluster_domain: str
    versions: NodeVersions
    expires: datetime | None = None
    distribution: str = "kubernetes"


@dataclass(frozen=True)
class JoinOptions:
    """What the user (or the operator's defaults) choose for this machine."""

    download_url: str = ""  # a mirror laid out like the upstream locations; "" = upstream
    registry_mirror: str = ""  # e.g. http://10.200.0.1:5000; "" = pull from the registries
    preinstalled: bool = False
    node_name: str = ""  # "" = the machine's host name
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[str, ...] = ()
    kubelet_args: tuple[str, ...] = ()


def join_facts(
    cluster: Cluster, namespace: str, token: str, expires: datetime | None = None
) -> JoinFacts:
    """The facts of a Cluster a join needs, from its spec and token."""
    _, ca_pem, _ = token_parts(token)
    spec = cluster.spec
    if spec.distribution == "k0s":
        release = k0s_release(spec.version or DEFAULT_K0S_VERSION)
        versions = NodeVersions(kubernetes=release.split("+", 1)[0], k0s=release)
    else:
        versions = NodeVersions(kubernetes=spec.version or DEFAULT_KUBERNETES_VERSION)
    return JoinFacts(
        cluster=f"{namespace}/{cluster.metadata.get('name')}",
        token=token,
        ca_pem=ca_pem,
        cluster_dns=network.service_ip(spec, network.DNS_SERVICE_INDEX),
        cluster_domain=network.cluster_domain(spec),
        versions=versions,
        expires=expires,
        distribution=spec.distribution,
    )


def k0s_release(version: str) -> str:
    """A Cluster's k0s version as k0s names its releases: v1.33.13-k0s.0 -> v1.33.13+k0s.0
    (image tags cannot hold a `+`, so k0smotron's versions carry a `-`)."""
    match = re.fullmatch(r"(v?\d+\.\d+\.\d+)[-+](k0s\.\d+)", version)
    if match is None:
        raise JoinError(
            f"spec.version {version!r} is not a k0s version such as v1.33.13-k0s.0, so no k0s "
            "release can be downloaded for it"
        )
    prefix = "" if match.group(1).startswith("v") else "v"
    return f"{prefix}{match.group(1)}+{match.group(2)}"


# What a download mirror and a registry mirror may be (also checked at install time, and by
# the Helm chart's values schema: both are regular expressions JSON Schema reads the same).
DOWNLOAD_URL_PATTERN = r"^https?://[^\s]+$"
REGISTRY_MIRROR_PATTERN = r"^https?://[^\s/]+/?$"


def validate_options(options: JoinOptions) -> None:
    """Refuse options the kubelet would refuse later, naming the flag."""
    if options.download_url and not re.match(DOWNLOAD_URL_PATTERN, options.download_url):
        raise JoinError(
            f"--download-url {options.download_url!r} is not an http(s) URL; "
            "give the base of a mirror, e.g. http://mirror.example:8080"
        )
    if options.registry_mirror and not re.match(REGISTRY_MIRROR_PATTERN, options.registry_mirror):
        raise JoinError(
            f"--registry-mirror {options.registry_mirror!r} is not a registry address; "
            "give scheme, host and port, e.g. http://10.200.0.1:5000"
        )
    if options.node_name and not _NODE_NAME.match(options.node_name):
        raise JoinError(
            f"--node-name {options.node_name!r} is not a valid node name (lowercase letters, "
            "digits, '-' and '.', starting and ending with a letter or digit)"
        )
    for key, value in options.labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value) or len(value) > 63:
            raise JoinError(f"--node-label {key}={value!r} is not a valid label")
        if key.startswith("node-role.kubernetes.io/"):
            raise JoinError(
                f"--node-label {key}: kubelets may not set node-role labels (the NodeRestriction "
                "admission plugin refuses them); label the node with kubectl after it joined"
            )
    for taint in options.taints:
        if not _TAINT.match(taint):
            raise JoinError(
                f"--node-taint {taint!r} is not a taint; write key[=value]:Effect with Effect "
                "one of NoSchedule, PreferNoSchedule, NoExecute"
            )
    for arg in options.kubelet_args:
        if not arg.startswith("--"):
            raise JoinError(f"--kubelet-arg {arg!r}: write kubelet flags as --name=value")


def token_parts(token: str) -> tuple[str, bytes, str]:
    """(server, CA PEM, bootstrap token) of a join token; JoinError when malformed."""
    try:
        config = decode_join_token(token)
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        return (
            str(cluster["server"]),
            base64.b64decode(cluster["certificate-authority-data"]),
            str(user["token"]),
        )
    except Exception as exc:  # any decoding or shape problem means the same to the user
        raise JoinError(
            "the join token is malformed (not base64 of a gzipped kubeconfig with a server, a "
            "CA and a token); copy it again from its Secret or `mothership token create`"
        ) from exc


def artifact_urls(versions: NodeVersions, download_url: str = "") -> dict[str, str]:
    """Where each component is fetched from; a mirror keeps upstream's host and path."""
    urls = {
        name: template.format(
            kubernetes=versions.kubernetes,
            containerd=versions.containerd,
            runc=versions.runc,
            cni_plugins=versions.cni_plugins,
            k0s=versions.k0s,
        )
        for name, template in UPSTREAM.items()
        if name != "k0s" or versions.k0s
    }
    if download_url:
        base = download_url.rstrip("/")
        urls = {name: f"{base}/{url.split('://', 1)[1]}" for name, url in urls.items()}
    return urls


def kubelet_config(facts: JoinFacts) -> str:
    """The KubeletConfiguration, with the cgroup settings left to the script (@-markers)."""
    return "\n".join(
        [
            "apiVersion: kubelet.config.k8s.io/v1beta1",
            "kind: KubeletConfiguration",
            "authentication:",
            "  anonymous: {enabled: false}",
            "  webhook: {enabled: true}",
            "  x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}",
            "authorization: {mode: Webhook}",
            f"clusterDNS: [{facts.cluster_dns}]",
            f"clusterDomain: {facts.cluster_domain}",
            "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock",
            "cgroupDriver: ${CGROUP_DRIVER}",
            "failCgroupV1: false",
            "failSwapOn: false",
            "rotateCertificates: true",
            "resolvConf: ${RESOLV_CONF}",
            "",
        ]
    )


def containerd_config() -> str:
    """containerd's config; ${...} are filled in by the script from what the machine has."""
    return "\n".join(
        [
            "version = 2",
            '[plugins."io.containerd.grpc.v1.cri"]',
            f'  sandbox_image = "{PAUSE_IMAGE}"',
            "  restrict_oom_score_adj = ${RESTRICT_OOM}",
            '  [plugins."io.containerd.grpc.v1.cri".containerd]',
            '    snapshotter = "overlayfs"',
            '    default_runtime_name = "runc"',
            '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
            '      runtime_type = "io.containerd.runc.v2"',
            '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
            "        SystemdCgroup = ${SYSTEMD_CGROUP}",
            '        BinaryName = "${RUNC}"',
            '  [plugins."io.containerd.grpc.v1.cri".cni]',
            '    bin_dir = "/opt/cni/bin"',
            '    conf_dir = "/etc/cni/net.d"',
            '  [plugins."io.containerd.grpc.v1.cri".registry]',
            '    config_path = "/etc/containerd/certs.d"',
            "",
        ]
    )


def registry_hosts(mirror: str, registry: str) -> str:
    """hosts.toml: pull `registry`'s images from the mirror, falling back to the registry."""
    upstream = "https://registry-1.docker.io" if registry == "docker.io" else f"https://{registry}"
    return (
        f'server = "{upstream}"\n\n'
        f'[host."{mirror.rstrip("/")}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        + ("  skip_verify = true\n" if mirror.startswith("https://") else "")
    )


def _q(value: str) -> str:
    return shlex.quote(value)


def render_join_script(facts: JoinFacts, options: JoinOptions) -> str:
    """The whole script. Deterministic: the same inputs give the same bytes."""
    validate_options(options)
    if facts.distribution not in _BODIES:
        raise JoinError(
            f"distribution {facts.distribution!r} has no join; known: {', '.join(DISTRIBUTIONS)}"
        )
    server, token_ca, _ = token_parts(facts.token)
    if not server.startswith("https://"):
        raise JoinError(f"the join token names {server!r}, not an https:// API server")
    urls = artifact_urls(facts.versions, options.download_url)
    labels = ",".join(f"{k}={v}" for k, v in sorted(options.labels.items()))
    expires_at = str(int(facts.expires.timestamp())) if facts.expires else ""
    expires_text = (
        facts.expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if facts.expires else ""
    )
    hosts = {r: registry_hosts(options.registry_mirror, r) for r in MIRRORED_REGISTRIES}
    values = {
        "CLUSTER": facts.cluster,
        "JOIN_TOKEN": facts.token,
        "CA_SHA256": hashlib.sha256(facts.ca_pem).hexdigest(),
        "EXPIRES_AT": expires_at,
        "EXPIRES_TEXT": expires_text,
        "KUBELET_URL": urls["kubelet"],
        "CONTAINERD_URL": urls["containerd"],
        "RUNC_URL": urls["runc"],
        "CNI_URL": urls["cni-plugins"],
        "PREINSTALLED": "1" if options.preinstalled else "0",
        "REGISTRY_MIRROR": options.registry_mirror,
        "NODE_NAME": options.node_name,
        "NODE_LABELS": labels,
        "NODE_TAINTS": ",".join(options.taints),
        "KUBELET_EXTRA_ARGS": " ".join(options.kubelet_args),
        "LEAVE": LEAVE_COMMAND,
        "LEAVE_SCRIPT": _LEAVE,
    }
    if facts.distribution == "k0s":
        values["K0S_URL"] = urls["k0s"]
    else:
        values["KUBELET_CONFIG"] = kubelet_config(facts)
        values["CONTAINERD_CONFIG"] = containerd_config()
    del token_ca  # checked on the machine, against CA_SHA256, so a --token-file is checked too
    header = "\n".join(f"{k}={_q(v)}" for k, v in values.items())
    mirror_files = "\n".join(
        f"write_file /etc/containerd/certs.d/{r}/hosts.toml 0644 {_q(text)}"
        for r, text in hosts.items()
    )
    body = _COMMON + _BODIES[facts.distribution].replace(
        "@MIRROR_FILES@", mirror_files if options.registry_mirror else ":"
    )
    return (
        f"#!/bin/sh\n# Joins this machine to {facts.cluster} as a {facts.distribution} worker "
        "node (mothership).\n" + (f"{header}\n{body}")
    )


def join_command(script: str) -> str:
    """One line for a root shell: the script, compressed, decoded and run by `sh`."""
    packed = base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode()
    return f"echo {packed} | base64 -d | gunzip | sh -s --"


def leave_script() -> str:
    return _LEAVE


_COMMON = (files("mothership.render") / "node_join.sh").read_text()
_BODIES = {
    name: (files("mothership.render") / f"node_join_{name}.sh").read_text()
    for name in DISTRIBUTIONS
}
_LEAVE = (files("mothership.render") / "node_leave.sh").read_text()
