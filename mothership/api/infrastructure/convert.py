"""Translate the infrastructure kinds between v1beta1 and v1beta2.

Field moves: the clean-up commands are `customCleanUpCommands` in v1beta1 and
`cleanUpCommands` in v1beta2 (in a RemoteMachine's spec, a template's `template.spec` and
a PooledRemoteMachine's `spec.machine`); status `ready` is `initialization.provisioned`.
What one version cannot hold (v1beta2's conditions, v1beta1's failure fields) travels in
the lossless envelope's annotation, as for the other groups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mothership.api.infrastructure.v1beta1 import API_VERSION as V1BETA1
from mothership.api.infrastructure.v1beta2 import API_VERSION as V1BETA2
from mothership.api.k0smotron.convert import (
    Mappers,
    convert_two_versions,
    map_object,
    template_mapper,
)

Obj = dict[str, Any]
VERSIONS = (V1BETA1, V1BETA2)
_V1_CLEAN_UP, _V2_CLEAN_UP = "customCleanUpCommands", "cleanUpCommands"


def convert(obj: Obj, to_version: str) -> Obj:
    """``obj`` as ``to_version`` (full apiVersion or just ``v1beta1``/``v1beta2``)."""
    return convert_two_versions(obj, to_version, VERSIONS, _MAPPERS)


def _rename(old: str, new: str) -> Callable[[Obj], Obj]:
    def mapped(spec: Obj) -> Obj:
        return {(new if key == old else key): value for key, value in spec.items()}

    return mapped


machine_spec_to_v2 = _rename(_V1_CLEAN_UP, _V2_CLEAN_UP)
machine_spec_to_v1 = _rename(_V2_CLEAN_UP, _V1_CLEAN_UP)


def _pooled(machine_spec: Callable[[Obj], Obj]) -> Callable[[Obj], Obj]:
    def mapped(spec: Obj) -> Obj:
        out = dict(spec)
        if isinstance(spec.get("machine"), dict):
            out["machine"] = machine_spec(spec["machine"])
        return out

    return mapped


def status_to_v2(status: Obj) -> Obj:
    out = {k: v for k, v in status.items() if k not in ("ready", "failureReason", "failureMessage")}
    if "ready" in status:
        out["initialization"] = {"provisioned": status["ready"]}
    return out


def status_to_v1(status: Obj) -> Obj:
    out = {
        k: v
        for k, v in status.items()
        if k not in ("initialization", "conditions", "observedGeneration")
    }
    provisioned = (status.get("initialization") or {}).get("provisioned")
    if provisioned is not None:
        out["ready"] = provisioned
    return out


def _same(obj: Obj) -> Obj:
    return dict(obj)


_MAPPERS: Mappers = {
    "RemoteMachine": (
        lambda obj: map_object(obj, V1BETA2, machine_spec_to_v2, status_to_v2),
        lambda obj: map_object(obj, V1BETA1, machine_spec_to_v1, status_to_v1),
    ),
    "RemoteMachineTemplate": (
        template_mapper(V1BETA2, machine_spec_to_v2),
        template_mapper(V1BETA1, machine_spec_to_v1),
    ),
    "PooledRemoteMachine": (
        lambda obj: map_object(obj, V1BETA2, _pooled(machine_spec_to_v2), _same),
        lambda obj: map_object(obj, V1BETA1, _pooled(machine_spec_to_v1), _same),
    ),
    "RemoteCluster": (
        lambda obj: map_object(obj, V1BETA2, _same, status_to_v2),
        lambda obj: map_object(obj, V1BETA1, _same, status_to_v1),
    ),
    "RemoteClusterTemplate": (
        template_mapper(V1BETA2, _same),
        template_mapper(V1BETA1, _same),
    ),
}
