"""Server-side apply with one field manager, skipped when nothing changed.

Every applied object carries a hash of what we asked for. When the observed object
already carries the same hash, the apply is skipped: a no-op resync makes no writes,
and an operator restart (same spec, same render) rolls nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from lightkube import AsyncClient
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from mothership.controllers import children
from mothership.controllers.children import Child
from mothership.render.names import FIELD_MANAGER, HASH_ANNOTATION

log = logging.getLogger("mothership.apply")


def _without_hash(obj: dict[str, Any]) -> dict[str, Any]:
    """obj minus our own hash annotation; copies only the two dicts on the way to it."""
    meta = obj.get("metadata")
    if not meta or HASH_ANNOTATION not in (meta.get("annotations") or {}):
        return obj
    annotations = {k: v for k, v in meta["annotations"].items() if k != HASH_ANNOTATION}
    new_meta = {k: v for k, v in meta.items() if k != "annotations"}
    if annotations:
        new_meta["annotations"] = annotations
    return {**obj, "metadata": new_meta}


def desired_hash(obj: dict[str, Any]) -> str:
    canonical = json.dumps(_without_hash(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of obj carrying its own desired hash as an annotation.

    Shallow: rendered objects are fresh per reconcile and never mutated afterwards, so
    only the dicts on the path to the annotation are copied.
    """
    digest = desired_hash(obj)
    meta = dict(obj.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), HASH_ANNOTATION: digest}
    return {**obj, "metadata": meta}


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """obj with a controller ownerReference to owner (garbage collection on delete)."""
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "ownerReferences": [ref]}}


class Applier:
    """Applies stamped objects; counts writes so tests and benchmarks can see them.

    What an object looks like is the registry's business (children.py): it is fed by the
    watches and by the answer to every write made here, so a reconcile that runs before
    the watch catches up sees its own last write, not the state before it.
    """

    def __init__(self, client: AsyncClient, registry: children.Registry | None = None) -> None:
        self.client = client
        # The registry that takes our writes' answers: the mothership's, or a remote host's.
        self.registry = registry if registry is not None else children.REGISTRY
        self.writes = 0
        self.skipped = 0
        self.taken_over = 0

    async def apply(self, obj: dict[str, Any], observed: Child | None) -> bool:
        """Apply obj unless it is known to be in place. True if written.

        In place means: the object exists, carries the hash of exactly this desired
        state, and nobody else changed it since our last write (a foreign edit keeps our
        hash annotation, so the hash alone would hide it). A deleted object is absent
        from the registry, so it is created again; a drifted one is taken over first.
        """
        stamped = stamp(obj)
        digest = stamped["metadata"]["annotations"][HASH_ANNOTATION]
        if observed is not None and observed.hash == digest and not observed.drifted:
            self.skipped += 1
            return False
        if observed is not None and observed.drifted:
            await self.take_over(stamped)
        await self.write(stamped)
        return True

    async def write(self, obj: dict[str, Any]) -> Any:
        """Server-side apply, forced: our field manager owns what it sets."""
        result = await self.client.apply(from_dict(obj), field_manager=FIELD_MANAGER, force=True)
        self.writes += 1
        children.observe_write(result.to_dict(), self.registry)
        return result

    async def take_over(self, obj: dict[str, Any]) -> None:
        """Make our field manager the only owner of every field outside status.

        A forced apply wins every field we set, but what someone else added stays, since
        it is theirs: an extra label, a data key, or a Service port whose key (the port
        number) they changed, which then clashes with ours by name. Owning it all first
        lets the apply that follows remove whatever is not in the desired state, so the
        object comes back exactly as rendered.
        """
        meta = obj["metadata"]
        resource: Any = type(from_dict(obj))  # the kind is known at run time only
        live = await get_or_none(self.client, resource, meta["name"], meta.get("namespace", ""))
        if live is None:
            return
        entries = [e.to_dict() for e in (live.metadata.managedFields or [])]
        kept = [e for e in entries if e.get("subresource") == "status"]
        others = sorted(
            {
                f"{e.get('manager')} ({e.get('operation')}"
                + (f" {e['subresource']}" if e.get("subresource") else "")
                + ")"
                for e in entries
                if e.get("subresource") != "status" and e.get("manager") != FIELD_MANAGER
            }
        )
        log.info(
            "repairing %s %s/%s, changed by %s",
            obj["kind"],
            meta.get("namespace", ""),
            meta["name"],
            ", ".join(others) or "an unknown writer (or deleted fields)",
        )
        union: dict[str, Any] = {}
        for entry in entries:
            if entry.get("subresource") != "status":
                union = merge_fields(union, entry.get("fieldsV1") or {})
        ours = {
            "manager": FIELD_MANAGER,
            "operation": "Apply",
            "apiVersion": obj["apiVersion"],
            "fieldsType": "FieldsV1",
            "fieldsV1": union,
        }
        patch = {
            "metadata": {
                "managedFields": [ours, *kept],
                "resourceVersion": live.metadata.resourceVersion,
            }
        }
        await self.client.patch(
            resource,
            meta["name"],
            patch,
            namespace=meta.get("namespace"),
            patch_type=PatchType.MERGE,
        )
        self.taken_over += 1


def merge_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The union of two managedFields field sets (nested maps whose leaves are {})."""
    out = dict(a)
    for key, value in b.items():
        out[key] = merge_fields(out[key], value) if key in out else value
    return out


async def get_or_none(client: AsyncClient, resource: Any, name: str, namespace: str) -> Any:
    """The object, or None when it does not exist; every other API error propagates."""
    try:
        return await client.get(resource, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def owner_name(obj: dict[str, Any], kind: str, group: str) -> str | None:
    """Name of the owner of this kind in this API group (any version), if there is one:
    how a Cluster API object finds its Cluster or Machine, and a child its provider object."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and str(ref.get("apiVersion", "")).startswith(f"{group}/"):
            return str(ref["name"])
    return None
