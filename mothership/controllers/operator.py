"""Run the operator: kopf for Cluster and JoinTokenRequest events, lightkube for writes.

Owned objects are watched by children.py (label-selected, metadata-only where it can),
not by kopf: their changes land in a small queue that reconciles each affected Cluster
once, however many of its children changed meanwhile. Resync is one loop over a paged
list of Clusters rather than a kopf timer per object: one task instead of thousands, no
kopf finalizer on the user's objects, and no per-Cluster GET.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from typing import Any

import kopf
from lightkube import AsyncClient, KubeConfig

from mothership import heap_trim
from mothership.controllers import (
    children,
    cluster,
    controlplane,
    datastore,
    datastore_tenant,
    join_token,
    remote_machine,
    runtime,
    worker_bootstrap,
)
from mothership.controllers.apply import Applier
from mothership.render.names import FIELD_MANAGER
from mothership.webhooks.runtime import WebhookConfig, WebhookService

__all__ = ["WebhookConfig", "start_webhook_service"]

log = logging.getLogger("mothership.operator")


RESYNC_CONCURRENCY = 8
RESYNC_PAGE = 100
# Reconciles kopf runs at once (Cluster events); each holds a Cluster, its render and
# maybe a key generation: the bound keeps a burst of creations from piling up in memory.
KOPF_WORKERS = 16
CHILD_WORKERS = 4
# A child's changes come in bursts (a pod created, then ready; a Service, then its
# address): waiting this long after the first folds a burst into one reconcile and at
# most one status write. A StatefulSet gaining its first ready replica, or losing its
# last, is not held: Available follows it at once (that second was a seventh of the time
# from apply to Available).
CHILD_SETTLE_SECONDS = 1.0
SYNC_TIMEOUT = 30.0  # between reports of a slow first list


class KopfEvents:
    """Lets our own tasks post Kubernetes Events with kopf.info/kopf.warn.

    kopf routes those through a queue it names in context variables, which it sets only
    inside its own handlers. Reconciles started by our tasks (child triggers, resync) take
    them over from the first handler call; until then they wait, and there is nothing to
    reconcile before kopf has seen a Cluster or JoinTokenRequest anyway.
    """

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.values: tuple[Any, Any] | None = None

    def capture(self) -> None:
        if self.values is None:
            from kopf._core.engines import posting

            self.values = (posting.event_queue_loop_var.get(), posting.event_queue_var.get())
            self.ready.set()

    async def adopt(self) -> None:
        """Set kopf's event queue in the calling task's context."""
        from kopf._core.engines import posting

        await self.ready.wait()
        assert self.values is not None
        posting.event_queue_loop_var.set(self.values[0])
        posting.event_queue_var.set(self.values[1])


KOPF_EVENTS = KopfEvents()


@kopf.on.event(cluster.GROUP, cluster.VERSION, cluster.PLURAL)
@kopf.on.event(join_token.GROUP, join_token.VERSION, join_token.PLURAL)
@kopf.on.event(controlplane.GROUP, controlplane.VERSION, controlplane.PLURAL)
@kopf.on.event(worker_bootstrap.GROUP, worker_bootstrap.VERSION, worker_bootstrap.PLURAL)
@kopf.on.event(remote_machine.GROUP, remote_machine.VERSION, remote_machine.PLURAL)
@kopf.on.event(datastore.GROUP, datastore.VERSION, datastore.PLURAL)
def capture_event_queue(**_: Any) -> None:
    KOPF_EVENTS.capture()


# Niceness of the threads that make keys: behind the webhook server (a child process at
# the operator's own priority) and everything else on the node. Admission answers a user
# now; a key made 100 ms later delays a Cluster nobody waits on by the millisecond.
PKI_NICENESS = 10


def yield_the_cpu() -> None:
    """Lower the calling thread's priority (Linux: niceness is per thread, and threads
    made by it inherit it; the operator's other threads and its children keep theirs)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PKI_NICENESS)
    except OSError as exc:  # not Linux, or a sandbox refusing it: run at the usual priority
        log.debug("could not lower the key threads' priority: %s", exc)


@kopf.on.login()
def login(**kw: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kw) or kopf.login_with_kubeconfig(**kw)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.queueing.worker_limit = KOPF_WORKERS
    # Two workers for key generation: enough for two cores, and few thread arenas.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="pki", initializer=yield_the_cpu
        )
    )
    config = KubeConfig.from_env()
    client = AsyncClient(config=config, field_manager=FIELD_MANAGER)
    resync = float(getattr(memo, "resync_seconds", 60.0))
    runtime.RUNTIME = runtime.Runtime(client=client, applier=Applier(client), resync_seconds=resync)
    namespaces = tuple(getattr(memo, "namespaces", ()) or ())
    memo.triggers = Triggers(CHILD_WORKERS)
    memo.triggers.start()
    children.REGISTRY.listeners.append(memo.triggers.on_child)
    datastore_tenant.STORE_CHANGED.append(memo.triggers.add)
    runtime.RUNTIME.remotes.listeners.append(memo.triggers.on_child)  # hosting clusters' too
    memo.watches = children.Watches(children.http_client(config.get()), namespaces)
    memo.watches.start()
    # kopf starts its watches after the startup handlers: no Cluster is reconciled
    # against a registry that has not seen every owned object yet.
    while True:
        try:
            await memo.watches.synced(SYNC_TIMEOUT)
            break
        except TimeoutError:
            waiting = [repr(w) for w in memo.watches.watches if not w.synced.is_set()]
            log.warning("still listing owned objects: %s", ", ".join(waiting))
    log.info("watching %d owned objects of %d clusters", len(children.REGISTRY),
             children.REGISTRY.clusters())  # fmt: skip


class Triggers:
    """Reconcile the Cluster whose child changed: once per burst, by a few workers.

    A Cluster already waiting in the queue is not queued again, so a StatefulSet that
    reports five status changes while its Cluster waits costs one reconcile. A change of
    serving (see `serving_changed`) is reconciled at once, beside the queue: it is rare (once
    per start or outage) and it is what users wait for.
    """

    def __init__(self, workers: int, settle: float = CHILD_SETTLE_SECONDS) -> None:
        self.workers = workers
        self.settle = settle
        self.pending: set[children.Key] = set()
        self.queue: asyncio.Queue[tuple[float, children.Key]] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []
        self.urgent: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    def on_child(
        self, key: children.Key, old: children.Child | None, new: children.Child | None
    ) -> None:
        if serving_changed(old, new):
            task = asyncio.get_running_loop().create_task(self._at_once(key))
            self.urgent.add(task)
            task.add_done_callback(self.urgent.discard)
        elif wants_reconcile(old, new):
            self.add(key)

    def add(self, key: children.Key) -> None:
        if key not in self.pending:
            self.pending.add(key)
            self.queue.put_nowait((time.monotonic() + self.settle, key))

    async def _work(self) -> None:

        await KOPF_EVENTS.adopt()
        while True:
            due, key = await self.queue.get()
            await asyncio.sleep(due - time.monotonic())
            self.pending.discard(key)
            await self._reconcile(key)

    async def _at_once(self, key: children.Key) -> None:
        """Reconcile now; if the tenant API did not answer yet (a Service route a moment
        behind the pod's readiness, say), once more after the settle time, as before."""
        await KOPF_EVENTS.adopt()
        await self._reconcile(key)
        if not runtime.runtime().probes.answered(key):
            self.add(key)

    async def _reconcile(self, key: children.Key) -> None:
        from lightkube.core.exceptions import ApiError

        try:
            rt = runtime.runtime()
            obj = await rt.client.get(cluster.ClusterResource, key[1], namespace=key[0])
            await cluster.reconcile(obj.to_dict())
        except ApiError as exc:
            if exc.status.code != 404:
                log.warning("reconcile of %s/%s after a child changed: %s", *key, exc)
        except Exception:
            log.exception("reconcile of %s/%s after a child changed failed", *key)

    async def stop(self) -> None:
        tasks = [*self.tasks, *self.urgent]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def serving_changed(old: children.Child | None, new: children.Child | None) -> bool:
    """A StatefulSet got its first ready replica or lost its last one."""
    if old is None or new is None or new.kind != "StatefulSet":
        return False
    was = (old.status.get("readyReplicas") or 0) >= 1
    return was != ((new.status.get("readyReplicas") or 0) >= 1)


def wants_reconcile(old: children.Child | None, new: children.Child | None) -> bool:
    """Deleted, changed by someone else, or a status the Cluster's status depends on."""
    if new is None:
        return True
    if new.drifted:
        return True
    if new.kind in ("StatefulSet", "Service"):
        return old is None or old.status != new.status or old.deleting != new.deleting
    return False


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, **_: Any) -> None:
    namespaces = tuple(getattr(memo, "namespaces", ()) or ())
    memo.resync_task = asyncio.create_task(_resync_forever(namespaces))


@kopf.on.startup()
async def start_heap_trim(memo: kopf.Memo, **_: Any) -> None:
    memo.trim_task = asyncio.create_task(heap_trim.trim_forever())


async def start_webhook_service(config: WebhookConfig) -> WebhookService:
    """Serve admission and conversion, and register them with the API server.

    Started before the leader election, by every replica: the Service in front of the
    webhooks picks any ready pod, and admission must not pause while leadership moves.
    Registration is repeated on every start (idempotent SSA): the caBundle follows the
    certificates this instance serves, and re-applied CRDs get their conversion back.
    """
    service = WebhookService(config)
    try:
        await service.start()
    except BaseException:
        await service.stop(unregister=False)
        raise
    assert service.runner is not None
    log.info(
        "webhooks served on %s:%s (registration: %s)",
        config.host,
        service.runner.port,
        "done" if service.registered else "pending",
    )
    return service


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for name in ("resync_task", "trim_task"):
        task = getattr(memo, name, None)
        if task:
            task.cancel()
    triggers = getattr(memo, "triggers", None)
    if triggers:
        children.REGISTRY.listeners.remove(triggers.on_child)
        datastore_tenant.STORE_CHANGED.remove(triggers.add)
        await triggers.stop()
    watches = getattr(memo, "watches", None)
    if watches:
        await watches.stop()
    if runtime.RUNTIME:
        await runtime.RUNTIME.remotes.stop()
        await runtime.RUNTIME.client.close()


async def _resync_forever(namespaces: tuple[str, ...] = ()) -> None:
    """Re-reconcile every Cluster periodically: repairs drift nobody sent an event for."""
    await KOPF_EVENTS.adopt()
    while True:
        rt = runtime.runtime()
        await asyncio.sleep(rt.resync_seconds)
        try:
            await resync_once(namespaces)
        except Exception:
            log.exception("resync pass failed")


async def resync_once(namespaces: tuple[str, ...] = ()) -> None:
    """One pass over every Cluster and JoinTokenRequest, a page and a few at a time.

    The objects come from a paged LIST: no GET per Cluster, and at most a page of them
    in memory while their reconciles run.
    """
    from lightkube.core.exceptions import ApiError

    rt = runtime.runtime()
    sem = asyncio.Semaphore(RESYNC_CONCURRENCY)

    async def one(kind: str, obj: dict[str, Any]) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        try:
            if kind == "cluster":
                await cluster.reconcile(obj)
            elif kind == "controlplane":
                await controlplane.reconcile(obj)
            elif kind == "bootstrap":
                await worker_bootstrap.reconcile(obj)
            elif kind == "remotemachine":
                await remote_machine.reconcile(obj)
            elif kind == "datastore":
                await datastore.reconcile(obj)
            else:
                await join_token.reconcile(obj)
        except ApiError as exc:
            if exc.status.code != 404:
                log.warning("resync of %s %s/%s failed: %s", kind, *key, exc)
        except Exception:
            log.exception("resync of %s %s/%s failed", kind, *key)
        finally:
            sem.release()

    kinds = (
        ("cluster", cluster.ClusterResource),
        ("jtr", join_token.JTRResource),
        ("controlplane", controlplane.ControlPlaneResource),
        ("bootstrap", worker_bootstrap.ConfigResource),
        ("remotemachine", remote_machine.RemoteMachineResource),
        # Last: a DataStore being deleted waits for the Clusters released just before.
        ("datastore", datastore.DataStoreResource),
    )
    for kind, resource in kinds:
        running: list[asyncio.Task[None]] = []
        # A DataStore is cluster-scoped: one list, whichever namespaces are watched.
        scopes = (None,) if kind == "datastore" else namespaces or ("*",)
        for namespace in scopes:
            items = rt.client.list(
                resource,  # type: ignore[type-var]  # a global one is listed with namespace None
                namespace=namespace,
                chunk_size=RESYNC_PAGE,
            )
            try:
                async for item in items:
                    await sem.acquire()
                    running.append(asyncio.create_task(one(kind, item.to_dict())))
                    running = [t for t in running if not t.done()]
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                # The kind's CRD is not installed (Cluster API kinds are optional).
                log.debug("resync: no %s served here", kind)
        await asyncio.gather(*running)
