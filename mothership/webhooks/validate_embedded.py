"""Rules for what a Cluster embeds: Kubernetes objects, URLs, flags, images, schedules.

The CRD keeps these free-form or plain strings (see :mod:`mothership.api.k0smotron.v1beta2`):
they are passed through to generated workloads, and the API server only checks them when it
receives a StatefulSet or CronJob built from them, long after ``kubectl apply`` said the
Cluster was fine. These rules refuse such values at admission instead, each message naming the
field (with its index) and the fix. They read the v1beta2 form; :class:`Check` renames paths
for v1beta1 users.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, get_args

from mothership.api import quantity
from mothership.api.k0smotron.v1beta2 import PatchType
from mothership.render.patches import parse_patch
from mothership.webhooks.findings import Check, Obj, show, sub

# --- entry point --------------------------------------------------------------------------------


def validate_embedded(check: Check, spec: Obj) -> None:
    """Every rule of this module, on a v1beta2 spec."""
    kine_url(check, sub(spec, "storage", "kine").get("dataSourceURL"))
    external_address(check, spec.get("externalAddress"))
    mounts(check, spec.get("mounts"))
    manifests(check, spec.get("manifests"))
    resources(check, "spec.resources", spec.get("resources"))
    resources(check, "spec.storage.etcd.resources", sub(spec, "storage", "etcd").get("resources"))
    topology_spread_constraints(check, spec.get("topologySpreadConstraints"))
    patches(check, spec.get("patches"))
    control_plane_flags(check, spec.get("controlPlaneFlags"))
    etcd_args(check, sub(spec, "storage", "etcd").get("args"))
    tuning_flags(check, spec)
    images(check, spec)
    cron_schedule(
        check,
        "spec.storage.etcd.defragJob.schedule",
        sub(spec, "storage", "etcd", "defragJob").get("schedule"),
    )


# --- kine ---------------------------------------------------------------------------------------

# What kine's endpoint parser knows (http/https: an etcd behind kine). Anything else makes the
# control plane crash at start with an error only the pod log shows.
KINE_SCHEMES = ("sqlite", "mysql", "postgres", "postgresql", "nats", "http", "https", "unix")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def kine_url(check: Check, url: Any) -> None:
    """A kine data source names its driver by URL scheme; empty means the SQLite default."""
    path = "spec.storage.kine.dataSourceURL"
    if url is None or url == "":
        return
    match = _URL.match(url) if isinstance(url, str) else None
    if match is None:
        check.error(
            path,
            f"{show(url)} is not a URL; write <scheme>://..., e.g. "
            "postgres://user:password@db:5432/kine (schemes: " + ", ".join(KINE_SCHEMES) + ")",
        )
        return
    scheme = match["scheme"]
    if scheme in KINE_SCHEMES:
        return
    if scheme.lower() in KINE_SCHEMES:
        check.error(path, f"scheme {scheme}:// is not known to kine; write {scheme.lower()}://")
    else:
        check.error(
            path,
            f"scheme {scheme}:// is not known to kine; use one of "
            + ", ".join(f"{s}://" for s in KINE_SCHEMES),
        )


# --- addresses and networks ---------------------------------------------------------------------

_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?$")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_host(text: str) -> bool:
    """A DNS name (RFC 1123, at most 253 characters) or an IP address, nothing around it."""
    return is_ip(text) or (len(text) <= 253 and _DNS_NAME.match(text) is not None)


def external_address(check: Check, value: Any) -> None:
    """The address goes into certificates, kubeconfigs and k0s's config as a bare host."""
    if value is None or value == "":
        return
    if isinstance(value, str) and is_host(value):
        return
    check.error(
        "spec.externalAddress",
        f"{show(value)} is not a host; write a DNS name or an IP address without scheme, "
        "port or path, e.g. api.example.com or 192.0.2.10",
    )


_CIDR_EXAMPLES = {"serviceCIDR": "10.96.0.0/12", "podCIDR": "10.244.0.0/16"}


def network_cidrs(check: Check, spec: Obj, *, min_service_addresses: int = 0) -> None:
    """serviceCIDR and podCIDR are networks, read the way rendering reads them (the first of a
    comma-separated pair); the kubernetes distribution also needs room in the Service range."""
    network = sub(spec, "k0sConfig", "spec", "network")
    for key, example in _CIDR_EXAMPLES.items():
        value = network.get(key)
        if value is None:
            continue
        path = f"spec.k0sConfig.spec.network.{key}"
        first = str(value).split(",")[0].strip()
        try:
            net = ipaddress.ip_network(first, strict=True)
            if "/" not in first:  # ip_network reads a bare address as a /32; k0s does not
                raise ValueError("no prefix length")
        except ValueError as exc:
            check.error(
                path,
                f"{show(value)} is not a network in CIDR notation ({exc}); write it like {example}",
            )
            continue
        if key == "serviceCIDR" and net.num_addresses < min_service_addresses:
            check.error(
                path,
                f"{value} is too small: the DNS Service takes its 10th address and the "
                "tenant's Services need room; use a /24 or larger",
            )


# --- volumes: mounts and manifests --------------------------------------------------------------

# The volume sources of a core/v1 Volume; a Mount and a manifests entry carry exactly one.
VOLUME_SOURCES = frozenset(
    {
        "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo",
        "secret", "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume",
        "cinder", "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap",
        "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
        "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
    }
)  # fmt: skip


def _one_source(check: Check, path: str, item: Obj, example: str) -> None:
    """The API server refuses a volume with no source or several (the pod would not start)."""
    given = sorted(key for key in item if key in VOLUME_SOURCES)
    if not given:
        check.error(path, f"no volume source; add exactly one, e.g. {example}")
    elif len(given) > 1:
        check.error(path, f"has {len(given)} volume sources ({', '.join(given)}); keep exactly one")


def mounts(check: Check, items: Any) -> None:
    """Mount paths are absolute and plain (a ``..`` could climb into the data directory), each
    mount is used once (the volume name comes from the path) and has one source."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        where = f"spec.mounts[{i}]"
        if not isinstance(item, dict):
            continue
        path = item.get("path")
        if isinstance(path, str):
            if not path.startswith("/"):
                check.error(f"{where}.path", f"{show(path)} is relative; start it with /")
            elif any(part in (".", "..") for part in path.split("/")):
                check.error(
                    f"{where}.path",
                    f"{show(path)} contains . or .. segments; write the plain absolute path",
                )
            elif path.rstrip("/") in seen:
                check.error(
                    f"{where}.path",
                    f"{path} is also spec.mounts[{seen[path.rstrip('/')]}].path; mount each "
                    "path once",
                )
            seen.setdefault(path.rstrip("/"), i)
        _one_source(check, where, item, "configMap: {name: my-config}")


def manifests(check: Check, items: Any) -> None:
    """spec.manifests holds core/v1 Volumes (k0s applies the files they contain), so each
    needs a unique DNS-label name, which is also its directory, and exactly one source."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        where = f"spec.manifests[{i}]"
        if not isinstance(item, dict):
            check.error(where, "not a volume; write {name: ..., configMap: {name: ...}}")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name:
            check.error(f"{where}.name", "required; name the volume (also its directory)")
        elif len(name) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name):
            check.error(
                f"{where}.name",
                f"{show(name)} is not a DNS label; use at most 63 lowercase letters, digits "
                'and "-"',
            )
        elif name in seen:
            check.error(
                f"{where}.name", f"{name} is also spec.manifests[{seen[name]}].name; rename one"
            )
        else:
            seen[name] = i
        _one_source(check, where, item, "configMap: {name: my-manifests}")


# --- resources ----------------------------------------------------------------------------------


def _quantity(value: Any) -> Decimal | None:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    try:
        return quantity.parse(value)
    except ValueError:
        return None


def resources(check: Check, path: str, value: Any, *, skip: Iterable[str] = ()) -> None:
    """core/v1 ResourceRequirements: quantities that parse, none negative, and no request
    above its limit; the API server refuses the workload otherwise. ``skip`` names entries
    (``requests.storage``) another rule already reports."""
    if value is None:
        return
    if not isinstance(value, dict):
        check.error(path, f"{show(value)} is not an object; write {{requests: ..., limits: ...}}")
        return
    parsed: dict[str, dict[str, tuple[Decimal, Any]]] = {"requests": {}, "limits": {}}
    for section in ("requests", "limits"):
        entries = value.get(section)
        if entries is None:
            continue
        if not isinstance(entries, dict):
            check.error(
                f"{path}.{section}",
                f"{show(entries)} is not a map; write resource: quantity, e.g. cpu: 500m",
            )
            continue
        for name, raw in entries.items():
            where = f"{path}.{section}.{name}"
            amount = _quantity(raw)
            if amount is None:
                if f"{section}.{name}" not in skip:
                    check.error(
                        where,
                        f"{show(raw)} is not a quantity; write it like 500m or 2 (cpu), "
                        "512Mi or 4Gi (memory, storage)",
                    )
            elif amount < 0:
                check.error(where, f"{raw} is negative; give 0 or more")
            else:
                parsed[section][str(name)] = (amount, raw)
    for name, (request, raw_request) in parsed["requests"].items():
        amount, raw_limit = parsed["limits"].get(name, (None, None))
        if amount is not None and request > amount:
            check.error(
                f"{path}.requests.{name}",
                f"{raw_request} is more than the limit {raw_limit}; raise "
                f"{path}.limits.{name} or lower the request",
            )


# --- persistent volume claim templates -----------------------------------------------------------

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def claim_spec(check: Check, path: str, spec: Any) -> None:
    """A PersistentVolumeClaimSpec used as a claim template: access modes the API server knows,
    and resource quantities (the storage request is checked with the volume sizes)."""
    if not isinstance(spec, dict):
        return
    modes = spec.get("accessModes")
    for i, mode in enumerate(modes if isinstance(modes, list) else []):
        if mode not in ACCESS_MODES:
            check.error(
                f"{path}.accessModes[{i}]",
                f"{show(mode)} is not an access mode; use one of {', '.join(ACCESS_MODES)}",
            )
    resources(check, f"{path}.resources", spec.get("resources"), skip=("requests.storage",))


# --- topology spread constraints ----------------------------------------------------------------

WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
NODE_POLICIES = ("Honor", "Ignore")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def topology_spread_constraints(check: Check, items: Any) -> None:
    """The rules the API server applies to a Pod's topologySpreadConstraints; the control plane
    and etcd pods get these as they are, so a bad one would stop both StatefulSets."""
    seen: dict[tuple[Any, Any], int] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        where = f"spec.topologySpreadConstraints[{i}]"
        if not isinstance(item, dict):
            check.error(where, "not an object; write {maxSkew, topologyKey, whenUnsatisfiable}")
            continue
        if not _positive_int(item.get("maxSkew")):
            check.error(
                f"{where}.maxSkew",
                f"{show(item.get('maxSkew'))} is not valid; give a whole number greater than 0",
            )
        key = item.get("topologyKey")
        if not (isinstance(key, str) and key):
            check.error(
                f"{where}.topologyKey",
                "required; name a node label, e.g. topology.kubernetes.io/zone",
            )
        when = item.get("whenUnsatisfiable")
        if when not in WHEN_UNSATISFIABLE:
            check.error(
                f"{where}.whenUnsatisfiable",
                f"{show(when)} is not valid; use one of {', '.join(WHEN_UNSATISFIABLE)}",
            )
        elif (key, when) in seen:
            check.error(
                where,
                f"repeats topologyKey {key} with whenUnsatisfiable {when} of "
                f"spec.topologySpreadConstraints[{seen[(key, when)]}]; merge the two",
            )
        else:
            seen[(key, when)] = i
        if "minDomains" in item and item["minDomains"] is not None:
            if not _positive_int(item["minDomains"]):
                check.error(
                    f"{where}.minDomains",
                    f"{show(item['minDomains'])} is not valid; give a whole number greater than 0",
                )
            elif when != "DoNotSchedule":
                check.error(
                    f"{where}.minDomains",
                    "only allowed with whenUnsatisfiable DoNotSchedule; remove it or change "
                    "whenUnsatisfiable",
                )
        for policy in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            if item.get(policy) is not None and item[policy] not in NODE_POLICIES:
                check.error(
                    f"{where}.{policy}",
                    f"{show(item[policy])} is not valid; use Honor or Ignore",
                )
        label_selector(check, f"{where}.labelSelector", item.get("labelSelector"))


def label_selector(check: Check, path: str, selector: Any) -> None:
    """A metav1.LabelSelector: string labels, and expressions whose values fit the operator."""
    if selector is None:
        return
    if not isinstance(selector, dict):
        check.error(path, "not an object; write {matchLabels: {...}} or {matchExpressions: [...]}")
        return
    labels = selector.get("matchLabels")
    if labels is not None:
        if not isinstance(labels, dict):
            check.error(f"{path}.matchLabels", "not a map; write label: value pairs")
        else:
            for name, value in labels.items():
                if not isinstance(value, str):
                    check.error(
                        f"{path}.matchLabels.{name}",
                        f"{show(value)} is not a string; quote it, e.g. {show(str(value))}",
                    )
    expressions = selector.get("matchExpressions")
    if expressions is None:
        return
    if not isinstance(expressions, list):
        check.error(f"{path}.matchExpressions", "not a list; write [{key, operator, values}]")
        return
    for i, expression in enumerate(expressions):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expression, dict):
            check.error(where, "not an object; write {key, operator, values}")
            continue
        if not (isinstance(expression.get("key"), str) and expression["key"]):
            check.error(f"{where}.key", "required; name the label to match")
        operator = expression.get("operator")
        values = expression.get("values")
        if operator not in SELECTOR_OPERATORS:
            check.error(
                f"{where}.operator",
                f"{show(operator)} is not valid; use one of {', '.join(SELECTOR_OPERATORS)}",
            )
        elif operator in ("In", "NotIn"):
            if not (isinstance(values, list) and values):
                check.error(f"{where}.values", f"required with operator {operator}; list them")
            elif not all(isinstance(v, str) for v in values):
                check.error(f"{where}.values", "must all be strings; quote them")
        elif values:
            check.error(
                f"{where}.values", f"not allowed with operator {operator}; remove the values"
            )


# --- patches ------------------------------------------------------------------------------------


def patches(check: Check, items: Any) -> None:
    """The content must read as the renderer reads it (:func:`parse_patch`), or every render of
    the Cluster would fail."""
    types: tuple[str, ...] = get_args(PatchType)
    for i, item in enumerate(items if isinstance(items, list) else []):
        patch = sub(item, "patch") if isinstance(item, dict) else {}
        kind, content = patch.get("type"), patch.get("content")
        if kind not in types or not isinstance(content, str):
            continue  # the enum rule and the schema report these
        try:
            parse_patch(kind, content)
        except ValueError as exc:
            check.error(f"spec.patches[{i}].patch.content", f"{exc}; {_PATCH_FIX[kind]}")


_PATCH_FIX = {
    "json": 'write a list like [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]',
    "merge": "write an object with the fields to change, e.g. {metadata: {labels: {x: y}}}",
    "strategic": "write an object with the fields to change, e.g. {spec: {replicas: 3}}",
}


# --- flags --------------------------------------------------------------------------------------

_FLAG = re.compile(r"^--?[A-Za-z0-9][A-Za-z0-9_.-]*(?:=.*)?$", re.DOTALL)


def _flags(check: Check, path: str, items: Any, example: str) -> list[tuple[int, str]]:
    """(index, name) of each flag; an entry that is not a flag is refused unless it is the
    value of the flag before it (``--name`` then ``value``, which Go binaries accept)."""
    out: list[tuple[int, str]] = []
    takes_value = False
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, str) and _FLAG.match(item):
            name = item.split("=", 1)[0]
            out.append((i, name))
            takes_value = "=" not in item
        elif isinstance(item, str) and takes_value:
            takes_value = False
        else:
            check.error(
                f"{path}[{i}]", f"{show(item)} is not a flag; write --name=value, e.g. {example}"
            )
            takes_value = False
    return out


def control_plane_flags(check: Check, items: Any) -> None:
    """Flags are appended to the command line as they are; a stray word ends k0s's flag
    parsing (or kube-apiserver's) and the control plane does not start."""
    _flags(check, "spec.controlPlaneFlags", items, "--enable-metrics-scraping=true")


# etcd flags the operator sets (mothership/render/etcd.py), and why they cannot move: the
# member's name and URLs are its identity in the cluster, its data must stay on its volume,
# and the certificates are the operator's PKI. Other flags (compaction, quotas, ...) override
# the operator's defaults as documented.
ETCD_MANAGED_FLAGS: dict[str, str] = {
    "name": "the member's name is its pod's name, which the peers know it by",
    "data-dir": "the data lives on the member's volume",
    "wal-dir": "the write-ahead log must stay on the member's volume with the data",
    "initial-cluster": "the founding members are recorded when the cluster is created",
    "initial-cluster-state": "joining members are registered by the operator",
    "listen-client-urls": "the Service and the API server reach the member on port 2379",
    "listen-peer-urls": "the peers reach each other on port 2380",
    "advertise-client-urls": "clients reach the member by its pod DNS name",
    "initial-advertise-peer-urls": "peers reach the member by its pod DNS name",
    "trusted-ca-file": "the certificates come from the Cluster's PKI Secrets",
    "cert-file": "the certificates come from the Cluster's PKI Secrets",
    "key-file": "the certificates come from the Cluster's PKI Secrets",
    "client-cert-auth": "clients authenticate with the Cluster's certificates",
    "peer-trusted-ca-file": "the certificates come from the Cluster's PKI Secrets",
    "peer-cert-file": "the certificates come from the Cluster's PKI Secrets",
    "peer-key-file": "the certificates come from the Cluster's PKI Secrets",
    "peer-client-cert-auth": "peers authenticate with the Cluster's certificates",
}


def etcd_args(check: Check, items: Any) -> None:
    """Extra etcd flags may tune etcd, not move what the operator wires up."""
    path = "spec.storage.etcd.args"
    for i, name in _flags(check, path, items, "--quota-backend-bytes=8589934592"):
        reason = ETCD_MANAGED_FLAGS.get(name.lstrip("-"))
        if reason is not None:
            check.error(
                f"{path}[{i}]",
                f"--{name.lstrip('-')} is set by the operator ({reason}); remove it",
            )


# Flags of spec.kubernetes.tuning.<component>.flags that wire the control plane together
# (mothership/render/kubernetes_control_plane.py), and where to change the thing instead.
_KUBECONFIGS = "its credentials come from the Cluster's PKI"
_PROBES = "the kubelet's probes and the pod's ports depend on it"
TUNING_MANAGED_FLAGS: dict[str, dict[str, str]] = {
    "controllerManager": {
        "kubeconfig": _KUBECONFIGS,
        "authentication-kubeconfig": _KUBECONFIGS,
        "authorization-kubeconfig": _KUBECONFIGS,
        "client-ca-file": _KUBECONFIGS,
        "requestheader-client-ca-file": _KUBECONFIGS,
        "cluster-signing-cert-file": "nodes' certificates are signed by the Cluster's CA",
        "cluster-signing-key-file": "nodes' certificates are signed by the Cluster's CA",
        "root-ca-file": _KUBECONFIGS,
        "service-account-private-key-file": "tokens are signed with the Cluster's key",
        "bind-address": _PROBES,
        "secure-port": _PROBES,
        "cluster-cidr": "set spec.k0sConfig.spec.network.podCIDR instead",
        "service-cluster-ip-range": "set spec.k0sConfig.spec.network.serviceCIDR instead",
    },
    "scheduler": {
        "kubeconfig": _KUBECONFIGS,
        "authentication-kubeconfig": _KUBECONFIGS,
        "authorization-kubeconfig": _KUBECONFIGS,
        "bind-address": _PROBES,
        "secure-port": _PROBES,
    },
    "kine": {
        "listen-address": "kube-apiserver reaches kine on the pod's loopback",
        "endpoint": "set spec.storage.kine.dataSourceURL instead",
    },
    "konnectivityServer": {
        "uds-name": "kube-apiserver reaches the server on this socket",
        "cluster-cert": _KUBECONFIGS,
        "cluster-key": _KUBECONFIGS,
        "kubeconfig": _KUBECONFIGS,
        "agent-port": "set spec.service.konnectivityPort instead",
        "server-count": "it follows spec.replicas",
        "server-id": "each replica is told apart by its pod name",
        "mode": "kube-apiserver's egress selector speaks grpc",
        "server-port": "kube-apiserver uses the socket",
        "admin-port": _PROBES,
        "health-port": _PROBES,
    },
}


def tuning_flags(check: Check, spec: Obj) -> None:
    """Extra flags of the kubernetes distribution's components: flags, and none of the ones
    that connect the components to each other or to the Cluster's PKI."""
    tuning = sub(spec, "kubernetes", "tuning")
    for component, managed in TUNING_MANAGED_FLAGS.items():
        path = f"spec.kubernetes.tuning.{component}.flags"
        items = sub(tuning, component).get("flags")
        for i, name in _flags(check, path, items, "--kube-api-qps=50"):
            reason = managed.get(name.lstrip("-"))
            if reason is not None:
                check.error(
                    f"{path}[{i}]",
                    f"--{name.lstrip('-')} is set by the operator ({reason}); remove it",
                )
    if tuning and spec.get("distribution", "k0s") != "kubernetes":
        check.warn(
            "spec.kubernetes.tuning",
            "ignored by the k0s distribution; it tunes spec.distribution kubernetes",
        )
    for component in ("apiServer", *TUNING_MANAGED_FLAGS):
        value = sub(tuning, component).get("goMemoryLimit")
        if value is None:
            continue
        amount = _quantity(value)
        if amount is None or amount < 32 * 1024 * 1024:
            check.error(
                f"spec.kubernetes.tuning.{component}.goMemoryLimit",
                f"{show(value)} is not a memory size of at least 32Mi; write e.g. 200Mi, or "
                "leave it out (no limit)",
            )


# --- images -------------------------------------------------------------------------------------

# The Docker reference grammar (github.com/distribution/reference).
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE = re.compile(
    rf"^(?P<name>{_NAME})(?::(?P<tag>[\w][\w.-]{{0,127}}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}))?$"
)
_NAME_MAX = 255

# Image fields, by path inside the spec.
IMAGE_FIELDS = (
    ("image",),
    ("storage", "etcd", "image"),
    ("storage", "etcd", "defragJob", "image"),
    ("monitoring", "prometheusImage"),
    ("monitoring", "proxyImage"),
)


def parse_image(text: str) -> re.Match[str] | None:
    """The parts of an image reference, or None when it is not one."""
    match = _REFERENCE.match(text)
    if match is None or len(match["name"]) > _NAME_MAX:
        return None
    return match


def images(check: Check, spec: Obj) -> None:
    """A malformed reference is only refused when the pod is created (or never pulls)."""
    fields = [
        ("spec." + ".".join(keys), sub(spec, *keys[:-1]).get(keys[-1])) for keys in IMAGE_FIELDS
    ]
    for name, value in sub(spec, "kubernetes", "images").items():
        fields.append((f"spec.kubernetes.images.{name}", value))
    for path, value in fields:
        if value is None or value == "":
            continue
        match = parse_image(value) if isinstance(value, str) else None
        if match is None:
            check.error(
                path,
                f"{show(value)} is not an image reference; write [registry[:port]/]"
                "lowercase/path[:tag][@sha256:<digest>], e.g. quay.io/k0sproject/etcd:v3.5.13",
            )
        elif path == "spec.image" and (match["tag"] or match["digest"]):
            check.error(
                path,
                f"{show(value)} has a tag or digest, but the tag comes from spec.version; "
                f"write the repository only, e.g. {match['name']}",
            )


# --- cron ---------------------------------------------------------------------------------------

_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_EVERY = re.compile(r"^@every\s+(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")


def cron_problem(schedule: str) -> str | None:
    """Why ``schedule`` is not a CronJob schedule (robfig/cron's standard parser, as the API
    server uses), or None."""
    text = schedule.strip()
    if "TZ" in text:
        # The API server refuses a new CronJob whose schedule carries a time zone.
        return "the API server refuses TZ= and CRON_TZ= in a CronJob schedule; write it in UTC"
    if text.startswith("@"):
        if text in CRON_DESCRIPTORS or _EVERY.match(text):
            return None
        return f"{text.split()[0]} is not a schedule descriptor; use one of " + ", ".join(
            CRON_DESCRIPTORS
        )
    fields = text.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; write 5 (minute hour day-of-month month day-of-week)"
    for field, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field(field, low, high, names)
        if problem is not None:
            return f"{what} {show(field)}: {problem}"
    return None


def _cron_value(text: str, names: tuple[str, ...], low: int) -> int | None:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return names.index(text.lower()) + low
    return None


def _cron_field(field: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    for part in field.split(","):
        body, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return f"step {show(step)} is not a number greater than 0"
        if body in ("*", "?"):
            continue
        start, dash, end = body.partition("-")
        first = _cron_value(start, names, low)
        last = _cron_value(end, names, low) if dash else first
        if first is None or last is None:
            return f"{show(body)} is not a number" + (" or name" if names else "")
        if not (low <= first <= high and low <= last <= high):
            return f"{body} is outside {low}-{high}"
        if first > last:
            return f"range {body} runs backwards"
    return None


def cron_schedule(check: Check, path: str, value: Any) -> None:
    """The defragmentation CronJob takes the schedule as it is."""
    if value is None:
        return
    problem = cron_problem(value) if isinstance(value, str) else "not a string"
    if problem is not None:
        check.error(
            path,
            f'{show(value)} is not a cron schedule ({problem}); e.g. "0 12 * * *" (daily at '
            "12:00 UTC) or @daily",
        )
