"""Run the operator: kopf for watches and serialisation, lightkube for every write.

Resync is one loop over an index of Clusters rather than a kopf timer per object: one
task instead of thousands, and no kopf finalizer on the user's objects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf
from lightkube import AsyncClient, KubeConfig

from mothership.controllers import cluster, join_token
from mothership.controllers.apply import Applier
from mothership.render.names import FIELD_MANAGER
from mothership.webhooks.runtime import WebhookConfig, WebhookService

__all__ = ["WebhookConfig", "start_webhook_service"]

log = logging.getLogger("mothership.operator")


RESYNC_CONCURRENCY = 8


@kopf.index(cluster.GROUP, cluster.VERSION, cluster.PLURAL)
def clusters(namespace: str, name: str, **_: Any) -> dict[tuple[str, str], bool]:
    return {(namespace, name): True}


@kopf.on.login()
def login(**kw: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kw) or kopf.login_with_kubeconfig(**kw)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Two workers for key generation: enough for two cores, and few thread arenas.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="pki")
    )
    client = AsyncClient(config=KubeConfig.from_env(), field_manager=FIELD_MANAGER)
    resync = float(getattr(memo, "resync_seconds", 60.0))
    cluster.RUNTIME = cluster.Runtime(client=client, applier=Applier(client), resync_seconds=resync)


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, **_: Any) -> None:
    memo.resync_task = asyncio.create_task(_resync_forever())


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
    task = getattr(memo, "resync_task", None)
    if task:
        task.cancel()
    if cluster.RUNTIME:
        await cluster.RUNTIME.client.close()


async def _resync_forever() -> None:
    """Re-reconcile every Cluster periodically: repairs drift nobody sent an event for."""
    while True:
        rt = cluster.runtime()
        await asyncio.sleep(rt.resync_seconds)
        await resync_once()


async def resync_once() -> None:
    """One pass over every Cluster and JoinTokenRequest, a few at a time."""
    from lightkube.core.exceptions import ApiError

    rt = cluster.runtime()
    indexes = cluster.INDEXES
    sem = asyncio.Semaphore(RESYNC_CONCURRENCY)

    async def one(kind: str, key: tuple[str, str]) -> None:
        async with sem:
            try:
                if kind == "cluster":
                    obj = await rt.client.get(cluster.ClusterResource, key[1], namespace=key[0])
                    await cluster.reconcile(obj.to_dict(), indexes)
                else:
                    obj = await rt.client.get(join_token.JTRResource, key[1], namespace=key[0])
                    await join_token.reconcile(obj.to_dict())
            except ApiError as exc:
                if exc.status.code != 404:
                    log.warning("resync of %s %s/%s failed: %s", kind, *key, exc)
            except Exception:
                log.exception("resync of %s %s/%s failed", kind, *key)

    work = [("cluster", k) for k in list((indexes.get("clusters") or {}).keys())]
    work += [("jtr", k) for k in list((indexes.get("jointokenrequests") or {}).keys())]
    await asyncio.gather(*(one(kind, key) for kind, key in work))
