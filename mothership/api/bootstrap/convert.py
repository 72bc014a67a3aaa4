"""Translate K0sWorkerConfig(Template) between v1beta1 and v1beta2.

Field moves: preStartCommands/postStartCommands are preK0sCommands/postK0sCommands;
ignition and customUserDataRef move under `provisioner`; status `ready` is
`initialization.dataSecretCreated`. Everything else keeps its name. What one version cannot
hold (v1beta2's provisioner type and platform, say) travels in the lossless envelope's
annotation, as for the other groups.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from mothership.api.bootstrap.v1beta1 import API_VERSION as V1BETA1
from mothership.api.bootstrap.v1beta2 import API_VERSION as V1BETA2
from mothership.api.bootstrap.v1beta2 import GROUP
from mothership.api.k0smotron.convert import map_object, translate

Obj = dict[str, Any]
VERSIONS = (V1BETA1, V1BETA2)
_RENAMED = {"preStartCommands": "preK0sCommands", "postStartCommands": "postK0sCommands"}
_MOVED = ("ignition", "customUserDataRef")  # top level in v1beta1, under provisioner in v1beta2


def convert(obj: Obj, to_version: str) -> Obj:
    """``obj`` as ``to_version`` (full apiVersion or just ``v1beta1``/``v1beta2``)."""
    target = to_version if "/" in to_version else f"{GROUP}/{to_version}"
    if target not in VERSIONS:
        raise ValueError(f"cannot convert to unknown apiVersion {to_version!r}")
    source = obj.get("apiVersion")
    if source not in VERSIONS:
        raise ValueError(f"cannot convert from unknown apiVersion {source!r}")
    kind = obj.get("kind")
    if kind not in _MAPPERS:
        raise ValueError(f"cannot convert unknown kind {kind!r} ({source})")
    if source == target:
        return copy.deepcopy(obj)
    up, down = _MAPPERS[kind]
    if target == V1BETA2:
        return translate(copy.deepcopy(obj), forward=up, backward=down)
    return translate(copy.deepcopy(obj), forward=down, backward=up)


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


def _template(api_version: str, spec_mapper: Callable[[Obj], Obj]) -> Callable[[Obj], Obj]:
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
    "K0sWorkerConfig": (
        lambda obj: map_object(obj, V1BETA2, spec_to_v2, status_to_v2),
        lambda obj: map_object(obj, V1BETA1, spec_to_v1, status_to_v1),
    ),
    "K0sWorkerConfigTemplate": (_template(V1BETA2, spec_to_v2), _template(V1BETA1, spec_to_v1)),
}
