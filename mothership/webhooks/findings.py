"""What admission rules report, and how field paths reach the user in their apiVersion.

Shared by :mod:`.validate` (the Cluster rules that look at several fields, the previous object
or other Clusters) and :mod:`.validate_embedded` (the rules for the free-form Kubernetes
objects and strings a Cluster embeds), so both speak through one :class:`Check`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from mothership.api.k0smotron.convert import V1BETA1

Obj = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """One finding: the field it is about and what to do."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Result(NamedTuple):
    errors: list[Problem]
    warnings: list[Problem]


class Paths:
    """Names v1beta2 field paths the way the user's apiVersion spells them."""

    V1BETA1_NAMES = (
        ("spec.storage.kine.dataSourceURL", "spec.kineDataSourceURL"),
        ("spec.storage.kine.dataSourceSecretName", "spec.kineDataSourceSecretName"),
        ("spec.storage.etcd", "spec.etcd"),
        ("spec.remoteHostCluster.kubeconfigRef", "spec.kubeconfigRef"),
        ("spec.controlPlaneFlags", "spec.controllerPlaneFlags"),
        ("spec.clusterName", "spec.clusterRef.name"),
    )

    def __init__(self, api_version: str) -> None:
        self.v1beta1 = api_version == V1BETA1

    def __call__(self, path: str) -> str:
        if self.v1beta1:
            for v2, v1 in self.V1BETA1_NAMES:
                # A list field is followed by its index: spec.controlPlaneFlags[2].
                if path == v2 or path.startswith((v2 + ".", v2 + "[")):
                    return v1 + path[len(v2) :]
        return path


class Check:
    """Collects findings; paths go through :class:`Paths` once, here."""

    def __init__(self, paths: Paths) -> None:
        self.p = paths
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(Problem(self.p(path), message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(self.p(path), message))


def show(value: Any) -> str:
    """A value as the user would write it in JSON (strings quoted)."""
    return json.dumps(value, ensure_ascii=False)


def sub(obj: Obj, *keys: str) -> Obj:
    """The object at ``keys`` or an empty one: rules read optional sections freely."""
    node: Any = obj
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}
