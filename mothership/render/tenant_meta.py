"""Metadata of the objects the operator applies into a tenant (add-ons, bootstrap RBAC): pure."""

from __future__ import annotations

from typing import Any

from mothership.render.names import MANAGED_BY

MANAGED_LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY}


def tenant_meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    """metadata for an object inside the tenant; no namespace: a cluster-scoped object.

    The managed-by label goes on every one and wins over the component's own labels, so
    whoever looks inside the tenant can tell what the operator applies (and re-applies).
    """
    meta: dict[str, Any] = {"name": name, "labels": {**labels, **MANAGED_LABELS}}
    if namespace:
        meta["namespace"] = namespace
    return meta
