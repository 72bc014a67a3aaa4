"""Control planes hosted in another cluster (``spec.remoteHostCluster.kubeconfigRef``).

The Cluster, its status, the users' kubeconfig Secret, the PKI of record and join tokens
stay in the mothership; every workload object of the control plane, and a copy of each
Secret its pods mount, is written in the hosting cluster through the kubeconfig the user
named. Owner references cannot cross clusters, so remote objects carry the Cluster's uid as
a label and are deleted explicitly when the Cluster goes.

One `RemoteHost` per distinct kubeconfig, not per Cluster: its API client, an Applier and a
registry fed by the same label-selected, metadata-only watches the mothership's own objects
have, so a hundred Clusters on one hosting cluster cost one set of watches, and memory grows
with the objects, not with the Clusters.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.batch_v1 import CronJob
from lightkube.resources.core_v1 import (
    ConfigMap,
    Namespace,
    PersistentVolumeClaim,
    Secret,
    Service,
)
from lightkube.resources.networking_v1 import Ingress, NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget

from mothership.controllers import children, tenant
from mothership.controllers.apply import Applier, get_or_none, owned_by
from mothership.render.names import FIELD_MANAGER, MANAGED_BY

log = logging.getLogger("mothership.remote")

UID_LABEL = "mothership.io/cluster-uid"
"""On every object in a hosting cluster: the uid of the Cluster it belongs to (what an
ownerReference says within one cluster), and the selector its deletion uses."""
MISSING_REASON = "RemoteKubeconfigMissing"
UNREACHABLE_REASON = "RemoteHostUnreachable"
CLEANUP_REASON = "RemoteCleanupFailed"
FIELD = "spec.remoteHostCluster.kubeconfigRef"
SYNC_SECONDS = 15.0
KUBECONFIG_SECONDS = 60.0
"""How long a kubeconfig read from its Secret is used before it is read again: a rotated
credential is picked up within this, a broken one at once (a failure drops it)."""
REQUEST_SECONDS = 10.0

RESOURCES: dict[str, Any] = {
    "StatefulSet": StatefulSet,
    "Service": Service,
    "ConfigMap": ConfigMap,
    "Secret": Secret,
    "Ingress": Ingress,
    "CronJob": CronJob,
    "PodDisruptionBudget": PodDisruptionBudget,
    "NetworkPolicy": NetworkPolicy,
}
"""Every kind the operator writes for a control plane (children.KINDS), as lightkube types."""


class RemoteProblem(Exception):
    """The hosting cluster cannot be used; said on the Cluster as Available=False."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class Ref:
    namespace: str
    name: str
    key: str

    def __str__(self) -> str:
        return f"Secret {self.namespace}/{self.name} (key {self.key}, named by {FIELD})"


def kubeconfig_ref(body: dict[str, Any]) -> Ref | None:
    """Where the hosting cluster's kubeconfig is, or None: the mothership hosts it."""
    ref = ((body.get("spec") or {}).get("remoteHostCluster") or {}).get("kubeconfigRef")
    if not isinstance(ref, dict) or not ref.get("name"):
        return None
    namespace = ref.get("namespace") or body["metadata"]["namespace"]
    return Ref(namespace, ref["name"], ref.get("key") or "value")


@dataclass
class Host:
    """Where a Cluster's workload objects live: the mothership, or a hosting cluster."""

    client: AsyncClient
    applier: Applier
    registry: children.Registry
    ref: Ref | None = None  # None: the mothership itself

    @property
    def remote(self) -> bool:
        return self.ref is not None

    def children_of(self, key: children.Key) -> dict[tuple[str, str], children.Child]:
        return self.registry.of(key)

    def place(self, obj: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
        """obj as it is written here: owned by the Cluster, or labelled with its uid."""
        if self.ref is None:
            return owned_by(obj, owner)
        meta = obj.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), UID_LABEL: owner["metadata"]["uid"]}
        return {**obj, "metadata": {**meta, "labels": labels}}


class RemoteHost:
    """One hosting cluster: client, applier, registry and watches, shared by its Clusters."""

    def __init__(self, ref: Ref, kubeconfig: str, listeners: list[children.Listener]) -> None:
        try:
            loaded = yaml.safe_load(kubeconfig)
            if not isinstance(loaded, dict):
                raise ValueError("not a YAML mapping")
            config = KubeConfig.from_dict(loaded)
            single = config.get()
        except (ValueError, ConfigError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise RemoteProblem(
                MISSING_REASON,
                f"{ref} does not hold a usable kubeconfig ({type(exc).__name__}: {exc}); put "
                "the hosting cluster's kubeconfig under that key",
            ) from exc
        self.ref = ref
        self.client = AsyncClient(
            config=config, field_manager=FIELD_MANAGER, timeout=httpx.Timeout(REQUEST_SECONDS)
        )
        self.registry = children.Registry()
        self.registry.listeners = listeners  # the operator's triggers, shared
        self.applier = Applier(self.client, self.registry)
        # Only objects a mothership placed for a Cluster (the uid label): a hosting cluster
        # that is a mothership itself has its own Clusters' objects, none of ours.
        self.watches = children.Watches(
            children.http_client(single),
            (),
            self.registry,
            selector=f"{children.SELECTOR},{UID_LABEL}",
        )
        self.users: set[children.Key] = set()
        self.namespaces: set[str] = set()  # known to exist there
        self.namespace_lock = asyncio.Lock()
        self.started = False

    def host(self, ref: Ref) -> Host:
        return Host(self.client, self.applier, self.registry, ref)

    async def ready(self, ref: Ref) -> None:
        """Wait (once, briefly) for the first list of every watch; RemoteProblem if it fails,
        or if a watch is failing now (the hosting cluster went away after it answered).

        Later calls do not wait: a hosting cluster that went away keeps its watches
        retrying in the background, and each reconcile meanwhile says so at once.
        """
        if not self.started:
            self.started = True
            self.watches.start()
            with suppress(TimeoutError):
                await self.watches.synced(SYNC_SECONDS)
        # Nodes only give a NodePort's address: a kubeconfig limited to namespaces still works.
        owned = [w for w in self.watches.watches if w.path != "/api/v1/nodes"]
        failed = [w for w in owned if w.failure]
        waiting = [w for w in owned if not w.synced.is_set()]
        if failed or waiting:
            cause = next((w.failure for w in failed + waiting if w.failure), None)
            error = explain(cause) if cause else f"no answer within {SYNC_SECONDS:.0f} s"
            raise RemoteProblem(UNREACHABLE_REASON, unreachable(ref, error))

    async def ensure_namespace(self, namespace: str) -> None:
        """The Cluster's namespace exists in the hosting cluster (made if not; never deleted:
        other things of the user's may live in it)."""
        if namespace in self.namespaces:
            return
        async with self.namespace_lock:  # one create, not one per Cluster starting at once
            await self._ensure_namespace(namespace)

    async def _ensure_namespace(self, namespace: str) -> None:
        if namespace in self.namespaces:
            return
        if await get_or_none(self.client, Namespace, namespace, "") is None:
            try:
                await self.client.create(
                    Namespace(
                        metadata=ObjectMeta(
                            name=namespace,
                            labels={"app.kubernetes.io/created-by": MANAGED_BY},
                        )
                    )
                )
            except ApiError as exc:
                if exc.status.code != 409:
                    raise
        self.namespaces.add(namespace)

    async def stop(self) -> None:
        if self.started:
            await self.watches.stop()
        else:
            await self.watches.http.aclose()
        await self.client.close()


@dataclass
class RemoteHosts:
    """Every hosting cluster in use, by the kubeconfig that reaches it."""

    listeners: list[children.Listener] = field(default_factory=list)
    by_digest: dict[str, RemoteHost] = field(default_factory=dict)
    of_cluster: dict[children.Key, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    texts: dict[Ref, tuple[float, str]] = field(default_factory=dict)  # (read at, kubeconfig)

    def children_of(self, key: children.Key) -> dict[tuple[str, str], children.Child]:
        """What a reconcile last knew of the Cluster's remote objects (no I/O): empty for a
        Cluster the mothership hosts, or one not reconciled since the operator started."""
        digest = self.of_cluster.get(key)
        remote = self.by_digest.get(digest) if digest else None
        return remote.registry.of(key) if remote else {}

    def nodes(self, key: children.Key) -> list[tuple[str, str | None]]:
        digest = self.of_cluster.get(key)
        remote = self.by_digest.get(digest) if digest else None
        return children.node_addresses(remote.registry) if remote else []

    async def host_for(self, client: AsyncClient, body: dict[str, Any], ref: Ref) -> Host:
        """The hosting cluster of this Cluster, ready to be written to; RemoteProblem if the
        Secret is missing or unusable, or the cluster does not answer."""
        meta = body["metadata"]
        key: children.Key = (meta["namespace"], meta["name"])
        try:
            return await self._host_for(client, key, ref)
        except RemoteProblem:
            self.texts.pop(ref, None)  # the Secret may be what is wrong: read it next time
            raise

    async def _kubeconfig(self, client: AsyncClient, ref: Ref) -> str:
        """The Secret's kubeconfig, read at most once per KUBECONFIG_SECONDS for all the
        Clusters naming it: a full reconcile pass would otherwise read it every time."""
        cached = self.texts.get(ref)
        now = time.monotonic()
        if cached is not None and now - cached[0] < KUBECONFIG_SECONDS:
            return cached[1]
        text = await read_kubeconfig(client, ref)
        self.texts[ref] = (now, text)
        return text

    async def _host_for(self, client: AsyncClient, key: children.Key, ref: Ref) -> Host:
        kubeconfig = await self._kubeconfig(client, ref)
        digest = hashlib.sha256(kubeconfig.encode()).hexdigest()
        async with self.lock:
            remote = self.by_digest.get(digest)
            if remote is None:
                remote = self.by_digest[digest] = RemoteHost(ref, kubeconfig, self.listeners)
            previous = self.of_cluster.get(key)
            remote.users.add(key)
            self.of_cluster[key] = digest
        if previous is not None and previous != digest:  # the Secret's kubeconfig changed
            await self._drop_user(previous, key)
        await remote.ready(ref)
        try:
            await remote.ensure_namespace(key[0])
        except httpx.TransportError as exc:
            raise RemoteProblem(UNREACHABLE_REASON, unreachable(ref, explain(exc))) from exc
        except ApiError as exc:
            raise RemoteProblem(
                UNREACHABLE_REASON,
                unreachable(ref, f"namespace {key[0]}: {exc.status.code} "
                            f"{exc.status.reason} {exc.status.message}"),
            ) from exc  # fmt: skip
        return remote.host(ref)

    async def release(self, key: children.Key) -> None:
        """The Cluster is gone: its hosting cluster's watches stop with its last Cluster."""
        digest = self.of_cluster.pop(key, None)
        if digest is not None:
            await self._drop_user(digest, key)

    async def _drop_user(self, digest: str, key: children.Key) -> None:
        remote = self.by_digest.get(digest)
        if remote is None:
            return
        remote.users.discard(key)
        if not remote.users:
            del self.by_digest[digest]
            await remote.stop()
            log.info("no Cluster left on %s: its watches stopped", remote.ref)

    async def stop(self) -> None:
        for remote in list(self.by_digest.values()):
            await remote.stop()
        self.by_digest.clear()
        self.of_cluster.clear()


def explain(exc: BaseException) -> str:
    """A failure of the hosting cluster in words that stay the same from one try to the next
    (the condition message must not change on every resync)."""
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        meaning = {401: "the credentials are not accepted", 403: "the credentials may not list "
                   f"{exc.request.url.path.rsplit('/', 1)[-1]}"}.get(code, "")  # fmt: skip
        return f"{code} {exc.response.reason_phrase}" + (f" ({meaning})" if meaning else "")
    if "all connection attempts failed" in str(exc).lower():
        return "no connection (refused, or no route to the server)"
    return tenant.describe(exc)


def unreachable(ref: Ref, error: str) -> str:
    return (
        f"the hosting cluster in {ref} cannot be used: {error}; check that its kubeconfig "
        "names a reachable API server and credentials that may manage StatefulSets, Services, "
        "ConfigMaps and Secrets there"
    )


async def read_kubeconfig(client: AsyncClient, ref: Ref) -> str:
    try:
        secret = await client.get(Secret, ref.name, namespace=ref.namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            raise RemoteProblem(
                MISSING_REASON,
                f"{ref} does not exist; create it with the hosting cluster's kubeconfig "
                f"under key {ref.key}",
            ) from exc
        if exc.status.code == 403:
            raise RemoteProblem(
                MISSING_REASON,
                f"{ref} cannot be read by the operator ({exc.status.message}); grant it get "
                "on Secrets in that namespace",
            ) from exc
        raise
    data = secret.data or {}
    if ref.key not in data:
        raise RemoteProblem(
            MISSING_REASON,
            f"{ref} has no key {ref.key} (it has: {', '.join(sorted(data)) or 'none'}); put "
            "the hosting cluster's kubeconfig there",
        )
    try:
        return base64.b64decode(data[ref.key]).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProblem(MISSING_REASON, f"{ref} is not a text kubeconfig: {exc}") from exc


@contextmanager
def reaching(host: Host) -> Iterator[None]:
    """Turn a transport failure on the way to a hosting cluster into a RemoteProblem."""
    try:
        yield
    except httpx.TransportError as exc:
        if host.ref is None:
            raise
        raise RemoteProblem(UNREACHABLE_REASON, unreachable(host.ref, explain(exc))) from exc


async def remove(host: Host, body: dict[str, Any], claims_of: Iterable[str]) -> int:
    """Delete every object of this Cluster in the hosting cluster (by its uid label), and
    the volume claims of the components listed in `claims_of`. Returns how many went."""
    meta = body["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    deleted = 0
    for resource in RESOURCES.values():
        async for obj in host.client.list(resource, namespace=namespace, labels={UID_LABEL: uid}):
            if obj.metadata and obj.metadata.name:
                await _delete(host.client, resource, obj.metadata.name, namespace)
                deleted += 1
    for component in claims_of:
        labels = {"cluster": meta["name"], "component": component}
        async for pvc in host.client.list(
            PersistentVolumeClaim, namespace=namespace, labels=labels
        ):
            if pvc.metadata and pvc.metadata.name:
                await _delete(host.client, PersistentVolumeClaim, pvc.metadata.name, namespace)
                deleted += 1
    return deleted


async def _delete(client: AsyncClient, resource: Any, name: str, namespace: str) -> None:
    try:
        await client.delete(resource, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            raise
