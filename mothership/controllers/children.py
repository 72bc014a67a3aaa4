"""What the operator knows of the objects it owns, kept current by watches (kopf indexes).

Only what reconcile and status need is kept (the desired hash, a few status fields),
never Secret data: memory stays flat as the fleet grows, and a reconcile that finds
every hash in place reads nothing from the API server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kopf

from mothership.render.names import HASH_ANNOTATION, MANAGED_BY

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
Key = tuple[str, str]  # (namespace, cluster name)


@dataclass(frozen=True)
class Child:
    kind: str
    name: str
    hash: str | None
    annotations: dict[str, str] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    generation: int | None = None


def _key(namespace: str | None, labels: dict[str, str]) -> Key | None:
    cluster = labels.get("cluster")
    return (namespace or "", cluster) if cluster else None


def _child(kind: str, name: str, annotations: dict[str, str], status: dict[str, Any]) -> Child:
    return Child(kind, name, annotations.get(HASH_ANNOTATION), {}, status)


def _register() -> None:
    @kopf.index("apps", "v1", "statefulsets", labels=MANAGED, id="statefulsets")
    def statefulsets(namespace, name, labels, annotations, status, meta, **_):  # type: ignore[no-untyped-def]
        key = _key(namespace, labels)
        keep = {
            k: status.get(k)
            for k in (
                "replicas",
                "readyReplicas",
                "updatedReplicas",
                "availableReplicas",
                "currentRevision",
                "updateRevision",
                "observedGeneration",
            )
        }
        child = Child(
            "StatefulSet", name, annotations.get(HASH_ANNOTATION), {}, keep, meta.get("generation")
        )
        return {key: child} if key else None

    @kopf.index("v1", "services", labels=MANAGED, id="services")
    def services(namespace, name, labels, annotations, spec, status, **_):  # type: ignore[no-untyped-def]
        key = _key(namespace, labels)
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        keep = {
            "type": spec.get("type"),
            "clusterIP": spec.get("clusterIP"),
            "lb": [i.get("ip") or i.get("hostname") for i in ingress],
        }
        return {key: _child("Service", name, annotations, keep)} if key else None

    for group_version, plural, kind in (
        ("v1", "configmaps", "ConfigMap"),
        ("v1", "secrets", "Secret"),
        ("networking.k8s.io/v1", "ingresses", "Ingress"),
        ("batch/v1", "cronjobs", "CronJob"),
        ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ):
        _register_plain(group_version, plural, kind)

    @kopf.index("v1", "nodes", id="node_addresses")
    def node_addresses(name, status, **_):  # type: ignore[no-untyped-def]
        addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        return {None: (name, addrs.get("ExternalIP") or addrs.get("InternalIP"))}


def _register_plain(group_version: str, plural: str, kind: str) -> None:
    group, _, version = group_version.rpartition("/")

    def index(namespace, name, labels, annotations, **_):  # type: ignore[no-untyped-def]
        key = _key(namespace, labels)
        kept = {k: v for k, v in annotations.items() if k.startswith("mothership.io/")}
        return {key: Child(kind, name, annotations.get(HASH_ANNOTATION), kept, {})} if key else None

    index.__name__ = plural
    args = (group, version, plural) if group else (version, plural)
    kopf.index(*args, labels=MANAGED, id=plural)(index)


_register()


def children_of(key: Key, indexes: dict[str, Any]) -> dict[tuple[str, str], Child]:
    """(kind, name) -> Child for one cluster, across every owned kind."""
    out: dict[tuple[str, str], Child] = {}
    for plural in (
        "statefulsets",
        "services",
        "configmaps",
        "secrets",
        "ingresses",
        "cronjobs",
        "poddisruptionbudgets",
    ):
        store = indexes.get(plural)
        if store is None:
            continue
        for child in store.get(key, []):
            out[(child.kind, child.name)] = child
    return out
