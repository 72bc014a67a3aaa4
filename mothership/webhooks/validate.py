"""Validation rules for Clusters, JoinTokenRequests and DataStores, as pure functions.

The CRD schema already checks types, enums and required fields; these rules add what a
schema cannot see (one field depending on another, the previous object, other Clusters)
and repeat the schema's enum checks with messages that say what to write instead. Every
message starts with the field path, in the apiVersion the user wrote, and ends with the fix.
The rules for what a Cluster embeds (Kubernetes objects, URLs, flags, images, schedules) are
in :mod:`.validate_embedded`, those for DataStores and a Cluster's ``dataStoreRef`` in
:mod:`.validate_datastore`; all report through :mod:`.findings`.

Rules are written once, for v1beta2: a v1beta1 object is converted first, and paths are
translated back so a v1beta1 user reads ``spec.kineDataSourceURL``, not a field their
manifest does not have.

Errors reject the request; warnings reach the client as ``Warning:`` lines. The API server
truncates warnings beyond 256 characters, so warnings stay shorter than that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

from mothership.api import quantity
from mothership.api.k0smotron.convert import V1BETA2, convert
from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_API_PORT,
    DEFAULT_DISTRIBUTION,
    DEFAULT_KONNECTIVITY_PORT,
    DEFAULT_KUBERNETES_VERSION,
    CertificateType,
    Distribution,
    NodeRole,
    PatchType,
    PersistenceType,
    ServiceType,
    StorageType,
)
from mothership.render import names, network_addons
from mothership.webhooks import (
    validate_authentication,
    validate_datastore,
    validate_embedded,
    validate_remote_host,
)
from mothership.webhooks.defaults import DEFAULT_K0S_VERSION
from mothership.webhooks.findings import Check as _Check
from mothership.webhooks.findings import Obj
from mothership.webhooks.findings import Paths as _Paths
from mothership.webhooks.findings import Problem as Problem
from mothership.webhooks.findings import Result as Result
from mothership.webhooks.findings import show as _show
from mothership.webhooks.findings import sub as _sub

SERVICE_TYPES: tuple[str, ...] = get_args(ServiceType)
DISTRIBUTIONS: tuple[str, ...] = get_args(Distribution)
PERSISTENCE_TYPES: tuple[str, ...] = get_args(PersistenceType)
STORAGE_TYPES: tuple[str, ...] = get_args(StorageType)
PATCH_TYPES: tuple[str, ...] = get_args(PatchType)
CERTIFICATE_TYPES: tuple[str, ...] = get_args(CertificateType)
NODE_ROLES: tuple[str, ...] = get_args(NodeRole)

# Kubernetes' default --service-node-port-range; a mothership with another range is rare
# enough that rejecting early beats letting the Service fail later.
NODE_PORT_MIN, NODE_PORT_MAX = 30000, 32767

# k0s releases in which ingress support landed mid-line: an older patch release of the
# same minor cannot serve the ingress topology (k0smotron enforces the same).
INGRESS_MIN_PATCH = {(1, 34): (1, 34, 1)}

_K0S_VERSION = re.compile(
    r"^v(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)"
    r"(?:-(?P<pre>alpha|beta|rc)\.(?P<pre_n>\d+))?"
    r"(?:(?P<sep>[-+])k0s\.(?P<build>\d+))?$"
)
_GO_DURATION = re.compile(r"^[-+]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$")


# --- entry points -----------------------------------------------------------------------------


def validate(obj: Obj, old: Obj | None = None, others: Iterable[Obj] = ()) -> Result:
    """Validate a Cluster or JoinTokenRequest in either version, or a DataStore; ``old`` only
    on UPDATE.

    ``others`` are the Clusters already in the mothership (v1beta2, any namespace), for the
    node port check. Raises ValueError for a kind or apiVersion this module does not know.
    """
    kind = obj.get("kind")
    if kind == validate_datastore.KIND:
        return validate_datastore.validate_datastore(obj, old)
    if kind == "Cluster":
        return validate_cluster(obj, old, others)
    if kind == "JoinTokenRequest":
        return validate_join_token_request(obj, old)
    raise ValueError(f"no validation rules for kind {kind!r}")


def validate_cluster(
    obj: Obj, old: Obj | None = None, others: Iterable[Obj] = (), *, check_names: bool = True
) -> Result:
    """Validate a Cluster (v1beta1 or v1beta2) against every rule."""
    new, prev, paths = _prepare(obj, old)
    if _exempt(new, prev):
        return Result([], [])
    check = _Check(paths)
    spec = _spec(new)
    old_spec = _spec(prev) if prev is not None else None
    if prev is None and check_names:  # a name cannot change: an UPDATE has nothing to fix
        _generated_names(check, new)
    if spec.get("distribution") == "kubernetes":
        _kubernetes_version(check, spec, old_spec)
        _kubernetes_only(check, spec)
    else:
        _version(check, spec, old_spec)
    # The kubernetes distribution derives the DNS Service's address from the Service range.
    kubernetes = spec.get("distribution") == "kubernetes"
    validate_embedded.network_cidrs(check, spec, min_service_addresses=256 if kubernetes else 0)
    _distribution(check, spec, old_spec)
    _enums(check, spec)
    _service(check, spec)
    if _wants_others(spec, old_spec):
        _node_port_clashes(check, new, others)
    _ingress(check, spec)
    _storage(check, spec, old_spec)
    validate_remote_host.remote_host_cluster(check, spec, old_spec, _identity(new)[0])
    _persistence(check, spec)
    _volume_sizes(check, spec, old_spec)
    validate_embedded.validate_embedded(check, spec)
    validate_authentication.authentication(check, spec)
    return Result(check.errors, check.warnings)


def validate_join_token_request(obj: Obj, old: Obj | None = None) -> Result:
    """Validate a JoinTokenRequest (v1beta1 or v1beta2)."""
    new, prev, paths = _prepare(obj, old)
    if _exempt(new, prev):
        return Result([], [])
    check = _Check(paths)
    spec = _spec(new)
    role = spec.get("role")
    if role is not None:
        _enum(check, "spec.role", role, NODE_ROLES)
    _expiry(check, spec.get("expiry"))
    _names_cluster(check, spec)
    if spec.get("singleUse") is True and role == "controller":
        check.error(
            "spec.singleUse",
            "only worker tokens can be single-use (a k0s controller joins through k0s's join "
            "API, where the operator cannot see the token used); remove singleUse or use "
            "role: worker",
        )
    return Result(check.errors, check.warnings)


def validate_scale(cluster: Obj, old_replicas: Any, new_replicas: Any) -> Result:
    """Validate a change through the scale subresource (``kubectl scale``, autoscalers).

    Such a change never reaches the Cluster's own admission, so the rules about replica
    counts (NATS cannot be resized, several replicas need a shared store) are repeated here
    for the Cluster (v1beta2) being scaled.
    """
    check = _Check(_Paths(V1BETA2))
    spec = _spec(cluster)
    _nats_replicas(check, spec, old_replicas, new_replicas, via_scale=True)
    storage = _sub(spec, "storage")
    if storage.get("type") == "kine" and new_replicas != old_replicas:
        kine = _sub(storage, "kine")
        scaled = {**spec, "replicas": new_replicas}
        _shared_store(
            check,
            scaled,
            kine.get("dataSourceURL"),
            kine.get("dataSourceSecretName"),
            kine.get("dataStoreRef"),
        )
    return Result(check.errors, check.warnings)


def needs_other_clusters(obj: Obj, old: Obj | None = None) -> bool:
    """Whether :func:`validate` would look at ``others``; lets the server skip a LIST."""
    if obj.get("kind") != "Cluster":
        return False
    new, prev, _ = _prepare(obj, old)
    if _exempt(new, prev):
        return False
    return _wants_others(_spec(new), _spec(prev) if prev is not None else None)


def parse_k0s_version(text: str) -> K0sVersion | None:
    """The parts of ``vX.Y.Z[-rc.N][-k0s.N|+k0s.N]``, or None when it is not one."""
    match = _K0S_VERSION.match(text)
    if match is None:
        return None
    pre = (match["pre"], int(match["pre_n"])) if match["pre"] else None
    build = int(match["build"]) if match["build"] is not None else None
    core = (int(match["major"]), int(match["minor"]), int(match["patch"]))
    return K0sVersion(core, pre, build)


@dataclass(frozen=True)
class K0sVersion:
    core: tuple[int, int, int]
    pre: tuple[str, int] | None
    build: int | None

    def key(self) -> tuple[Any, ...]:
        """Sort key: a pre-release sorts before its release; no suffix means k0s.0."""
        ranks = {"alpha": 0, "beta": 1, "rc": 2}
        pre = (0, ranks[self.pre[0]], self.pre[1]) if self.pre else (1, 0, 0)
        return (*self.core, *pre, self.build or 0)


# --- shared plumbing --------------------------------------------------------------------------


def _prepare(obj: Obj, old: Obj | None) -> tuple[Obj, Obj | None, _Paths]:
    api_version = obj.get("apiVersion")
    new = convert(obj, V1BETA2)
    prev = convert(old, V1BETA2) if old is not None else None
    return new, prev, _Paths(str(api_version))


def _exempt(new: Obj, old: Obj | None) -> bool:
    """UPDATEs that must pass whatever the object holds.

    - An object being deleted: the controller removes its finalizer with an UPDATE, and
      refusing that would leave the object stuck forever.
    - An UPDATE that leaves the spec alone (labels, annotations, finalizers): an object
      stored before this webhook existed, or before a rule tightened, must stay editable
      in every way that does not make it worse. Kubernetes calls this ratcheting.
    """
    if old is None:
        return False
    metadata = new.get("metadata")
    if isinstance(metadata, dict) and metadata.get("deletionTimestamp"):
        return True
    return _spec(new) == _spec(old)


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _generated_names(check: _Check, obj: Obj) -> None:
    """Names are never shortened (k0smotron's names are kept), so each generated name must fit
    as it is; see :func:`names.length_limited`."""
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        return
    if "." in name:
        check.error(
            "metadata.name",
            f'{_show(name)} contains ".", which the generated Service name '
            f"{_show(names.statefulset(name))} cannot hold (a DNS-1035 label); "
            'use lowercase letters, digits and "-"',
        )
        return
    too_long = [(n, limit, what) for n, limit, what in names.length_limited(name) if len(n) > limit]
    if not too_long:
        return
    longest, limit, what = max(too_long, key=lambda t: len(t[0]) - t[1])
    check.error(
        "metadata.name",
        f"{_show(name)} ({len(name)} characters) is too long: the generated name "
        f"{_show(longest)} ({len(longest)} characters, {what}) may have at most {limit}; "
        f"use a name of at most {names.max_cluster_name_length()} characters",
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _enum(check: _Check, path: str, value: Any, allowed: tuple[str, ...]) -> bool:
    if value in allowed:
        return True
    near = [a for a in allowed if isinstance(value, str) and a.lower() == value.lower()]
    if near:
        check.error(path, f"{_show(value)} is not valid; use {near[0]} (values are case-sensitive)")
    else:
        check.error(path, f"{_show(value)} is not valid; use one of {', '.join(allowed)}")
    return False


# --- Cluster rules ----------------------------------------------------------------------------


def _version(check: _Check, spec: Obj, old_spec: Obj | None) -> None:
    value = spec.get("version")
    if value is None or value == "":
        return
    parsed = parse_k0s_version(value) if isinstance(value, str) else None
    if parsed is None:
        check.error(
            "spec.version",
            f"{_show(value)} is not a k0s version; use vX.Y.Z-k0s.N, e.g. {DEFAULT_K0S_VERSION}",
        )
        return
    if parsed.build is None:
        check.warn(
            "spec.version",
            f"{_show(value)} has no k0s suffix, so image tag {value}-k0s.0 is used; "
            f"write {value}-k0s.N to pick the build",
        )
    if old_spec is not None:
        _skew(check, value, parsed, old_spec.get("version"), "k0s")


def _kubernetes_version(check: _Check, spec: Obj, old_spec: Obj | None) -> None:
    """With distribution kubernetes, version is a plain Kubernetes version."""
    value = spec.get("version")
    if value is None or value == "":
        return
    parsed = parse_k0s_version(value) if isinstance(value, str) else None
    if parsed is None or parsed.build is not None:
        what = "a k0s version" if parsed is not None else "not a Kubernetes version"
        check.error(
            "spec.version",
            f"{_show(value)} is {what}; with spec.distribution kubernetes write a Kubernetes "
            f"version vX.Y.Z, e.g. {DEFAULT_KUBERNETES_VERSION}",
        )
        return
    if old_spec is not None and old_spec.get("distribution") == "kubernetes":
        _skew(check, value, parsed, old_spec.get("version"), "Kubernetes")


def _skew(check: _Check, value: str, parsed: K0sVersion, old_value: Any, runtime: str) -> None:
    """No downgrades, and at most one minor version per step (the upstream skew policy)."""
    old = parse_k0s_version(old_value) if isinstance(old_value, str) else None
    if old is None or old.key() == parsed.key():
        return  # nothing to compare against, or the same version spelt differently
    if parsed.key() < old.key():
        check.error(
            "spec.version",
            f"cannot downgrade from {old_value} to {value}; {runtime} does not support "
            f"downgrades, so keep {old_value} or pick a newer version",
        )
        return
    (old_major, old_minor, _), (major, minor, _) = old.core, parsed.core
    if major != old_major or minor > old_minor + 1:
        check.error(
            "spec.version",
            f"cannot upgrade from {old_value} to {value} in one step; Kubernetes upgrades "
            f"one minor version at a time, so go to v{old_major}.{old_minor + 1}.x first",
        )


def _distribution(check: _Check, spec: Obj, old_spec: Obj | None) -> None:
    value = spec.get("distribution", DEFAULT_DISTRIBUTION)
    if not _enum(check, "spec.distribution", value, DISTRIBUTIONS) or old_spec is None:
        return
    old = old_spec.get("distribution", DEFAULT_DISTRIBUTION)
    if old != value:
        check.error(
            "spec.distribution",
            f"cannot change from {old} to {value}; the two keep different state in the data "
            f"store, so keep {old} or create a new Cluster with distribution {value}",
        )


def _kubernetes_only(check: _Check, spec: Obj) -> None:
    """What the kubernetes distribution does not support, or reads differently."""
    if isinstance(spec.get("ingress"), dict):
        check.error(
            "spec.ingress",
            "not supported with spec.distribution kubernetes; remove it and expose the "
            "control plane with spec.service.type NodePort or LoadBalancer",
        )
    if spec.get("manifests"):
        check.warn(
            "spec.manifests",
            "ignored with spec.distribution kubernetes (k0s applies these); apply the "
            "manifests to the tenant with its kubeconfig instead",
        )
    network = _sub(spec, "k0sConfig", "spec", "network")
    provider = network.get("provider")
    if provider is not None and provider not in network_addons.PROVIDERS:
        why = network_addons.UNSUPPORTED_PROVIDERS.get(str(provider), "it is not a known provider")
        check.error(
            "spec.k0sConfig.spec.network.provider",
            f"{_show(provider)} cannot be deployed with spec.distribution kubernetes ({why}); "
            "use flannel (the default: leave it out) or custom (bring your own CNI)",
        )


def _enums(check: _Check, spec: Obj) -> None:
    for path, section, allowed in (
        ("spec.service.type", _sub(spec, "service"), SERVICE_TYPES),
        ("spec.persistence.type", _sub(spec, "persistence"), PERSISTENCE_TYPES),
        ("spec.storage.type", _sub(spec, "storage"), STORAGE_TYPES),
    ):
        if section.get("type") is not None:
            _enum(check, path, section["type"], allowed)
    for list_key, inner, allowed in (
        ("patches", ("patch",), PATCH_TYPES),
        ("certificateRefs", (), CERTIFICATE_TYPES),
    ):
        items = spec.get(list_key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            node = _sub(item, *inner) if inner else (item if isinstance(item, dict) else {})
            if "type" in node:
                where = ".".join((f"spec.{list_key}[{i}]", *inner, "type"))
                _enum(check, where, node["type"], allowed)


def _service_ports(spec: Obj) -> dict[str, int | None]:
    """apiPort and konnectivityPort as the controller will use them (CRD defaults if unset)."""
    service = _sub(spec, "service")
    defaults = {"apiPort": DEFAULT_API_PORT, "konnectivityPort": DEFAULT_KONNECTIVITY_PORT}
    return {
        name: _int(service[name]) if service.get(name) is not None else default
        for name, default in defaults.items()
    }


def _is_node_port(spec: Obj) -> bool:
    return _sub(spec, "service").get("type") == "NodePort"


def _service(check: _Check, spec: Obj) -> None:
    ports = _service_ports(spec)
    for name, port in ports.items():
        if port is not None and not 1 <= port <= 65535:
            check.error(f"spec.service.{name}", f"{port} is not a port; use 1-65535")
            return
    api, konnectivity = ports["apiPort"], ports["konnectivityPort"]
    if api is not None and api == konnectivity:
        check.error(
            "spec.service.konnectivityPort",
            f"{konnectivity} is also spec.service.apiPort; the Service needs two different "
            "ports, so change one of them",
        )
    if not _is_node_port(spec):
        return
    for name, port in ports.items():
        if port is not None and not NODE_PORT_MIN <= port <= NODE_PORT_MAX:
            check.error(
                f"spec.service.{name}",
                f"{port} is outside the node port range {NODE_PORT_MIN}-{NODE_PORT_MAX}; with "
                "service type NodePort it is also the node port, so pick one in that range",
            )


def _wants_others(spec: Obj, old_spec: Obj | None) -> bool:
    """Node ports are checked on CREATE and when the Service part changes.

    An unrelated edit of a Cluster whose port was taken before this webhook existed must
    not be refused for a clash the edit did not cause.
    """
    if not _is_node_port(spec):
        return False
    if old_spec is None:
        return True
    before = (_sub(old_spec, "service").get("type"), _service_ports(old_spec))
    return before != (_sub(spec, "service").get("type"), _service_ports(spec))


def _node_port_clashes(check: _Check, cluster: Obj, others: Iterable[Obj]) -> None:
    me = _identity(cluster)
    # Node ports clash only on one cluster's nodes: this mothership's, or one hosting cluster's.
    host = validate_remote_host.hosted_by(_spec(cluster))
    taken: dict[int, tuple[str, str]] = {}
    for other in others:
        other_spec = _spec(other)
        if _identity(other) == me or not _is_node_port(other_spec):
            continue
        if validate_remote_host.hosted_by(other_spec) != host:
            continue
        namespace, name = _identity(other)
        for field, port in _service_ports(other_spec).items():
            if port is not None:
                taken.setdefault(port, (f"{namespace}/{name}", field))
    for field, port in _service_ports(_spec(cluster)).items():
        if port is not None and port in taken:
            owner, their_field = taken[port]
            check.error(
                f"spec.service.{field}",
                f"node port {port} is already used by Cluster {owner} (its "
                f"spec.service.{their_field}); pick a free port in "
                f"{NODE_PORT_MIN}-{NODE_PORT_MAX}",
            )


def _identity(obj: Obj) -> tuple[str, str]:
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _ingress(check: _Check, spec: Obj) -> None:
    ingress = spec.get("ingress")
    if not isinstance(ingress, dict):
        return
    for field, target in (("apiHost", "the API server"), ("konnectivityHost", "konnectivity")):
        if not ingress.get(field):
            check.error(
                f"spec.ingress.{field}",
                f"required when spec.ingress is set; give the host name the ingress routes "
                f"to {target}",
            )
    api_host, konnectivity_host = ingress.get("apiHost"), ingress.get("konnectivityHost")
    if api_host and api_host == konnectivity_host:
        check.error(
            "spec.ingress.konnectivityHost",
            f"{_show(konnectivity_host)} is also spec.ingress.apiHost; the ingress routes by "
            "host name (TLS passthrough on SNI), so give konnectivity a host of its own",
        )
    version = spec.get("version")
    parsed = parse_k0s_version(version) if isinstance(version, str) else None
    if parsed is not None:
        minimum = INGRESS_MIN_PATCH.get(parsed.core[:2])
        if minimum is not None and parsed.core < minimum:
            lowest = "v{}.{}.{}-k0s.0".format(*minimum)
            check.error(
                "spec.version",
                f"{version} cannot serve spec.ingress; ingress needs {lowest} or newer on "
                f"the v{minimum[0]}.{minimum[1]} line, so upgrade or remove spec.ingress",
            )
    if ingress.get("deploy", True) is not False and not ingress.get("annotations"):
        check.warn(
            "spec.ingress.annotations",
            "none set; make sure the ingress controller passes TLS through, e.g. "
            'nginx.ingress.kubernetes.io/ssl-passthrough: "true"',
        )


def _storage(check: _Check, spec: Obj, old_spec: Obj | None) -> None:
    storage = _sub(spec, "storage")
    kine = _sub(storage, "kine")
    storage_type = storage.get("type", "etcd")
    url, secret = kine.get("dataSourceURL"), kine.get("dataSourceSecretName")
    if storage_type == "kine":
        if url and secret:
            check.error(
                "spec.storage.kine.dataSourceSecretName",
                f"cannot be combined with {check.p('spec.storage.kine.dataSourceURL')}; keep "
                "one of them (the Secret keeps database credentials out of the Cluster)",
            )
        _shared_store(check, spec, url, secret, kine.get("dataStoreRef"))
    elif url or secret:
        check.warn(
            "spec.storage.kine",
            f"ignored because spec.storage.type is {storage_type}; set the type to kine to "
            "use this data source",
        )
    validate_datastore.data_store_ref(check, spec, old_spec)
    validate_datastore.etcd_data_store_ref(check, spec, old_spec)
    if old_spec is None:
        return
    _nats_replicas(check, spec, old_spec.get("replicas", 1), spec.get("replicas", 1))
    old_type = _sub(old_spec, "storage").get("type", "etcd")
    if old_type != storage_type and storage_type in STORAGE_TYPES:
        # v1beta1 has no storage type: setting or clearing a kine source switches it.
        old_kine = _sub(old_spec, "storage", "kine")
        by_secret = (secret or old_kine.get("dataSourceSecretName")) and not (
            url or old_kine.get("dataSourceURL")
        )
        path = "spec.storage.type"
        if check.p.v1beta1:
            path = f"spec.storage.kine.{'dataSourceSecretName' if by_secret else 'dataSourceURL'}"
        check.warn(
            path,
            f"changed from {old_type} to {storage_type}: the control plane starts on the new, "
            "empty data store; existing cluster state is not migrated",
        )


def _shared_store(check: _Check, spec: Obj, url: Any, secret: Any, ref: Any = None) -> None:
    """More than one control plane pod needs one data store they all reach.

    With storage type kine and no data source k0s falls back to a SQLite file inside each
    pod, and a sqlite:// URL names such a file too: every replica would then run its own
    cluster state. k0smotron accepts both silently; here they are errors. A DataStore is a
    database server every replica reaches.
    """
    replicas = _int(spec.get("replicas", 1))
    if replicas is None or replicas <= 1 or isinstance(ref, dict):
        return
    if not url and not secret:
        sources = [
            check.p("spec.storage.kine.dataSourceURL"),
            check.p("spec.storage.kine.dataSourceSecretName"),
        ]
        if not check.p.v1beta1:  # v1beta1 cannot name a DataStore
            sources.append("spec.storage.kine.dataStoreRef")
        check.error(
            "spec.replicas",
            f"{replicas} replicas need a data store they share, but spec.storage.type is kine "
            "with no data source (each pod would keep its own SQLite file); set "
            f"{', '.join(sources[:-1])} or {sources[-1]}, or use storage type etcd",
        )
    elif isinstance(url, str) and not secret and url.lower().startswith("sqlite:"):
        check.error(
            "spec.replicas",
            f"{replicas} replicas need a data store they share, but "
            f"{check.p('spec.storage.kine.dataSourceURL')} is a SQLite file local to each pod; "
            "use a database server (postgres://, mysql://, nats://) or storage type etcd",
        )


def _nats_replicas(
    check: _Check, spec: Obj, old_replicas: Any, new_replicas: Any, *, via_scale: bool = False
) -> None:
    if _sub(spec, "storage").get("type") != "nats" or old_replicas == new_replicas:
        return
    how = " (also through kubectl scale)" if via_scale else ""
    check.error(
        "spec.replicas",
        f"cannot change from {old_replicas} to {new_replicas}{how} with spec.storage.type nats; "
        "the embedded NATS cluster cannot be resized, so back up the data and recreate the "
        "Cluster with the new replica count",
    )


def _persistence(check: _Check, spec: Obj) -> None:
    persistence = _sub(spec, "persistence")
    kind = persistence.get("type")
    if kind == "pvc" and not isinstance(persistence.get("persistentVolumeClaim"), dict):
        check.error(
            "spec.persistence.persistentVolumeClaim",
            "required when spec.persistence.type is pvc; give a claim template, e.g. "
            "{spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}}}",
        )
    elif kind == "pvc":
        modes = (persistence["persistentVolumeClaim"].get("spec") or {}).get("accessModes")
        if not (isinstance(modes, list) and modes):
            # The StatefulSet's claim template needs one; without it the Cluster would be
            # accepted and then never get its StatefulSet.
            check.error(
                "spec.persistence.persistentVolumeClaim.spec.accessModes",
                "give at least one access mode, e.g. [ReadWriteOnce]",
            )
        validate_embedded.claim_spec(
            check,
            "spec.persistence.persistentVolumeClaim.spec",
            persistence["persistentVolumeClaim"].get("spec"),
        )
    if kind == "hostPath":
        host_path = persistence.get("hostPath")
        if not host_path:
            check.error(
                "spec.persistence.hostPath",
                "required when spec.persistence.type is hostPath; give an absolute directory "
                "on the node, e.g. /var/lib/mothership/<cluster>",
            )
        elif not (isinstance(host_path, str) and host_path.startswith("/")):
            check.error(
                "spec.persistence.hostPath",
                f"{_show(host_path)} is not an absolute path; start it with /",
            )


# Sizes a volume is requested at, by field path; the claims behind them can only grow.
_VOLUME_SIZES = (
    ("spec.persistence.persistentVolumeClaim.spec.resources.requests.storage", "pvc"),
    ("spec.storage.etcd.persistence.size", "etcd"),
    ("spec.storage.nats.persistence.size", "nats"),
)


def _volume_sizes(check: _Check, spec: Obj, old_spec: Obj | None) -> None:
    """Volumes grow (the controller expands the claims) but never shrink.

    Kubernetes cannot shrink a PersistentVolumeClaim; the StatefulSet's claim template
    would then ask for less than its claims hold, so the request is refused here.
    """
    for path, applies_to in _VOLUME_SIZES:
        keys = path.split(".")[1:]
        new = _at(spec, keys)
        if new is None or not _uses_volume(spec, applies_to):
            continue
        try:
            quantity.parse(new)
        except ValueError:
            check.error(path, f"{_show(new)} is not a size; write it like 10Gi or 500Mi")
            continue
        if old_spec is None or not _uses_volume(old_spec, applies_to):
            continue
        old = _at(old_spec, keys)
        try:
            smaller = old is not None and quantity.compare(new, old) < 0
        except ValueError:
            continue
        if smaller:
            check.error(
                path,
                f"cannot shrink from {old} to {new}: volumes only grow; keep {old} or "
                "ask for more (to start smaller, recreate the Cluster on new volumes)",
            )


def _at(obj: Obj, keys: list[str]) -> Any:
    node: Any = obj
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str | int | float) and not isinstance(node, bool) else None


def _uses_volume(spec: Obj, applies_to: str) -> bool:
    if applies_to == "pvc":
        return _sub(spec, "persistence").get("type") == "pvc"
    return _sub(spec, "storage").get("type", "etcd") == applies_to


# --- JoinTokenRequest rules -------------------------------------------------------------------


def _expiry(check: _Check, expiry: Any) -> None:
    if expiry is None:
        return
    if not (isinstance(expiry, str) and _GO_DURATION.match(expiry)):
        check.error(
            "spec.expiry",
            f"{_show(expiry)} is not a duration; use Go syntax such as 1.5h, 2h45m or 300ms "
            "(0s: the token never expires)",
        )
    elif expiry.startswith("-") and re.search(r"[1-9]", expiry):
        check.error(
            "spec.expiry",
            f"{_show(expiry)} is negative; use a positive duration, or 0s for a token that "
            "never expires",
        )


def _names_cluster(check: _Check, spec: Obj) -> None:
    if isinstance(spec.get("clusterName"), str) and spec["clusterName"]:
        return
    ref = spec.get("clusterRef")
    if isinstance(ref, dict):
        if isinstance(ref.get("name"), str) and ref["name"]:
            return
        check.error("spec.clusterRef.name", "required; name the Cluster the token is for")
        return
    check.error("spec.clusterName", "required; name the Cluster the token is for")
