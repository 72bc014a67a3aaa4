"""Cluster DNS for the real-node local mothership: CoreDNS behind `kube-dns` at a fixed IP.

Pods of the mothership find each other by Service and pod names: the managed etcd
members of a tenant dial their peers as `<pod>.<headless service>`, the control plane
dials etcd by its Service name. So `dev up` runs CoreDNS (our build, see
coredns_main.py) as a kube-system Deployment behind the Service `kube-dns` at
`MothershipConfig.dns_ip`, and the kubelet hands that address to every pod.

Names outside the cluster are forwarded to the host's resolvers when they answer from
here; loopback ones (a systemd-resolved stub) are unreachable from a pod and skipped.
With none usable, CoreDNS serves only the cluster's zones and other names fail at once
(REFUSED) instead of hanging, so pods that only need cluster names still work.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import struct
import time
from pathlib import Path
from typing import Any

from mothership.testenv import paths
from mothership.testenv.config import MothershipConfig
from mothership.testenv.images import Content
from mothership.testenv.pins import COREDNS_VERSION

CLUSTER_DOMAIN = "cluster.local"
NAMESPACE = "kube-system"
NAME = "coredns"
SERVICE = "kube-dns"
LABELS: dict[str, Any] = {"k8s-app": "kube-dns"}
IMAGE = f"localhost/mothership/coredns:{COREDNS_VERSION}"
ENTRYPOINT = ("/coredns",)
CONFIG_DIR = "/etc/coredns"
HEALTH_PORT = 8080
READY_PORT = 8181
FIELD_MANAGER = "mothership-dev"
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
# Where systemd-resolved lists the real upstreams when /etc/resolv.conf names its stub.
RESOLVED_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")
# What answers for cluster names tell clients to cache them for: short, since pods move.
CLUSTER_TTL = 5


def image_files() -> dict[str, Content]:
    return {ENTRYPOINT[0]: paths.addon("coredns")}


# -- upstream resolvers -------------------------------------------------------------------


def nameservers(resolv_conf: Path) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, loopback ones left out (a pod's
    loopback is its own, so a host stub resolver is unreachable from it)."""
    try:
        text = resolv_conf.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(parts[1].split("%", 1)[0])
            except ValueError:
                continue
            if not addr.is_loopback and not addr.is_unspecified and addr.version == 4:
                out.append(str(addr))
    return out


def host_nameservers() -> list[str]:
    return nameservers(HOST_RESOLV_CONF) or nameservers(RESOLVED_RESOLV_CONF)


def usable_upstreams(timeout: float = 2.0) -> list[str]:
    """The host's resolvers that answer a query from here (any answer, even NXDOMAIN)."""
    out = []
    for server in host_nameservers():
        try:
            query(server, ".", qtype=QTYPE_NS, timeout=timeout)
        except OSError:
            continue
        out.append(server)
    return out


# -- a minimal DNS client (no dependency for two kinds of query) ---------------------------

QTYPE_A = 1
QTYPE_NS = 2
RCODE_NOERROR = 0


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        length = msg[pos]
        if length & 0xC0 == 0xC0:  # compression pointer ends the name
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def query(
    server: str, name: str, *, qtype: int = QTYPE_A, port: int = 53, timeout: float = 2.0
) -> tuple[int, list[str]]:
    """Ask `server` one question over UDP: (rcode, IPv4 addresses of A answers).

    Raises OSError when nothing (or something that is not the answer) comes back in time.
    """
    ident = secrets.randbits(16)
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    packet += _encode_name(name) + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, port))
        deadline = time.monotonic() + timeout
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            msg, _ = sock.recvfrom(4096)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == ident:
                break
    _, flags, qdcount, ancount, _, _ = struct.unpack(">HHHHHH", msg[:12])
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(msg, pos) + 4
    addresses = []
    for _ in range(ancount):
        pos = _skip_name(msg, pos)
        rtype, _, _, rdlength = struct.unpack(">HHIH", msg[pos : pos + 10])
        pos += 10
        if rtype == QTYPE_A and rdlength == 4:
            addresses.append(socket.inet_ntoa(msg[pos : pos + 4]))
        pos += rdlength
    return flags & 0x000F, addresses


# -- the objects ---------------------------------------------------------------------------


def corefile(upstreams: list[str], domain: str = CLUSTER_DOMAIN) -> str:
    """CoreDNS configuration: the cluster's zones from the API, the rest upstream (if any).

    Cluster names are answered from the kubernetes plugin's watch, never from the cache:
    pods here come and go all the time (an etcd member is back within seconds with a new
    IP), and a cached old address or a cached NXDOMAIN from just before a pod's endpoint
    appeared would stall peers for the cache's lifetime.
    """
    zones = " ".join((domain, *REVERSE_ZONES))
    common = [
        "    errors",
        "    health {",
        "        lameduck 5s",
        "    }",
        "    ready",
    ]
    if upstreams:
        head = ".:53 {"
        kubernetes = [
            f"    kubernetes {zones} {{",
            f"        fallthrough {' '.join(REVERSE_ZONES)}",
            f"        ttl {CLUSTER_TTL}",
            "    }",
            f"    forward . {' '.join(upstreams)}",
            "    loop",
            "    cache 30 {",
            f"        disable success {domain}",
            f"        disable denial {domain}",
            "    }",
        ]
    else:
        # Only the cluster's zones are served: other names get REFUSED at once.
        head = " ".join(f"{z}:53" for z in zones.split()) + " {"
        kubernetes = [f"    kubernetes {zones} {{", f"        ttl {CLUSTER_TTL}", "    }"]
    tail = ["    reload", "    loadbalance", "}"]
    return "\n".join([head, *common, *kubernetes, *tail]) + "\n"


def _meta(name: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**LABELS, "app.kubernetes.io/managed-by": "mothership-dev"},
    }
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def objects(cfg: MothershipConfig, upstreams: list[str]) -> list[dict[str, Any]]:
    """RBAC, configuration, Deployment and the kube-dns Service at the fixed IP."""
    role = f"mothership:{NAME}"
    container: dict[str, Any] = {
        "name": NAME,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", f"{CONFIG_DIR}/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "40Mi"}, "limits": {"memory": "170Mi"}},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": HEALTH_PORT},
            "initialDelaySeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 5,
        },
        # Ready once the kubernetes plugin has synced; probed often so dev up waits little.
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": READY_PORT},
            "periodSeconds": 2,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": NAME,
        "priorityClassName": "system-cluster-critical",
        # CoreDNS itself resolves through the host (its upstreams are explicit anyway).
        "dnsPolicy": "Default",
        "securityContext": {
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "runAsNonRoot": True,
            # Port 53 without root or capabilities: a per-pod (network namespace) sysctl.
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "53"}],
        },
        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "containers": [container],
        "volumes": [
            {
                "name": "config",
                "configMap": {"name": NAME, "items": [{"key": "Corefile", "path": "Corefile"}]},
            }
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(role, namespaced=False),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(role, namespaced=False),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(NAME),
            "data": {"Corefile": corefile(upstreams)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(NAME),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": dict(LABELS)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod_spec},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                **_meta(SERVICE),
                "labels": {**_meta(SERVICE)["labels"], "kubernetes.io/name": "CoreDNS"},
            },
            "spec": {
                "clusterIP": cfg.dns_ip,
                "selector": dict(LABELS),
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
                ],
            },
        },
    ]


# -- apply and wait --------------------------------------------------------------------------


def apply(cfg: MothershipConfig, upstreams: list[str]) -> None:
    from lightkube.codecs import from_dict

    from mothership.testenv import kube

    client = kube.client(cfg.kubeconfig, field_manager=FIELD_MANAGER)
    for obj in objects(cfg, upstreams):
        client.apply(from_dict(obj), force=True)


def answers(cfg: MothershipConfig, timeout: float = 1.0) -> bool:
    """The kube-dns Service IP answers the API's own Service name with its cluster IP,
    from the host: kube-proxy's rules, the CoreDNS pod and its API watch all work."""
    name = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
    try:
        rcode, addresses = query(cfg.dns_ip, name, timeout=timeout)
    except OSError:
        return False
    return rcode == RCODE_NOERROR and cfg.service_ip in addresses


def diagnose(cfg: MothershipConfig, lines: int = 30) -> str:
    """What the CoreDNS pod is doing (phase, waiting reasons) and the tail of its log."""
    from lightkube.resources.core_v1 import Pod

    from mothership.testenv import kube

    client = kube.client(cfg.kubeconfig)
    out = []
    try:
        pods = list(client.list(Pod, namespace=NAMESPACE, labels=LABELS))
    except Exception as exc:
        return f"(cannot list the CoreDNS pods: {exc})"
    if not pods:
        return "no CoreDNS pod exists (see the kube-controller-manager log)"
    for pod in pods:
        name = (pod.metadata.name if pod.metadata else None) or "?"
        status = pod.status
        states = []
        for cs in (status.containerStatuses if status else None) or []:
            waiting = cs.state.waiting if cs.state else None
            if waiting:
                states.append(f"{cs.name} waiting: {waiting.reason} {waiting.message or ''}")
            states.append(f"{cs.name} ready={cs.ready} restarts={cs.restartCount}")
        conditions = [
            f"{c.type}={c.status}{' (' + c.message + ')' if c.message else ''}"
            for c in ((status.conditions if status else None) or [])
        ]
        out.append(
            f"pod {NAMESPACE}/{name}: phase {status.phase if status else '?'}; "
            + "; ".join(conditions + states)
        )
        try:
            log = list(client.log(name, namespace=NAMESPACE, tail_lines=lines))
            out.append(f"last lines of its log:\n{''.join(log).rstrip()}")
        except Exception as exc:
            out.append(f"(no log: {exc})")
    return "\n".join(out)


def upstream_note(upstreams: list[str]) -> str:
    if upstreams:
        return f"other names forwarded to {', '.join(upstreams)}"
    return "no usable host resolver: only cluster names are served"


def environment_upstreams() -> list[str] | None:
    """MOTHERSHIP_DNS_UPSTREAMS (comma-separated; empty: none) overrides the detection."""
    value = os.environ.get("MOTHERSHIP_DNS_UPSTREAMS")
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]
