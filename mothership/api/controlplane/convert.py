"""Translate K0smotronControlPlane(Template) between v1beta1 and v1beta2.

The spec is a k0smotron.io Cluster spec in both versions, so it is mapped exactly as a
Cluster's is, inside the same lossless envelope (what one version cannot hold travels in the
``k0smotron.io/conversion-data`` annotation). The status maps between Cluster API's v1beta1
and v1beta2 control-plane contracts: ``initialized`` is ``initialization
.controlPlaneInitialized``, ``updatedReplicas`` is ``upToDateReplicas``, and
``unavailableReplicas`` is ``replicas - availableReplicas``.
"""

from __future__ import annotations

from typing import Any

from mothership.api.controlplane.v1beta1 import API_VERSION as V1BETA1
from mothership.api.controlplane.v1beta2 import API_VERSION as V1BETA2
from mothership.api.k0smotron.convert import (
    Mappers,
    cluster_spec_to_v1,
    cluster_spec_to_v2,
    convert_two_versions,
    map_object,
    template_mapper,
)

Obj = dict[str, Any]
VERSIONS = (V1BETA1, V1BETA2)
KINDS = ("K0smotronControlPlane", "K0smotronControlPlaneTemplate")


def convert(obj: Obj, to_version: str) -> Obj:
    """``obj`` as ``to_version`` (full apiVersion or just ``v1beta1``/``v1beta2``)."""
    return convert_two_versions(obj, to_version, VERSIONS, _MAPPERS)


def _control_plane_to_v2(obj: Obj) -> Obj:
    return map_object(obj, V1BETA2, cluster_spec_to_v2, status_to_v2)


def _control_plane_to_v1(obj: Obj) -> Obj:
    return map_object(obj, V1BETA1, cluster_spec_to_v1, status_to_v1)


_MAPPERS: Mappers = {
    "K0smotronControlPlane": (_control_plane_to_v2, _control_plane_to_v1),
    "K0smotronControlPlaneTemplate": (
        template_mapper(V1BETA2, cluster_spec_to_v2),
        template_mapper(V1BETA1, cluster_spec_to_v1),
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
