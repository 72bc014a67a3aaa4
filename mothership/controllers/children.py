"""What the operator knows of the objects it owns, kept current by its own watches.

kopf indexes list and watch a kind cluster-wide with full bodies and filter on labels in
the operator: every Secret and ConfigMap of the mothership passes through, and each index
keeps its values per object. Here every owned kind is listed and watched with a
server-side label selector (only what this operator manages), as metadata only where
metadata is all a reconcile reads (PartialObjectMetadata: no Secret data ever reaches the
operator), and each object is reduced on arrival to a `Child`: name, our desired-hash, a
few status fields and a fingerprint of who last changed which fields.

Our own writes go into the same registry straight from the API server's response. A
reconcile that runs before the watch catches up sees what it has just written, and an
older watch event never overwrites a newer write: resourceVersions are compared as
numbers, which they are on etcd and kine (anything else is taken as newer).

Drift: `Child.fields` fingerprints every field-manager entry outside the status
subresource; `Child.ours` is that fingerprint as our last write left it. They differ
once anyone else edits the object (kubectl edit, scale, a foreign apply), which the
desired-hash annotation alone would hide. A deletion removes the Child, so the next
reconcile creates the object again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

import httpx2 as httpx
import msgspec

from mothership.render.names import FIELD_MANAGER, HASH_ANNOTATION, MANAGED_BY

log = logging.getLogger("mothership.children")

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
Key = tuple[str, str]  # (namespace, cluster name)
Ref = tuple[str, str, str]  # (kind, namespace, name)

LIST_PAGE = 250
WATCH_SECONDS = 290
META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
META_ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
STATEFULSET_STATUS = (
    "replicas",
    "readyReplicas",
    "updatedReplicas",
    "availableReplicas",
    "currentRevision",
    "updateRevision",
    "observedGeneration",
)


@dataclass(frozen=True, slots=True)
class Child:
    kind: str
    name: str
    hash: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    status: Mapping[str, Any] = field(default_factory=dict)
    generation: int | None = None
    version: int = 0  # metadata.resourceVersion; 0 when unknown or not a number
    fields: str = ""  # fingerprint of the field managers' entries outside status
    ours: str | None = None  # `fields` as our last write (or first clean sight) left them
    deleting: bool = False
    finalizers: tuple[str, ...] = ()  # what holds it (the PKI authorities carry ours)

    @property
    def drifted(self) -> bool:
        """Someone else changed this object's spec, data or metadata since we wrote it."""
        return self.ours != self.fields


@dataclass(frozen=True)
class Kind:
    """An owned kind: where to watch it and what to keep beyond metadata."""

    kind: str
    api: str  # "api/v1", "apis/apps/v1"
    plural: str
    status: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # None: metadata only

    @property
    def metadata_only(self) -> bool:
        return self.status is None


def _statefulset_status(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status") or {}
    keep: dict[str, Any] = {k: status.get(k) for k in STATEFULSET_STATUS}
    claims = tuple(
        sorted(
            (
                (t.get("metadata") or {}).get("name", ""),
                str(
                    ((t.get("spec") or {}).get("resources") or {})
                    .get("requests", {})
                    .get("storage", "")
                ),
            )
            for t in (obj.get("spec") or {}).get("volumeClaimTemplates") or []
        )
    )
    if claims:
        keep["claims"] = claims
    return keep


def _service_status(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return {
        "type": spec.get("type"),
        "clusterIP": spec.get("clusterIP"),
        "lb": [i.get("ip") or i.get("hostname") for i in ingress],
    }


KINDS: tuple[Kind, ...] = (
    Kind("StatefulSet", "apis/apps/v1", "statefulsets", _statefulset_status),
    Kind("Service", "api/v1", "services", _service_status),
    Kind("ConfigMap", "api/v1", "configmaps"),
    Kind("Secret", "api/v1", "secrets"),
    Kind("Ingress", "apis/networking.k8s.io/v1", "ingresses"),
    Kind("CronJob", "apis/batch/v1", "cronjobs"),
    Kind("PodDisruptionBudget", "apis/policy/v1", "poddisruptionbudgets"),
    Kind("NetworkPolicy", "apis/networking.k8s.io/v1", "networkpolicies"),
)
BY_KIND = {k.kind: k for k in KINDS}


def version_of(meta: Mapping[str, Any]) -> int:
    try:
        return int(meta.get("resourceVersion") or 0)
    except ValueError:
        return 0


def field_owners(meta: Mapping[str, Any]) -> tuple[str, bool]:
    """(fingerprint of every field-manager entry outside status, whether one is not ours).

    Status writes (the StatefulSet controller, a load balancer) are left out: they change
    nothing we manage. A scale or an edit shows up as a new or changed entry.
    """
    entries = []
    foreign = False
    for entry in meta.get("managedFields") or []:
        if entry.get("subresource") == "status":
            continue
        entries.append(entry)
        foreign = foreign or entry.get("manager") != FIELD_MANAGER
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest(), foreign


# Shared by every Child that keeps no annotations or status (most of them): thousands of
# empty dicts would otherwise be a measurable part of a large fleet's memory.
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def make_child(kind: Kind, obj: Mapping[str, Any], ours: str | None) -> Child:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    fields, _ = field_owners(meta)
    generation = meta.get("generation")
    kept = {
        k: v
        for k, v in annotations.items()
        if k.startswith("mothership.io/") and k != HASH_ANNOTATION
    }
    return Child(
        kind=kind.kind,
        name=sys.intern(meta.get("name", "")),
        hash=annotations.get(HASH_ANNOTATION),
        annotations=kept or _EMPTY,
        status=kind.status(dict(obj)) if kind.status else _EMPTY,
        generation=int(generation) if generation is not None else None,
        version=version_of(meta),
        fields=fields,
        ours=ours,
        deleting=bool(meta.get("deletionTimestamp")),
        finalizers=tuple(sys.intern(f) for f in meta.get("finalizers") or ()),
    )


Listener = Callable[[Key, Child | None, Child | None], None]


class Registry:
    """Every owned object, by the Cluster it belongs to (its `cluster` label)."""

    def __init__(self) -> None:
        self._by_cluster: dict[Key, dict[tuple[str, str], Child]] = {}
        self._owner: dict[Ref, Key] = {}
        self._canonical: dict[Key, Key] = {}
        self.nodes: dict[str, str | None] = {}
        self.listeners: list[Listener] = []

    def _key(self, namespace: str, cluster: str) -> Key:
        """One tuple (and one copy of its strings) per cluster, however many children."""
        key = (namespace, cluster)
        known = self._canonical.get(key)
        if known is None:
            known = self._canonical[key] = (sys.intern(namespace), sys.intern(cluster))
        return known

    def of(self, key: Key) -> dict[tuple[str, str], Child]:
        """(kind, name) -> Child for one cluster, across every owned kind."""
        return dict(self._by_cluster.get(key) or {})

    def get(self, kind: str, namespace: str, name: str) -> Child | None:
        key = self._owner.get((kind, namespace, name))
        return (self._by_cluster.get(key) or {}).get((kind, name)) if key else None

    def clusters(self) -> int:
        return len(self._by_cluster)

    def __len__(self) -> int:
        return len(self._owner)

    def observe(self, kind: Kind, obj: Mapping[str, Any], *, written: bool = False) -> None:
        """Take in an object from a list, a watch event or our own write's response."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        cluster = (meta.get("labels") or {}).get("cluster")
        ref = (kind.kind, sys.intern(namespace), sys.intern(name))
        old = self.get(*ref)
        if not cluster:  # no longer ours to track (label removed)
            self._remove(ref, old)
            return
        version = version_of(meta)
        stale = old is not None and bool(version) and bool(old.version)
        if (
            stale
            and old is not None
            and (version < old.version or (version == old.version and not written))
        ):
            # What we hold is as new or newer. Our write's answer can arrive after the
            # watch has already shown later status updates: if nobody changed the
            # fields since, they are still the ones our write left.
            if written and old is not None and old.ours != old.fields:
                fields, _ = field_owners(meta)
                if fields == old.fields:
                    self._by_cluster[self._owner[ref]][(kind.kind, name)] = replace(
                        old, ours=fields
                    )
            return
        if written:
            child = make_child(kind, obj, None)
            child = replace(child, ours=child.fields)
        elif old is not None:
            child = make_child(kind, obj, old.ours)
        else:
            # First sight (start, relist, or the watch beat our write's response): clean
            # when nobody but us manages its fields.
            fields, foreign = field_owners(meta)
            child = make_child(kind, obj, None if foreign else fields)
        key = self._key(namespace, cluster)
        old_key = self._owner.get(ref)
        if old_key is not None and old_key != key:
            self._remove(ref, old)
            old = None
        self._owner[ref] = key
        self._by_cluster.setdefault(key, {})[(kind.kind, name)] = child
        if not written:  # the reconcile that wrote it knows already
            self._notify(key, old, child)

    def forget(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        """A DELETED event; ignored when we already hold something newer (recreated)."""
        meta = obj.get("metadata") or {}
        ref = (kind.kind, meta.get("namespace", ""), meta.get("name", ""))
        old = self.get(*ref)
        if old is None:
            return
        version = version_of(meta)
        if version and old.version and old.version > version:
            return
        self._remove(ref, old)

    def prune(self, kind: Kind, namespace: str | None, seen: set[Ref], listed_at: int) -> None:
        """After a relist: drop what the list did not contain and was not written since."""
        for ref in [r for r in self._owner if r[0] == kind.kind and r not in seen]:
            if namespace is not None and ref[1] != namespace:
                continue
            old = self.get(*ref)
            if old is not None and listed_at and old.version > listed_at:
                continue
            self._remove(ref, old)

    def _remove(self, ref: Ref, old: Child | None) -> None:
        key = self._owner.pop(ref, None)
        if key is None:
            return
        group = self._by_cluster.get(key) or {}
        group.pop((ref[0], ref[2]), None)
        if not group:
            self._by_cluster.pop(key, None)
            self._canonical.pop(key, None)
        self._notify(key, old, None)

    def _notify(self, key: Key, old: Child | None, new: Child | None) -> None:
        for listener in self.listeners:
            try:
                listener(key, old, new)
            except Exception:
                log.exception("listener failed for %s/%s", *key)


REGISTRY = Registry()


def children_of(key: Key) -> dict[tuple[str, str], Child]:
    """(kind, name) -> Child for one cluster, across every owned kind."""
    return REGISTRY.of(key)


def node_addresses(registry: Registry = REGISTRY) -> list[tuple[str, str | None]]:
    """(node name, ExternalIP or else InternalIP), sorted: where NodePorts answer."""
    return sorted(registry.nodes.items())


def observe_write(obj: Mapping[str, Any], registry: Registry = REGISTRY) -> None:
    """Record the API server's answer to one of our writes (apply or create)."""
    kind = BY_KIND.get(str(obj.get("kind")))
    if kind is not None:
        registry.observe(kind, obj, written=True)


# -- list + watch ----------------------------------------------------------------------


class Gone(Exception):
    """410: the resourceVersion we would resume from is compacted away; list again."""


class Sink(Protocol):
    """Where a watch delivers: the registry for owned kinds, the node table for nodes."""

    def observe(self, obj: dict[str, Any]) -> None: ...
    def forget(self, obj: dict[str, Any]) -> None: ...
    def prune(self, seen: set[Ref], listed_at: int) -> None: ...
    def ref(self, obj: dict[str, Any]) -> Ref: ...


class OwnedSink(Sink):
    def __init__(self, kind: Kind, namespace: str | None, registry: Registry) -> None:
        self.kind, self.namespace, self.registry = kind, namespace, registry

    def observe(self, obj: dict[str, Any]) -> None:
        self.registry.observe(self.kind, obj)

    def forget(self, obj: dict[str, Any]) -> None:
        self.registry.forget(self.kind, obj)

    def prune(self, seen: set[Ref], listed_at: int) -> None:
        self.registry.prune(self.kind, self.namespace, seen, listed_at)

    def ref(self, obj: dict[str, Any]) -> Ref:
        meta = obj.get("metadata") or {}
        return (self.kind.kind, meta.get("namespace", ""), meta.get("name", ""))


class NodeSink(Sink):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def observe(self, obj: dict[str, Any]) -> None:
        addrs = {
            a.get("type"): a.get("address")
            for a in (obj.get("status") or {}).get("addresses") or []
        }
        name = (obj.get("metadata") or {}).get("name", "")
        self.registry.nodes[name] = addrs.get("ExternalIP") or addrs.get("InternalIP")

    def forget(self, obj: dict[str, Any]) -> None:
        self.registry.nodes.pop((obj.get("metadata") or {}).get("name", ""), None)

    def prune(self, seen: set[Ref], listed_at: int) -> None:
        for name in [n for n in self.registry.nodes if ("Node", "", n) not in seen]:
            del self.registry.nodes[name]

    def ref(self, obj: dict[str, Any]) -> Ref:
        return ("Node", "", (obj.get("metadata") or {}).get("name", ""))


class Watch:
    """List, then watch from the list's resourceVersion with bookmarks; list again on 410."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        path: str,
        sink: Sink,
        *,
        selector: str | None,
        metadata_only: bool,
    ) -> None:
        self.http, self.path, self.sink = http, path, sink
        self.selector, self.metadata_only = selector, metadata_only
        self.synced = asyncio.Event()
        self.lists = 0
        self.failure: BaseException | None = None  # the last, until a list or watch succeeds

    @property
    def error(self) -> str:
        return f"{type(self.failure).__name__}: {self.failure}" if self.failure else ""

    def __repr__(self) -> str:
        return f"Watch({self.path})"

    async def run(self) -> None:
        version: str | None = None
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list()
                    self.synced.set()
                version = await self._watch(version)
                failures = 0
                self.failure = None
            except asyncio.CancelledError:
                raise
            except Gone:
                version = None
            except Exception as exc:
                failures += 1
                self.failure = exc
                if _status_code(exc) in (401, 403, 404) and not self.synced.is_set():
                    # Not allowed or not served: reconciles must not wait for it forever.
                    log.error("cannot list %s: %s; treating it as empty", self.path, exc)
                    self.synced.set()
                else:
                    log.warning("watch of %s failed (%s); retrying", self.path, exc)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _params(self) -> dict[str, str]:
        return {"labelSelector": self.selector} if self.selector else {}

    async def _list(self) -> str:
        params = {**self._params(), "limit": str(LIST_PAGE)}
        headers = {"Accept": META_LIST} if self.metadata_only else {}
        seen: set[Ref] = set()
        version = ""
        while True:
            resp = await self.http.get(self.path, params=params, headers=headers)
            if resp.status_code == 410:
                raise Gone()
            resp.raise_for_status()
            page = msgspec.json.decode(resp.content)
            del resp
            meta = page.get("metadata") or {}
            version = version or meta.get("resourceVersion", "")
            for item in page.get("items") or []:
                self.sink.observe(item)
                seen.add(self.sink.ref(item))
            cont = meta.get("continue")
            if not cont:
                break
            params["continue"] = cont
        self.lists += 1
        self.failure = None
        self.sink.prune(seen, _int(version))
        return version

    async def _watch(self, version: str) -> str:
        params = {
            **self._params(),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        headers = {"Accept": META_ONE} if self.metadata_only else {}
        timeout = httpx.Timeout(10.0, read=WATCH_SECONDS + 30.0)
        async with self.http.stream(
            "GET", self.path, params=params, headers=headers, timeout=timeout
        ) as resp:
            if resp.status_code == 410:
                raise Gone()
            resp.raise_for_status()
            self.failure = None  # watching again: the last failure is over
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = msgspec.json.decode(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED"):
                    self.sink.observe(obj)
                elif kind == "DELETED":
                    self.sink.forget(obj)
                version = rv or version
        return version


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _status_code(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


class Watches:
    """Every watch the operator keeps: owned kinds (per namespace when restricted) and nodes."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        namespaces: Iterable[str] = (),
        registry: Registry = REGISTRY,
        kinds: Iterable[Kind] = KINDS,
        selector: str = SELECTOR,
    ) -> None:
        self.http = http
        scopes: list[str | None] = list(namespaces) or [None]
        self.watches = [
            Watch(
                http,
                _path(kind, ns),
                OwnedSink(kind, ns, registry),
                selector=selector,
                metadata_only=kind.metadata_only,
            )
            for kind in kinds
            for ns in scopes
        ]
        self.watches.append(
            Watch(http, "/api/v1/nodes", NodeSink(registry), selector=None, metadata_only=False)
        )
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(w.run(), name=repr(w)) for w in self.watches]

    async def synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(w.synced.wait() for w in self.watches)), timeout=timeout
        )

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()


def _path(kind: Kind, namespace: str | None) -> str:
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"/{kind.api}{ns}/{kind.plural}"


def http_client(config: Any) -> httpx.AsyncClient:
    """An HTTP client for watches, with the operator's credentials (lightkube's config)."""
    from lightkube.config import client_adapter

    params = client_adapter.ConnectionParams(timeout=httpx.Timeout(30.0))
    return client_adapter.AsyncClient(config, params)
