"""Defaults the mutating webhook adds, as RFC 6902 JSON-patch operations.

Most of these are CRD defaults too, and when the CRD is installed the API server has filled
them in before the webhook runs, so the webhook usually adds only what a CRD default cannot
express: a k0s version that should move with the operator rather than be frozen in the CRD,
the previous version on UPDATE (see :func:`cluster_defaults`), and the etcd image, an
operator setting (see :data:`DEFAULT_ETCD_IMAGE_ENV`). Repeating the CRD
defaults costs nothing and keeps objects complete where a CRD was installed without them.

Every operation only fills a field that is absent or null: the user's value always wins,
including values such as ``replicas: 0`` that k0smotron's defaulter overwrites.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import jsonpatch

from mothership.api.k0smotron.convert import V1BETA2, convert
from mothership.api.k0smotron.v1beta2 import (
    DEFAULT_API_PORT,
    DEFAULT_ETCD_IMAGE,
    DEFAULT_K0S_VERSION,
    DEFAULT_KONNECTIVITY_PORT,
    DEFAULT_KUBERNETES_VERSION,
    REQUESTER_ANNOTATION,
)

DEFAULT_ETCD_IMAGE_ENV = "MOTHERSHIP_DEFAULT_ETCD_IMAGE"
"""Operator setting: the etcd image a Cluster gets when it names none.

`mothership operator run --default-etcd-image` sets it; the local mothership points it at
its locally built control-plane image, which holds etcd and a shell (nothing is pulled
there). Unset: :data:`DEFAULT_ETCD_IMAGE`. The CRD has no default for the field, so the
webhook sees exactly what the user wrote and never replaces a chosen image.
"""

DEFAULT_REPLICAS = 1
DEFAULT_SERVICE_TYPE = "ClusterIP"
DEFAULT_JTR_EXPIRY = "0s"
DEFAULT_JTR_ROLE = "worker"

Obj = dict[str, Any]
Op = dict[str, Any]


def default_etcd_image() -> str:
    """The operator's default etcd image (see :data:`DEFAULT_ETCD_IMAGE_ENV`)."""
    return os.environ.get(DEFAULT_ETCD_IMAGE_ENV) or DEFAULT_ETCD_IMAGE


def cluster_defaults(
    cluster: Obj, old: Obj | None = None, *, etcd_image: str = DEFAULT_ETCD_IMAGE
) -> list[Op]:
    """Patch operations that default a v1beta2 Cluster; ``old`` is the object on UPDATE.

    The version is only defaulted on CREATE. On UPDATE an absent version is taken from the
    old object: a server-side re-apply of a manifest without a version removes the field,
    and defaulting it again to :data:`DEFAULT_K0S_VERSION` would silently upgrade (or
    downgrade) the cluster whenever that constant moved with an operator release. A cluster
    whose old object has no version either (created before this webhook) keeps none, so the
    controller goes on running the version it recorded for it.
    """
    work = copy.deepcopy(cluster)
    ops: list[Op] = []
    spec = work.get("spec")
    kubernetes = isinstance(spec, dict) and spec.get("distribution") == "kubernetes"
    # The kubernetes distribution runs upstream Kubernetes: its version has no k0s suffix.
    version: str | None = DEFAULT_KUBERNETES_VERSION if kubernetes else DEFAULT_K0S_VERSION
    if old is not None:
        old_spec = old.get("spec")
        old_version = old_spec.get("version") if isinstance(old_spec, dict) else None
        version = old_version if isinstance(old_version, str) and old_version else None
    if not isinstance(work.get("spec"), dict):
        _fill(work, ("spec",), {}, ops)
    _fill(work, ("spec", "replicas"), DEFAULT_REPLICAS, ops)
    if version is not None:
        _fill(work, ("spec", "version"), version, ops, empty_string_is_absent=True)
    _fill(work, ("spec", "service", "type"), DEFAULT_SERVICE_TYPE, ops)
    _fill(work, ("spec", "service", "apiPort"), DEFAULT_API_PORT, ops)
    _fill(work, ("spec", "service", "konnectivityPort"), DEFAULT_KONNECTIVITY_PORT, ops)
    # Also on UPDATE for an object that has none (a re-apply without it removes it), so
    # the StatefulSet does not move to another image whenever the operator's default does.
    old_etcd = _get(old, ("spec", "storage", "etcd", "image")) if old is not None else None
    etcd_default = old_etcd if isinstance(old_etcd, str) and old_etcd else etcd_image
    _fill(work, ("spec", "storage", "etcd", "image"), etcd_default, ops)
    if isinstance(work["spec"].get("ingress"), dict):
        _fill(work, ("spec", "ingress", "deploy"), True, ops)
    return ops


def jtr_defaults(request: Obj, old: Obj | None = None) -> list[Op]:
    """Patch operations that default a v1beta2 JoinTokenRequest.

    k0smotron defaults these through its CRD only; repeating them here keeps what the
    validating webhook and the controller see identical whichever CRD is installed.
    """
    del old  # nothing depends on the previous object
    work = copy.deepcopy(request)
    ops: list[Op] = []
    if not isinstance(work.get("spec"), dict):
        _fill(work, ("spec",), {}, ops)
    _fill(work, ("spec", "expiry"), DEFAULT_JTR_EXPIRY, ops)
    _fill(work, ("spec", "role"), DEFAULT_JTR_ROLE, ops)
    return ops


def requester_ops(obj: Obj, old: Obj | None, username: str) -> list[Op]:
    """Record who asked for a join token, for the audit trail of who may join nodes.

    Written from the API server's own account of the request (userInfo), on CREATE only;
    an UPDATE puts the recorded name back, so nobody can rewrite or forge it later.
    """
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return []
    annotations = meta.get("annotations")
    have = annotations.get(REQUESTER_ANNOTATION) if isinstance(annotations, dict) else None
    if old is None:
        want: Any = username or None
    else:
        old_annotations = (old.get("metadata") or {}).get("annotations")
        want = (
            old_annotations.get(REQUESTER_ANNOTATION) if isinstance(old_annotations, dict) else None
        )
    if have == want:
        return []
    path = pointer(("metadata", "annotations", REQUESTER_ANNOTATION))
    if want is None:
        return [{"op": "remove", "path": path}]
    if not isinstance(annotations, dict):
        return [
            {"op": "add", "path": "/metadata/annotations", "value": {REQUESTER_ANNOTATION: want}}
        ]
    return [{"op": "add", "path": path, "value": want}]


def _cluster_rules(cluster: Obj, old: Obj | None = None) -> list[Op]:
    return cluster_defaults(cluster, old, etcd_image=default_etcd_image())


_BY_KIND = {"Cluster": _cluster_rules, "JoinTokenRequest": jtr_defaults}


def admission_patch(obj: Obj, old: Obj | None = None) -> list[Op]:
    """Patch for ``obj`` as the API server sent it, in either version.

    The rules are written once, for v1beta2. A v1beta1 object is converted up, defaulted,
    and converted back, and the patch is the difference in ``spec`` alone: conversion may
    add bookkeeping annotations that belong to conversion, not to the stored object.
    Raises ValueError for a kind or apiVersion the webhook does not handle.
    """
    kind = obj.get("kind")
    rules = _BY_KIND.get(kind) if isinstance(kind, str) else None
    if rules is None:
        raise ValueError(f"no defaults for kind {kind!r}")
    api_version = obj.get("apiVersion")
    current = convert(obj, V1BETA2)
    previous = convert(old, V1BETA2) if old is not None else None
    ops = rules(current, previous)
    if api_version == V1BETA2 or not ops:
        return ops
    assert isinstance(api_version, str)  # convert() accepted it
    defaulted = convert(jsonpatch.apply_patch(current, ops), api_version)
    new_spec = defaulted.get("spec")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [{"op": "add", "path": "/spec", "value": new_spec}]
    diff = jsonpatch.make_patch(spec, new_spec if isinstance(new_spec, dict) else {})
    return [_under("/spec", op) for op in diff.patch]


def apply(obj: Obj, ops: list[Op]) -> Obj:
    """``obj`` with ``ops`` applied, as the API server will store it; ``obj`` is unchanged."""
    return jsonpatch.apply_patch(obj, ops) if ops else copy.deepcopy(obj)


def pointer(path: tuple[str, ...] | list[str]) -> str:
    """RFC 6901 JSON pointer for a key path (``~`` and ``/`` escaped)."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)


def _fill(
    obj: Obj,
    path: tuple[str, ...],
    value: Any,
    ops: list[Op],
    *,
    empty_string_is_absent: bool = False,
) -> None:
    """Add ``value`` at ``path`` unless something is there; create missing parents.

    A parent that exists but is not an object (a list, a string) is left alone: that is a
    type error the schema reports, and patching into it would fail the whole request.
    Mirrors the change in ``obj`` so later fills see earlier ones.
    """
    node = obj
    for depth, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            nested: Any = value
            for inner in reversed(path[depth + 1 :]):
                nested = {inner: nested}
            # "add" on an existing member (null here) replaces it, per RFC 6902.
            ops.append({"op": "add", "path": pointer(path[: depth + 1]), "value": nested})
            node[key] = copy.deepcopy(nested)
            return
        if not isinstance(child, dict):
            return
        node = child
    current = node.get(path[-1])
    if current is None or (empty_string_is_absent and current == ""):
        ops.append({"op": "add", "path": pointer(path), "value": copy.deepcopy(value)})
        node[path[-1]] = copy.deepcopy(value)


def _get(obj: Obj, path: tuple[str, ...]) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _under(prefix: str, op: Op) -> Op:
    out = dict(op)
    out["path"] = prefix + op["path"]
    if "from" in op:
        out["from"] = prefix + op["from"]
    return out
