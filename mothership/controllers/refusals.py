"""An object the API server refused to take, traced back to the spec fields it came from.

Admission catches what it can, but some specs pass it and still render to an object the
mothership's API server will not store: a user patch that breaks the StatefulSet, a quota
or a policy in the namespace, a rule of an embedded Kubernetes type that admission does not
know. The user only sees their Cluster, never the rendered object, so the refusal is told in
the Cluster's terms: which object, the API server's own words, and the spec fields that
shape the part it complained about. Pure: unit-tested with the API server's real messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lightkube.core.exceptions import ApiError

from mothership.render.patches import COMPONENT_LABEL

REFUSING_CODES = frozenset({400, 403, 422})
"""Answers that mean "not this object" (bad request, forbidden by policy or quota, invalid)
rather than "not now": those are retried by the operator's usual error handling instead."""

MESSAGE_LIMIT = 700

# Where a part of a rendered object comes from, by the field name the API server names.
# Checked in order; the first match wins. (pod template path fragment, spec field)
_POD_FIELDS: tuple[tuple[str, str], ...] = (
    ("topologySpreadConstraints", "spec.topologySpreadConstraints"),
    ("volumeClaimTemplates", "spec.persistence.persistentVolumeClaim"),
    ("volumeMounts", "spec.mounts"),
    ("volumes", "spec.mounts"),
    ("resources", "spec.resources"),
    ("image", "spec.image"),
    ("args", "spec.controlPlaneFlags"),
    ("serviceAccountName", "spec.serviceAccount"),
)
_ETCD_FIELDS: tuple[tuple[str, str], ...] = (
    ("volumeClaimTemplates", "spec.storage.etcd.persistence"),
    ("resources", "spec.storage.etcd.resources"),
    ("image", "spec.storage.etcd.image"),
    ("args", "spec.storage.etcd.args"),
    ("schedule", "spec.storage.etcd.defragJob.schedule"),
)
_BY_KIND = {
    "Service": "spec.service",
    "Ingress": "spec.ingress",
}
_QUANTITY = "quantities must match"


@dataclass(frozen=True)
class Refusal:
    """What to tell the user about one refused object."""

    kind: str
    name: str
    code: int
    reason: str  # the API server's CamelCase reason, e.g. Invalid, Forbidden
    message: str  # the API server's message, shortened
    fields: tuple[str, ...]  # spec fields to look at, most likely first

    def __str__(self) -> str:
        where = f"; it comes from {', '.join(self.fields)}" if self.fields else ""
        return (
            f"the API server refused {self.kind} {self.name} ({self.code} {self.reason}): "
            f"{self.message}{where}"
        )


class Refused(Exception):
    """A write the API server refused for good; carries what to tell the user."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


@contextmanager
def refused_as(obj: dict[str, Any], spec: dict[str, Any]) -> Iterator[None]:
    """Turn a refusing answer to a write of the rendered `obj` into :class:`Refused`."""
    try:
        yield
    except ApiError as exc:
        if exc.status.code not in REFUSING_CODES:
            raise
        status = exc.status
        found = refusal(obj, status.code or 0, status.reason or "", status.message or "", spec)
        raise Refused(found) from exc


def refusal(
    obj: dict[str, Any], code: int, reason: str, message: str, spec: dict[str, Any]
) -> Refusal:
    """The Refusal of the rendered `obj`, made from the Cluster `spec` (as the user wrote it)."""
    short = message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."
    return Refusal(
        kind=str(obj.get("kind", "")),
        name=str((obj.get("metadata") or {}).get("name", "")),
        code=code,
        reason=reason or "",
        message=short,
        fields=tuple(spec_fields(obj, message, spec)),
    )


def spec_fields(obj: dict[str, Any], message: str, spec: dict[str, Any]) -> list[str]:
    """The spec fields that shape the part of `obj` named in the API server's `message`.

    A user patch aimed at this object comes first when there is one: it can put anything
    anywhere, and a rendered object the API server refuses without a patch is our bug.
    """
    kind = str(obj.get("kind", ""))
    labels = (obj.get("metadata") or {}).get("labels") or {}
    component = str(labels.get(COMPONENT_LABEL, ""))
    out = [
        f"spec.patches[{i}]"
        for i, p in enumerate(spec.get("patches") or [])
        if (p.get("target") or {}).get("kind") == kind
        and (p.get("target") or {}).get("component") == component
    ]
    field = _field_for(kind, component, message)
    if field and field not in out:
        out.append(field)
    return out


def _field_for(kind: str, component: str, message: str) -> str | None:
    if kind in _BY_KIND:
        return _BY_KIND[kind]
    if kind == "Secret" and component == "kubeconfig":
        return "spec.kubeconfigSecretMetadata"
    table = _ETCD_FIELDS if component.startswith("etcd") else _POD_FIELDS
    named = _named_paths(message)
    for fragment, field in table:
        if any(re.search(rf"(^|\.){fragment}(\[|\.|$)", path) for path in named):
            return field
    if _QUANTITY in message:
        return "spec.storage.etcd.resources" if component.startswith("etcd") else "spec.resources"
    return None


def _named_paths(message: str) -> list[str]:
    """The field paths in a validation message ("spec.template.spec.containers[0].image: ...")."""
    return re.findall(r"((?:metadata|spec)(?:\.[\w-]+|\[[^\]]*\])+)", message)
