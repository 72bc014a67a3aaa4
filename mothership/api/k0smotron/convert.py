"""Translate k0smotron.io objects between v1beta1 and v1beta2, for the conversion webhook.

The webhook hands over plain JSON objects and must hand plain objects back, so this works on
dicts and never through the models: a model would apply defaults and drop unknown keys, and
the API server must get back exactly what it stored.

Conversion has to be lossless in both directions, because the API server converts on every
read and write through the non-storage version: a v1beta1 client doing get-modify-put on a
v1beta2 object must not wipe the fields v1beta1 cannot express. Each direction is therefore a
plain field mapping followed by a check: map the result back, compare with the input, and
record every difference in the ``k0smotron.io/conversion-data`` annotation. The next
conversion restores a recorded value only if the field still holds what the mapping produced
when it was recorded, so an edit a client made through the other version wins over the
restore.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from typing import Any

from mothership.api.k0smotron.v1beta2 import CLUSTER_REF_NAMESPACE_ANNOTATION

V1BETA1 = "k0smotron.io/v1beta1"
V1BETA2 = "k0smotron.io/v1beta2"
VERSIONS = (V1BETA1, V1BETA2)

CONVERSION_DATA_ANNOTATION = "k0smotron.io/conversion-data"
"""Annotation holding, as JSON, what the other version had and this one cannot hold."""

Obj = dict[str, Any]
Mapper = Callable[[Obj], Obj]


class _Absent:
    """Marks a key that is not there, as distinct from one holding null."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def convert(obj: Obj, to_version: str) -> Obj:
    """Return ``obj`` (a Cluster or JoinTokenRequest) as ``to_version``; ``obj`` is not changed.

    ``to_version`` is ``k0smotron.io/v1beta1``/``v1beta2`` or just the version part. Raises
    ValueError for an apiVersion or kind this module does not know.
    """
    target = _full_api_version(to_version)
    source = obj.get("apiVersion")
    if source not in VERSIONS:
        raise ValueError(f"cannot convert from unknown apiVersion {source!r}")
    kind = obj.get("kind")
    if kind not in _MAPPERS:
        raise ValueError(f"cannot convert unknown kind {kind!r} ({source})")
    result = copy.deepcopy(obj)
    if source == target:
        return result
    to_v2, to_v1 = _MAPPERS[kind]
    if target == V1BETA2:
        return _translate(result, forward=to_v2, backward=to_v1)
    return _translate(result, forward=to_v1, backward=to_v2)


def _full_api_version(version: str) -> str:
    for candidate in (version, f"k0smotron.io/{version}"):
        if candidate in VERSIONS:
            return candidate
    raise ValueError(f"cannot convert to unknown apiVersion {version!r}")


# --- the lossless envelope --------------------------------------------------------------------


def _translate(source: Obj, forward: Mapper, backward: Mapper) -> Obj:
    restore = _take_stash(source)
    result = copy.deepcopy(forward(source))
    if restore:
        _restore(result, restore)
    lost: list[Obj] = []
    _diff(source, backward(copy.deepcopy(result)), [], lost)
    if lost:
        _put_stash(result, lost)
    return result


def _diff(want: Obj, have: Obj, path: list[str], out: list[Obj]) -> None:
    """Record where ``have`` differs from ``want``, descending only through objects."""
    for key in [*want, *(k for k in have if k not in want)]:
        if not path and key == "apiVersion":
            continue  # differs by design
        wanted, got = want.get(key, _ABSENT), have.get(key, _ABSENT)
        if isinstance(wanted, dict) and isinstance(got, dict):
            _diff(wanted, got, [*path, key], out)
        elif not _same(wanted, got):
            entry: Obj = {"path": [*path, key]}
            if wanted is not _ABSENT:
                entry["value"] = wanted
            if got is not _ABSENT:
                entry["derived"] = got
            out.append(entry)


def _same(a: Any, b: Any) -> bool:
    # Python's == says True == 1 and 1 == 1.0; JSON round trips must not blur those.
    if a is _ABSENT or b is _ABSENT:
        return a is b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _restore(obj: Obj, entries: Iterable[Any]) -> None:
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, list) or not path:
            continue
        if not _same(_lookup(obj, path), entry.get("derived", _ABSENT)):
            continue  # changed through the other version since: the change wins
        if "value" in entry:
            _assign(obj, path, copy.deepcopy(entry["value"]))
        else:
            _remove(obj, path)


def _lookup(obj: Obj, path: list[str]) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def _assign(obj: Obj, path: list[str], value: Any) -> None:
    node = obj
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return
        node = child
    node[path[-1]] = value


def _remove(obj: Obj, path: list[str]) -> None:
    parent = _lookup(obj, path[:-1]) if len(path) > 1 else obj
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _put_stash(obj: Obj, entries: list[Obj]) -> None:
    payload: Obj = {"restore": entries}
    metadata = obj.get("metadata", _ABSENT)
    if metadata is _ABSENT:
        metadata = obj["metadata"] = {}
        payload["metadata"] = "absent"
    elif not isinstance(metadata, dict):
        raise ValueError("cannot convert an object whose metadata is not an object")
    annotations = metadata.get("annotations", _ABSENT)
    if annotations is _ABSENT or annotations is None:
        payload["annotations"] = "absent" if annotations is _ABSENT else "null"
        annotations = metadata["annotations"] = {}
    elif not isinstance(annotations, dict):
        raise ValueError("cannot convert an object whose annotations are not an object")
    annotations[CONVERSION_DATA_ANNOTATION] = json.dumps(
        payload, sort_keys=True, separators=(",", ":")
    )


def _take_stash(obj: Obj) -> list[Any] | None:
    """Remove our annotation from ``obj`` (undoing what adding it created); return its entries."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict) or CONVERSION_DATA_ANNOTATION not in annotations:
        return None
    assert isinstance(metadata, dict)
    raw = annotations.pop(CONVERSION_DATA_ANNOTATION)
    try:
        payload = json.loads(raw)
        entries = payload["restore"]
    except (TypeError, ValueError, KeyError, IndexError):
        return None  # not ours or mangled: drop it rather than fail every read of the object
    if not annotations and payload.get("annotations") in ("absent", "null"):
        if payload["annotations"] == "absent":
            del metadata["annotations"]
        else:
            metadata["annotations"] = None
    if not metadata and payload.get("metadata") == "absent":
        del obj["metadata"]
    return entries if isinstance(entries, list) else None


# --- Cluster ----------------------------------------------------------------------------------

_V1_ONLY_SPEC = frozenset(
    {
        "kubeconfigRef",
        "controllerPlaneFlags",
        "etcd",
        "kineDataSourceURL",
        "kineDataSourceSecretName",
    }
)
_V2_ONLY_SPEC = frozenset(
    {"remoteHostCluster", "controlPlaneFlags", "storage", "patches", "distribution", "kubernetes"}
)
# v1beta2 fields v1beta1 has no counterpart for: left out going down, kept by the stash.
_V2_UNMAPPED_SPEC = frozenset({"patches", "distribution", "kubernetes"})
_CLUSTER_LEGACY_STATUS = ("reconciliationStatus", "ready")
_JTR_LEGACY_STATUS = ("reconciliationStatus", "clusterUID")


def _map_object(obj: Obj, api_version: str, spec: Mapper, status: Mapper) -> Obj:
    out: Obj = {"apiVersion": api_version}
    for key, value in obj.items():
        if key == "spec" and isinstance(value, dict):
            out[key] = spec(value)
        elif key == "status" and isinstance(value, dict):
            out[key] = status(value)
        elif key != "apiVersion":
            out[key] = value
    return out


def _cluster_to_v2(obj: Obj) -> Obj:
    return _map_object(obj, V1BETA2, _cluster_spec_to_v2, _cluster_status_to_v2)


def _cluster_to_v1(obj: Obj) -> Obj:
    return _map_object(obj, V1BETA1, _cluster_spec_to_v1, _cluster_status_to_v1)


def _cluster_spec_to_v2(spec: Obj) -> Obj:
    out: Obj = {}
    storage: Obj = {}
    for key, value in spec.items():
        if key == "kubeconfigRef":
            out["remoteHostCluster"] = {"kubeconfigRef": value}
        elif key == "controllerPlaneFlags":
            out["controlPlaneFlags"] = value
        elif key == "etcd":
            storage["etcd"] = value
        elif key == "kineDataSourceURL":
            storage.setdefault("kine", {})["dataSourceURL"] = value
        elif key == "kineDataSourceSecretName":
            storage.setdefault("kine", {})["dataSourceSecretName"] = value
        elif key not in _V2_ONLY_SPEC:
            out[key] = value
    if storage:
        # v1beta1 had no storage type: a non-empty kine source switched etcd off.
        uses_kine = any(storage.get("kine", {}).values())
        out["storage"] = {"type": "kine" if uses_kine else "etcd", **storage}
    return out


def _cluster_spec_to_v1(spec: Obj) -> Obj:
    out: Obj = {}
    for key, value in spec.items():
        if key == "remoteHostCluster":
            if isinstance(value, dict) and "kubeconfigRef" in value:
                out["kubeconfigRef"] = value["kubeconfigRef"]
        elif key == "controlPlaneFlags":
            out["controllerPlaneFlags"] = value
        elif key == "storage":
            if isinstance(value, dict):
                out.update(_storage_to_v1(value))
        elif key not in _V1_ONLY_SPEC and key not in _V2_UNMAPPED_SPEC:
            out[key] = value
    return out


def _storage_to_v1(storage: Obj) -> Obj:
    out: Obj = {}
    if "etcd" in storage:
        out["etcd"] = storage["etcd"]
    kine = storage.get("kine")
    # A kine source left behind while another type is selected must not switch v1beta1
    # readers to kine; the envelope keeps it for the way back.
    if storage.get("type") == "kine" and isinstance(kine, dict):
        if "dataSourceURL" in kine:
            out["kineDataSourceURL"] = kine["dataSourceURL"]
        if "dataSourceSecretName" in kine:
            out["kineDataSourceSecretName"] = kine["dataSourceSecretName"]
    return out


def _cluster_status_to_v2(status: Obj) -> Obj:
    return _status_to_v2(status, _CLUSTER_LEGACY_STATUS)


def _cluster_status_to_v1(status: Obj) -> Obj:
    return _status_to_v1(status, ("replicas", "selector"), _CLUSTER_LEGACY_STATUS)


def _status_to_v2(status: Obj, legacy_keys: tuple[str, ...]) -> Obj:
    """v1beta1-only status fields move under ``deprecated.v1beta1``, as k0smotron keeps them."""
    out: Obj = {}
    legacy: Obj = {}
    for key, value in status.items():
        if key in legacy_keys:
            legacy[key] = value
        elif key != "deprecated":
            out[key] = value
    if legacy:
        out["deprecated"] = {"v1beta1": legacy}
    return out


def _status_to_v1(status: Obj, shared_keys: tuple[str, ...], legacy_keys: tuple[str, ...]) -> Obj:
    out: Obj = {}
    for key, value in status.items():
        if key == "deprecated":
            legacy = value.get("v1beta1") if isinstance(value, dict) else None
            if isinstance(legacy, dict):
                out.update((k, legacy[k]) for k in legacy_keys if k in legacy)
        elif key in shared_keys:
            out[key] = value
    return out


# --- JoinTokenRequest -------------------------------------------------------------------------
# v1beta2 names the Cluster by clusterName in the request's own namespace. A v1beta1
# clusterRef namespace pointing elsewhere goes to k0smotron's cluster-ref-namespace
# annotation, which controllers (theirs and ours) read to find the Cluster, so it is a
# mapping and not merely a stash. Going down, v1beta1 requires a namespace, so the request's
# own namespace is spelled out.


def _jtr_to_v2(obj: Obj) -> Obj:
    out = _map_object(obj, V1BETA2, lambda spec: spec, _jtr_status_to_v2)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return out
    ref = spec.get("clusterRef")
    ref = ref if isinstance(ref, dict) else {}
    new_spec: Obj = {"clusterName": ref["name"]} if "name" in ref else {}
    new_spec.update((k, v) for k, v in spec.items() if k not in ("clusterRef", "clusterName"))
    out["spec"] = new_spec
    metadata = out.get("metadata", {})
    if isinstance(metadata, dict) and ref.get("namespace") not in (
        None,
        "",
        metadata.get("namespace"),
    ):
        annotations = metadata.get("annotations")
        annotations = dict(annotations) if isinstance(annotations, dict) else {}
        annotations[CLUSTER_REF_NAMESPACE_ANNOTATION] = ref["namespace"]
        out["metadata"] = {**metadata, "annotations": annotations}
    return out


def _jtr_to_v1(obj: Obj) -> Obj:
    out = _map_object(obj, V1BETA1, lambda spec: spec, _jtr_status_to_v1)
    namespace = _ABSENT
    metadata = out.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if isinstance(annotations, dict) and CLUSTER_REF_NAMESPACE_ANNOTATION in annotations:
        assert isinstance(metadata, dict)
        annotations = dict(annotations)
        namespace = annotations.pop(CLUSTER_REF_NAMESPACE_ANNOTATION)
        metadata = {k: v for k, v in metadata.items() if k != "annotations"}
        if annotations:
            metadata["annotations"] = annotations
        if metadata:
            out["metadata"] = metadata
        else:
            del out["metadata"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return out
    # clusterRef in v1beta2 is the form k0smotron's docs show; clusterName wins over it.
    ref = dict(spec["clusterRef"]) if isinstance(spec.get("clusterRef"), dict) else {}
    if "clusterName" in spec:
        ref["name"] = spec["clusterName"]
    if namespace is not _ABSENT:
        ref["namespace"] = namespace
    if ref and "namespace" not in ref:
        own = metadata.get("namespace") if isinstance(metadata, dict) else None
        ref["namespace"] = own if isinstance(own, str) else ""
    new_spec: Obj = {"clusterRef": ref} if ref else {}
    new_spec.update((k, v) for k, v in spec.items() if k not in ("clusterRef", "clusterName"))
    out["spec"] = new_spec
    return out


def _jtr_status_to_v2(status: Obj) -> Obj:
    return _status_to_v2(status, _JTR_LEGACY_STATUS)


def _jtr_status_to_v1(status: Obj) -> Obj:
    return _status_to_v1(status, ("tokenID",), _JTR_LEGACY_STATUS)


_MAPPERS: dict[str, tuple[Mapper, Mapper]] = {
    "Cluster": (_cluster_to_v2, _cluster_to_v1),
    "JoinTokenRequest": (_jtr_to_v2, _jtr_to_v1),
}


# --- shared with the Cluster API control plane, whose spec is a Cluster spec -------------------

translate = _translate
map_object = _map_object
cluster_spec_to_v2 = _cluster_spec_to_v2
cluster_spec_to_v1 = _cluster_spec_to_v1

Mappers = dict[str, tuple[Mapper, Mapper]]
"""kind -> (to the newer version, to the older one)."""


def convert_two_versions(
    obj: Obj, to_version: str, versions: tuple[str, str], mappers: Mappers
) -> Obj:
    """``obj`` as ``to_version`` for a group serving two versions, ``versions`` = (older,
    newer) full apiVersions; each direction runs through the lossless envelope."""
    newer = versions[1]
    group = newer.rpartition("/")[0]
    target = to_version if "/" in to_version else f"{group}/{to_version}"
    if target not in versions:
        raise ValueError(f"cannot convert to unknown apiVersion {to_version!r}")
    source = obj.get("apiVersion")
    if source not in versions:
        raise ValueError(f"cannot convert from unknown apiVersion {source!r}")
    kind = obj.get("kind")
    if kind not in mappers:
        raise ValueError(f"cannot convert unknown kind {kind!r} ({source})")
    if source == target:
        return copy.deepcopy(obj)
    up, down = mappers[kind]
    if target == newer:
        return _translate(copy.deepcopy(obj), forward=up, backward=down)
    return _translate(copy.deepcopy(obj), forward=down, backward=up)


def template_mapper(api_version: str, spec_mapper: Mapper) -> Mapper:
    """A mapper for a `<Kind>Template`: `spec.template.spec` is mapped as the kind's spec."""

    def template_spec(spec: Obj) -> Obj:
        out = dict(spec)
        template = spec.get("template")
        if isinstance(template, dict):
            out["template"] = dict(template)
            if isinstance(template.get("spec"), dict):
                out["template"]["spec"] = spec_mapper(template["spec"])
        return out

    return lambda obj: _map_object(obj, api_version, template_spec, dict)
