"""One active operator at a time, by a coordination.k8s.io Lease.

Standby replicas wait for the Lease and answer their liveness probe meanwhile; the
holder renews it and stops (so it is restarted and queues up again) the moment it cannot
prove it still holds it, which is the only safe reaction to a lost lease.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

log = logging.getLogger("mothership.leader")
LEASE_NAME = "mothership-operator"


def _now() -> datetime:
    return datetime.now(UTC)


def _expired(lease: Lease, now: datetime) -> bool:
    spec = lease.spec
    if not spec or not spec.holderIdentity or not spec.renewTime:
        return True
    duration = timedelta(seconds=spec.leaseDurationSeconds or 15)
    renewed = spec.renewTime
    if renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=UTC)
    return renewed + duration < now


async def try_acquire(client: AsyncClient, namespace: str, identity: str, duration: int) -> bool:
    now = _now()
    try:
        lease = await client.get(Lease, LEASE_NAME, namespace=namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            raise
        lease = Lease(
            metadata=ObjectMeta(name=LEASE_NAME, namespace=namespace),
            spec=LeaseSpec(
                holderIdentity=identity,
                leaseDurationSeconds=duration,
                acquireTime=now,
                renewTime=now,
                leaseTransitions=0,
            ),
        )
        try:
            await client.create(lease)
            return True
        except ApiError as conflict:
            if conflict.status.code == 409:
                return False
            raise
    spec = lease.spec
    assert spec is not None  # our Leases are created with a spec
    if spec.holderIdentity != identity and not _expired(lease, now):
        return False
    if spec.holderIdentity != identity:
        spec.leaseTransitions = (spec.leaseTransitions or 0) + 1
        spec.acquireTime = now
    spec.holderIdentity = identity
    spec.leaseDurationSeconds = duration
    spec.renewTime = now
    try:
        await client.replace(lease)  # carries resourceVersion: a concurrent taker loses
        return True
    except ApiError as exc:
        if exc.status.code == 409:
            return False
        raise


async def acquire(
    client: AsyncClient, namespace: str, identity: str, duration: int = 15, retry: float = 2.0
) -> None:
    logged = False
    while True:
        try:
            if await try_acquire(client, namespace, identity, duration):
                break
        except Exception as exc:
            # A standby outlives API hiccups: dying here would only restart the wait
            # (and count as a crash of a healthy pod).
            log.warning("checking lease %s/%s failed, retrying: %s", namespace, LEASE_NAME, exc)
        else:
            if not logged:
                log.info(
                    "waiting for lease %s/%s (another operator is active)", namespace, LEASE_NAME
                )
                logged = True
        await asyncio.sleep(retry)
    log.info("acquired lease %s/%s as %s", namespace, LEASE_NAME, identity)


async def hold(
    client: AsyncClient,
    namespace: str,
    identity: str,
    lost: asyncio.Event,
    duration: int = 15,
    renew_every: float = 5.0,
) -> None:
    """Renew until it fails for longer than the lease lasts; then set `lost`."""
    last_ok = asyncio.get_running_loop().time()
    while not lost.is_set():
        await asyncio.sleep(renew_every)
        try:
            if await try_acquire(client, namespace, identity, duration):
                last_ok = asyncio.get_running_loop().time()
                continue
            log.error("lease %s/%s was taken over; stopping", namespace, LEASE_NAME)
        except Exception as exc:  # API unreachable: keep trying until the lease would lapse
            log.warning("renewing lease failed: %s", exc)
            if asyncio.get_running_loop().time() - last_ok < duration - renew_every:
                continue
            log.error("could not renew lease %s/%s in time; stopping", namespace, LEASE_NAME)
        lost.set()


async def release(client: AsyncClient, namespace: str, identity: str) -> None:
    """Hand the lease over at once on a clean shutdown instead of letting it expire."""
    try:
        lease = await client.get(Lease, LEASE_NAME, namespace=namespace)
        if lease.spec and lease.spec.holderIdentity == identity:
            lease.spec.holderIdentity = None
            lease.spec.renewTime = None
            await client.replace(lease)
    except ApiError:
        pass
