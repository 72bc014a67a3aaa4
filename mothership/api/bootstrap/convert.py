"""Translate K0sWorkerConfig(Template) between v1beta1 and v1beta2.

Field moves: preStartCommands/postStartCommands are preK0sCommands/postK0sCommands;
ignition and customUserDataRef move under `provisioner`; status `ready` is
`initialization.dataSecretCreated`. Everything else keeps its name. What one version cannot
hold (v1beta2's provisioner type and platform, say) travels in the lossless envelope's
annotation, as for the other groups.
"""

from __future__ import annotations

from typing import Any

from mothership.api.bootstrap.v1beta1 import API_VERSION as V1BETA1
from mothership.api.bootstrap.v1beta2 import API_VERSION as V1BETA2
from mothership.api.k0smotron.convert import (
    Mappers,
    convert_two_versions,
    map_object,
    template_mapper,
)

Obj = dict[str, Any]
VERSIONS = (V1BETA1, V1BETA2)
_RENAMED = {"preStartCommands": "preK0sCommands", "postStartCommands": "postK0sCommands"}
_MOVED = ("ignition", "customUserDataRef")  # top level in v1beta1, under provisioner in v1beta2


def convert(obj: Obj, to_version: str) -> Obj:
    """``obj`` as ``to_version`` (full apiVersion or just ``v1beta1``/``v1beta2``)."""
    return convert_two_versions(obj, to_version, VERSIONS, _MAPPERS)


def spec_to_v2(spec: Obj) -> Obj:
    out: Obj = {}
    provisioner: Obj = {}
    for key, value in spec.items():
        if key in _RENAMED:
            out[_RENAMED[key]] = value
        elif key in _MOVED:
            provisioner[key] = value
        else:
            out[key] = value
    if provisioner:
        out["provisioner"] = provisioner
    return out


def spec_to_v1(spec: Obj) -> Obj:
    back = {v: k for k, v in _RENAMED.items()}
    out: Obj = {}
    for key, value in spec.items():
        if key in back:
            out[back[key]] = value
        elif key == "provisioner":
            if isinstance(value, dict):
                out.update({k: value[k] for k in _MOVED if k in value})
        else:
            out[key] = value
    return out


def status_to_v2(status: Obj) -> Obj:
    out = {k: v for k, v in status.items() if k != "ready"}
    if "ready" in status:
        out["initialization"] = {"dataSecretCreated": status["ready"]}
    return out


def status_to_v1(status: Obj) -> Obj:
    out = {k: v for k, v in status.items() if k not in ("initialization", "observedGeneration")}
    created = (status.get("initialization") or {}).get("dataSecretCreated")
    if created is not None:
        out["ready"] = created
    return out


_MAPPERS: Mappers = {
    "K0sWorkerConfig": (
        lambda obj: map_object(obj, V1BETA2, spec_to_v2, status_to_v2),
        lambda obj: map_object(obj, V1BETA1, spec_to_v1, status_to_v1),
    ),
    "K0sWorkerConfigTemplate": (
        template_mapper(V1BETA2, spec_to_v2),
        template_mapper(V1BETA1, spec_to_v1),
    ),
}
