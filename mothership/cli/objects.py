"""Reads of k0smotron.io objects for the CLI, with errors that say what to do.

A 404 has two meanings that need different advice: the object is not there (exit 4), or
the cluster does not serve the kind at all because the CRDs are not installed (exit 3).
"""

from __future__ import annotations

from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Event, Secret

from mothership.api.k0smotron.v1beta2 import GROUP
from mothership.cli.connection import Target
from mothership.cli.errors import MissingPrerequisite, NotFound, http_status_errors, status_code

Obj = dict[str, Any]

ClusterV2 = create_namespaced_resource(GROUP, "v1beta2", "Cluster", "clusters")
ClusterV1 = create_namespaced_resource(GROUP, "v1beta1", "Cluster", "clusters")
JoinTokenRequestV2 = create_namespaced_resource(
    GROUP, "v1beta2", "JoinTokenRequest", "jointokenrequests"
)
JoinTokenRequestV1 = create_namespaced_resource(
    GROUP, "v1beta1", "JoinTokenRequest", "jointokenrequests"
)


def kind_not_served(exc: BaseException) -> bool:
    """A 404 about the resource type rather than about one named object.

    An API server that does not know the group answers with a plain-text 404 (no Status),
    one that knows the group but not the kind with a Status without details.
    """
    if status_code(exc) != 404:
        return False
    if not isinstance(exc, ApiError):
        return True
    details = exc.status.details
    return details is None or not details.name


def no_crds(target: Target, kind: str = "Cluster") -> MissingPrerequisite:
    return MissingPrerequisite(
        f"{target.where()} does not serve {GROUP} {kind}s: the mothership CRDs are not "
        "installed there. Install mothership with `mothership install`, start the local "
        "one with `mothership dev up`, or pick the right cluster with --kubeconfig/--context"
    )


def cluster_not_found(name: str, namespace: str) -> NotFound:
    return NotFound(
        f"Cluster {name!r} not found in namespace {namespace!r}; "
        f"`mothership cluster list -n {namespace}` (or -A) shows what exists"
    )


def get_cluster(target: Target, name: str, namespace: str | None = None) -> Obj:
    ns = namespace or target.namespace
    try:
        return target.client.get(ClusterV2, name, namespace=ns).to_dict()
    except http_status_errors() as exc:
        if kind_not_served(exc):
            raise no_crds(target) from None
        if status_code(exc) == 404:
            raise cluster_not_found(name, ns) from None
        raise


def find_cluster(target: Target, name: str, namespace: str | None = None) -> Obj | None:
    """The Cluster, or None when it does not exist (the CRDs must exist)."""
    try:
        return get_cluster(target, name, namespace)
    except NotFound:
        return None


def list_clusters(target: Target, all_namespaces: bool = False) -> list[Obj]:
    ns = "*" if all_namespaces else target.namespace
    try:
        items = [c.to_dict() for c in target.client.list(ClusterV2, namespace=ns)]
    except http_status_errors() as exc:
        if status_code(exc) == 404:
            raise no_crds(target) from None
        raise
    return sorted(items, key=lambda c: (c["metadata"].get("namespace", ""), c["metadata"]["name"]))


def get_secret(target: Target, name: str, namespace: str) -> Secret | None:
    try:
        return target.client.get(Secret, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def events_for(target: Target, obj: Obj, limit: int = 10) -> list[Event]:
    """The newest events about this object (matched by uid, so an older namesake is left out)."""
    meta = obj["metadata"]
    fields = {"involvedObject.name": meta["name"], "involvedObject.kind": obj["kind"]}
    events = [
        e
        for e in target.client.list(Event, namespace=meta["namespace"], fields=fields)
        if not meta.get("uid") or e.involvedObject.uid in (None, meta["uid"])
    ]
    events.sort(key=event_time)
    return events[-limit:]


def event_time(event: Event) -> str:
    for value in (event.lastTimestamp, event.eventTime, event.firstTimestamp):
        if value is not None:
            return value.isoformat() if hasattr(value, "isoformat") else str(value)
    meta = event.metadata
    created = meta.creationTimestamp if meta else None
    return created.isoformat() if created is not None else ""
