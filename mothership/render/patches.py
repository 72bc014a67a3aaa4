"""User patches (spec.patches) applied to rendered objects, as k0smotron applies them.

A patch targets objects by kind and by the `app.kubernetes.io/component` label, so one
patch reaches every object of that component (both etcd objects, say) and none of the
others. Patches run in spec order, each on the result of the previous one.

Strategic merge is Kubernetes' own patch type; the full version needs the Go type
metadata of every kind. We implement the part users rely on: maps merge, `null` deletes
a key, and the well-known lists of named items (containers, volumes, env, ports, …) merge
item by item instead of being replaced. Directives we do not implement are refused rather
than silently ignored, so a patch never "works" differently from what its author meant.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

import jsonpatch
import yaml

from mothership.api.k0smotron.v1beta2 import ComponentPatch

COMPONENT_LABEL = "app.kubernetes.io/component"

# List fields merged item by item in a strategic merge, and the key identifying an item.
# These are the lists users patch in practice; any other list is replaced whole.
STRATEGIC_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "ports": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeClaimTemplates": "metadata.name",
}

# Identity of an object: a patch changing these would make the controller lose track of
# what it owns (and k0smotron would apply a different object than it later looks up).
_IDENTITY = (("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"))


class PatchError(ValueError):
    """A patch from spec.patches could not be applied; names which one and why."""

    def __init__(self, index: int, kind: str, component: str, reason: str) -> None:
        self.index = index
        self.kind = kind
        self.component = component
        self.reason = reason
        super().__init__(
            f"spec.patches[{index}] (target kind={kind} component={component}): {reason}"
        )


def apply_patches(
    objects: Iterable[dict[str, Any]], patches: Sequence[ComponentPatch]
) -> list[dict[str, Any]]:
    """Every object with the patches that target it applied; objects are not mutated."""
    return [patch_object(obj, patches) for obj in objects]


def patch_object(obj: dict[str, Any], patches: Sequence[ComponentPatch]) -> dict[str, Any]:
    kind = obj.get("kind", "")
    # Matched on the labels as rendered, like k0smotron: a patch that edits the component
    # label does not make later patches skip or start matching the object.
    component = obj.get("metadata", {}).get("labels", {}).get(COMPONENT_LABEL, "")
    result = obj
    for index, component_patch in enumerate(patches):
        target = component_patch.target
        if target.kind != kind or target.component != component:
            continue
        try:
            result = _apply_one(result, component_patch.patch.type, component_patch.patch.content)
        except _Refused as refused:
            raise PatchError(index, target.kind, target.component, str(refused)) from None
        moved = [".".join(path) for path in _IDENTITY if _get(result, path) != _get(obj, path)]
        if moved:
            raise PatchError(
                index, target.kind, target.component, f"patch may not change {', '.join(moved)}"
            )
    return result


class _Refused(ValueError):
    pass


def parse_patch(patch_type: str, content: str) -> Any:
    """The patch document in ``content``, checked against its type; ValueError says why not.

    Used by rendering and by admission, so a patch the webhook accepts is one rendering can
    read: a json patch is a list of operations (each an object with ``op`` and ``path``),
    merge and strategic patches are objects.
    """
    try:
        # JSON is YAML, so one parser takes both spellings k0smotron accepts.
        document = yaml.safe_load(content) if content.strip() else None
    except yaml.YAMLError as exc:
        raise _Refused(f"content is not valid YAML/JSON: {_yaml_problem(exc)}") from None
    if patch_type == "json":
        if not isinstance(document, list):
            raise _Refused("a json patch must be a list of operations")
        for i, operation in enumerate(document):
            if not (isinstance(operation, dict) and "op" in operation and "path" in operation):
                raise _Refused(f"operation {i} of the json patch needs an op and a path")
        return document
    if patch_type == "merge":
        if not isinstance(document, dict):
            raise _Refused("a merge patch must be an object")
        return document
    if patch_type == "strategic":
        if not isinstance(document, dict):
            raise _Refused("a strategic merge patch must be an object")
        return document
    raise _Refused(f"unknown patch type {patch_type!r} (expected json, merge or strategic)")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the parser expected and where (PyYAML's own text spans lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def _apply_one(obj: dict[str, Any], patch_type: str, content: str) -> dict[str, Any]:
    document = parse_patch(patch_type, content)
    if patch_type == "json":
        return _json_patch(obj, document)
    if patch_type == "merge":
        return cast(dict[str, Any], merge_patch(obj, document))
    return cast(dict[str, Any], strategic_merge(obj, document))


def _json_patch(obj: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    try:
        result = jsonpatch.apply_patch(obj, operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise _Refused(str(exc)) from None
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise _Refused(f"malformed json patch: {exc}") from None
    if not isinstance(result, dict):
        raise _Refused("a json patch must leave an object")
    # Round-trip through JSON so the result holds only plain types (and fresh copies).
    return cast(dict[str, Any], json.loads(json.dumps(result)))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: dict[str, Any]) -> Any:
    """The subset of Kubernetes strategic merge described in the module docstring."""
    directive = patch.get("$patch")
    if directive == "replace":
        return _without_directives(patch)
    if directive == "delete":
        return None
    if directive is not None:
        raise _Refused(f"unsupported $patch directive {directive!r}")
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            raise _Refused(f"unsupported strategic merge directive {key!r}")
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and key in STRATEGIC_MERGE_KEYS:
            result[key] = _merge_list(result.get(key), value, STRATEGIC_MERGE_KEYS[key])
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: Any, patch_items: list[Any], merge_key: str) -> list[Any]:
    """Items with the same key merge in place, new ones are appended, `$patch: delete` drops
    an item and a `{$patch: replace}` item makes the patch's list replace the current one."""
    if {"$patch": "replace"} in patch_items:
        # The list as written replaces the current one.
        return [_without_directives(i) for i in patch_items if i != {"$patch": "replace"}]
    merged: list[Any] = copy.deepcopy(current) if isinstance(current, list) else []
    path = tuple(merge_key.split("."))
    for item in patch_items:
        key = _get(item, path) if isinstance(item, dict) else None
        if key is None:
            # Without its key an item cannot be matched; appending is what a user adding
            # an unnamed entry means.
            merged.append(_without_directives(item) if isinstance(item, dict) else item)
            continue
        position = next(
            (i for i, old in enumerate(merged) if isinstance(old, dict) and _get(old, path) == key),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del merged[position]
            continue
        if position is None:
            merged.append(_without_directives(item))
        else:
            merged[position] = strategic_merge(merged[position], item)
    return merged


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj
