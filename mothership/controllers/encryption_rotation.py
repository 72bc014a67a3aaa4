"""Rotating a tenant's encryption-at-rest key, one step per reconcile (render/encryption.py
says why the steps are what they are).

The record of a rotation is on the key Secret itself (which request, which step), written
in the same patch as the keys: an operator killed between two steps finds the rotation
where the last write left it, and no key is ever made twice or dropped early. A step that
waits for the roll is taken by the reconcile the StatefulSet's status change starts.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from mothership.controllers import children, events, metrics, remote_host, tenant
from mothership.controllers.runtime import runtime
from mothership.render import encryption, names

REASON = "EncryptionKeyRotation"
REWRITE_PAGE = 200
# Clusters whose rewrite failed: their next reconcile must run even if nothing they look
# at changed (the tenant's API coming back is no event the operator sees).
RETRY: set[children.Key] = set()


def due(key: children.Key) -> bool:
    return key in RETRY


def forget(key: children.Key) -> None:
    RETRY.discard(key)


def requested(body: dict[str, Any]) -> str | None:
    return ((body.get("metadata") or {}).get("annotations") or {}).get(encryption.ROTATE_ANNOTATION)


def rolled(sts: children.Child | None, config_revision: str) -> bool:
    """Every replica of the control plane started with this config (and is ready)."""
    if sts is None or sts.annotations.get(encryption.REVISION_ANNOTATION) != config_revision:
        return False
    status = sts.status
    replicas = status.get("replicas")
    return (
        status.get("observedGeneration") == sts.generation
        and status.get("currentRevision") == status.get("updateRevision")
        and replicas is not None
        and status.get("updatedReplicas") == replicas
        and status.get("readyReplicas") == replicas
    )


async def advance(body: dict[str, Any], owned: dict[tuple[str, str], children.Child]) -> bool:
    """Take the next step of a requested rotation if its time has come; True when the key
    Secret was written (the caller renders with its new revision)."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    key: children.Key = (namespace, name)
    child = owned.get(("Secret", names.encryption_secret(name)))
    if child is None:
        return False  # no key of ours (the user's k0sConfig names their own), or not yet
    handled = child.annotations.get(encryption.ROTATION_ANNOTATION)
    step = child.annotations.get(encryption.STEP_ANNOTATION)
    request = requested(body)
    busy = bool(handled) and step in (encryption.ADDED, encryption.PROMOTED)
    if not busy and (not request or request == handled):
        return False  # the common case, decided without reading the Secret
    if remote_host.kubeconfig_ref(body) is not None:
        events.warn(
            body,
            reason=REASON,
            message="key rotation is not supported yet for a control plane hosted in another "
            "cluster (spec.remoteHostCluster); nothing was changed",
        )
        return False
    client = runtime().client
    current = await client.get(Secret, names.encryption_secret(name), namespace=namespace)
    text = base64.b64decode((current.data or {})[encryption.CONFIG_KEY]).decode()
    now = datetime.now(UTC)
    plan = encryption.next_rotation(
        request,
        handled,
        step,
        encryption.keys_of(text),
        (encryption.key_name(now), os.urandom(encryption.KEY_BYTES)),
    )
    if plan is None:
        return False
    sts = owned.get(("StatefulSet", names.statefulset(name)))
    if plan.after_roll and not rolled(sts, encryption.revision(text)):
        return False  # the StatefulSet's status change brings us back
    if plan.rewrite:
        try:
            count = await rewrite_secrets((namespace, name))
        except Exception as exc:  # the tenant's API away: the next resync tries again
            RETRY.add(key)
            events.warn(
                body,
                reason=REASON,
                message=f"rewriting the tenant's Secrets with key {plan.keys[0][0]} failed "
                f"({tenant.describe(exc)}); tried again, the old key is kept until then",
            )
            return False
        RETRY.discard(key)
        events.info(
            body,
            reason=REASON,
            message=f"{count} tenant Secrets rewritten with key {plan.keys[0][0]}",
        )
    await _write(client, current, plan)
    events.info(body, reason=REASON, message=_said(plan))
    return True


def _said(plan: encryption.Rotation) -> str:
    first = plan.keys[0][0]
    if plan.step == encryption.ADDED:
        return (
            f"key {plan.keys[-1][0]} added for reading; {first} still writes "
            "(the control plane rolls, then the new key writes)"
        )
    if plan.step == encryption.PROMOTED:
        return f"key {first} now writes; the others only read (the control plane rolls)"
    return f"rotation done: only key {first} is kept (the control plane rolls)"


async def _write(client: AsyncClient, current: Secret, plan: encryption.Rotation) -> None:
    """The keys and the record in one patch, on the version read (a concurrent edit: 409,
    and the next reconcile starts again from what is there)."""
    assert current.metadata is not None
    text = encryption.config_text(plan.keys)
    patch = {
        "metadata": {
            "resourceVersion": current.metadata.resourceVersion,
            "annotations": {
                encryption.ROTATION_ANNOTATION: plan.request,
                encryption.STEP_ANNOTATION: plan.step,
                encryption.REVISION_ANNOTATION: encryption.revision(text),
            },
        },
        "data": {encryption.CONFIG_KEY: base64.b64encode(text.encode()).decode()},
    }
    result = await client.patch(
        Secret,
        current.metadata.name or "",
        patch,
        namespace=current.metadata.namespace,
        patch_type=PatchType.MERGE,
    )
    metrics.WRITES.labels(kind="Secret").inc()
    children.observe_write(result.to_dict())


async def rewrite_secrets(key: tuple[str, str]) -> int:
    """Every Secret of the tenant written again unchanged: its API server stores each one
    that the new key did not write (read with another key: stale) encrypted with the new
    one. A Secret changed or deleted meanwhile was written or is gone anyway."""
    rt = runtime()
    client = tenant.client_for(await tenant.kubeconfig_text(rt, key), timeout=30.0)
    count = 0
    try:
        async for secret in client.list(Secret, namespace="*", chunk_size=REWRITE_PAGE):
            assert secret.metadata is not None
            try:
                await client.replace(secret)
            except ApiError as exc:
                if exc.status.code not in (404, 409):
                    raise
            count += 1
    finally:
        await client.close()
    return count
