"""Translate K0smotronControlPlane(Template) between v1beta1 and v1beta2.

The spec is a k0smotron.io Cluster spec in both versions, so it is mapped exactly as a
Cluster's is, inside the same lossless envelope (what one version cannot hold travels in the
``k0smotron.io/conversion-data`` annotation). The status maps between Cluster API's v1beta1
and v1beta2 control-plane contracts: ``initialized`` is ``initialization
.controlPlaneInitialized``, ``updatedReplicas`` is ``upToDateReplicas``, and
``unavailableReplicas`` is ``replicas - availableReplicas``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from mothership.api.controlplane.v1beta1 import API_VERSION as V1BETA1
from mothership.api.controlplane.v1beta2 import API_VERSION as V1BETA2
from mothership.api.controlplane.v1beta2 import GROUP
from mothership.api.k0smotron.convert import (
    cluster_spec_to_v1,
    cluster_spec_to_v2,
    map_object,
    translate,
)

Obj = dict[str, Any]
VERSIONS = (V1BETA1, V1BETA2)
KINDS = ("K0smotronControlPlane", "K0smotronControlPlaneTemplate")


def convert(obj: Obj, to_version: str) -> Obj:
    """``obj`` as ``to_version`` (full apiVersion or just ``v1beta1``/``v1beta2``)."""
    target = to_version if "/" in to_version else f"{GROUP}/{to_version}"
    if target not in VERSIONS:
        raise ValueError(f"cannot convert to unknown apiVersion {to_version!r}")
    source = obj.get("apiVersion")
    if source not in VERSIONS:
        raise ValueError(f"cannot convert from unknown apiVersion {source!r}")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise ValueError(f"cannot convert unknown kind {kind!r} ({source})")
    if source == target:
        return copy.deepcopy(obj)
    up, down = _MAPPERS[kind]
    if target == V1BETA2:
        return translate(copy.deepcopy(obj), forward=up, backward=down)
    return translate(copy.deepcopy(obj), forward=down, backward=up)


def _control_plane_to_v2(obj: Obj) -> Obj:
    return map_object(obj, V1BETA2, cluster_spec_to_v2, status_to_v2)


def _control_plane_to_v1(obj: Obj) -> Obj:
    return map_object(obj, V1BETA1, cluster_spec_to_v1, status_to_v1)


def _template_mapper(api_version: str, spec_mapper: Callable[[Obj], Obj]) -> Callable[[Obj], Obj]:
    def template_spec(spec: Obj) -> Obj:
        out = dict(spec)
        template = spec.get("template")
        if isinstance(template, dict):
            out["template"] = dict(template)
            if isinstance(template.get("spec"), dict):
                out["template"]["spec"] = spec_mapper(template["spec"])
        return out

    return lambda obj: map_object(obj, api_version, template_spec, dict)


_MAPPERS: dict[str, tuple[Callable[[Obj], Obj], Callable[[Obj], Obj]]] = {
    "K0smotronControlPlane": (_control_plane_to_v2, _control_plane_to_v1),
    "K0smotronControlPlaneTemplate": (
        _template_mapper(V1BETA2, cluster_spec_to_v2),
        _template_mapper(V1BETA1, cluster_spec_to_v1),
    ),
}

_SHARED_STATUS = ("externalManagedControlPlane", "version", "replicas", "readyReplicas",
                  "selector", "conditions")  # fmt: skip


def status_to_v2(status: Obj) -> Obj:
    out: Obj = {k: status[k] for k in _SHARED_STATUS if k in status}
    initialized = (status.get("initialization") or {}).get("controlPlaneInitialized")
    if initialized is None:
        initialized = status.get("initialized")
    if initialized is not None:
        out["initialization"] = {"controlPlaneInitialized": initialized}
    if "updatedReplicas" in status:
        out["upToDateReplicas"] = status["updatedReplicas"]
    if "unavailableReplicas" in status:
        out["availableReplicas"] = (status.get("replicas") or 0) - status["unavailableReplicas"]
    return out


def status_to_v1(status: Obj) -> Obj:
    out: Obj = {k: status[k] for k in _SHARED_STATUS if k in status}
    if "readyReplicas" in status:
        out["ready"] = (status["readyReplicas"] or 0) > 0
    initialized = (status.get("initialization") or {}).get("controlPlaneInitialized")
    if initialized is not None:
        out["initialized"] = initialized
        out["initialization"] = {"controlPlaneInitialized": initialized}
    if "upToDateReplicas" in status:
        out["updatedReplicas"] = status["upToDateReplicas"]
    if "availableReplicas" in status:
        out["unavailableReplicas"] = (status.get("replicas") or 0) - status["availableReplicas"]
    return out
