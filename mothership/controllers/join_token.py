"""The JoinTokenRequest reconciler: a bootstrap token in the tenant, a join token here.

Everything goes through the tenant's kubeconfig (no exec into pods). Until the tenant
API answers, a condition says so and the resync loop retries.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from typing import Any

import kopf
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType
from pydantic import ValidationError

from mothership.api.k0smotron import v1beta2
from mothership.controllers import events, join_token_use, metrics, tenant
from mothership.controllers.apply import get_or_none, owned_by
from mothership.controllers.cluster import ClusterResource, read_cert_key
from mothership.controllers.conditions import Condition, merge
from mothership.controllers.runtime import runtime
from mothership.render import join_token, node_join

GROUP, VERSION, PLURAL = "k0smotron.io", "v1beta2", "jointokenrequests"
FINALIZER = "k0smotron.io/jointokenrequest"
JTRResource = create_namespaced_resource(GROUP, VERSION, "JoinTokenRequest", PLURAL)
CONTROLLER_JOIN_PORT = 9443  # k0s controllers join through k0s's join API, not kube-apiserver
# Operator settings (`operator run --node-download-url/--node-registry-mirror`).
NODE_DOWNLOAD_URL_ENV = "MOTHERSHIP_NODE_DOWNLOAD_URL"
NODE_REGISTRY_MIRROR_ENV = "MOTHERSHIP_NODE_REGISTRY_MIRROR"


class NotYet(Exception):
    """A precondition is not met yet; the message is the condition's text."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_jtr_event(type: str, body: kopf.Body, **_: Any) -> None:
    if type != "DELETED":
        await reconcile(dict(body))


async def reconcile(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    try:
        if meta.get("deletionTimestamp"):
            await finalize(body)
            return
        await _ensure_finalizer(body)
        await _reconcile(body)
        metrics.RECONCILES.labels(kind="JoinTokenRequest", result="ok").inc()
    except NotYet as exc:
        await _write_status(
            body,
            None,
            Condition(v1beta2.CONDITION_JOIN_TOKEN_SECRET_CREATED, False, exc.reason, str(exc)),
        )
        metrics.RECONCILES.labels(kind="JoinTokenRequest", result="waiting").inc()


async def _reconcile(body: dict[str, Any]) -> None:
    try:
        jtr = v1beta2.JoinTokenRequest.model_validate(body)
    except ValidationError as exc:
        raise NotYet("InvalidSpec", str(exc)[:500]) from exc
    meta = body["metadata"]
    status = body.get("status") or {}
    tid = join_token.token_id(meta["uid"])
    if _true(status, v1beta2.CONDITION_JOIN_TOKEN_USED):
        return  # a single-use token that a node took: revoked, never issued again
    cluster_ns, cluster_name = jtr.target_cluster()
    cluster_ns = cluster_ns or meta["namespace"]
    if (
        status.get("tokenID") == tid
        and _true(status, v1beta2.CONDITION_JOIN_TOKEN_SECRET_CREATED)
        and await _exists(meta["name"], meta["namespace"])
    ):
        # done: the token exists and is recorded (a request from before the condition got
        # k0smotron's name goes through once more, which reuses the token, to rename it)
        _watch_use(jtr, meta, (cluster_ns, cluster_name), tid)
        return

    cluster = await _cluster(cluster_name, cluster_ns)
    address = (cluster.get("status") or {}).get("externalAddress")
    if not address:
        raise NotYet("WaitingForCluster", f"Cluster {cluster_ns}/{cluster_name} has no address yet")
    rt = runtime()
    try:
        kubeconfig = await tenant.kubeconfig_text(rt, (cluster_ns, cluster_name))
    except (ApiError, KeyError) as exc:
        raise NotYet("WaitingForKubeconfig", f"no kubeconfig for the Cluster yet: {exc}") from exc

    role = jtr.spec.role
    expiry = join_token.parse_duration(jtr.spec.expiry)
    expires = datetime.now(UTC) + expiry if expiry.total_seconds() > 0 else None
    secret_part = await _ensure_bootstrap_token(kubeconfig, tid, role, expires, meta["name"])

    ca_pem = (await read_cert_key(cluster_name, "ca", cluster_ns)).cert_pem
    port = (
        CONTROLLER_JOIN_PORT
        if role == "controller"
        else int(((cluster.get("spec") or {}).get("service") or {}).get("apiPort", 30443))
    )
    token = join_token.join_token(
        server=f"https://{address}:{port}", ca_pem=ca_pem, role=role, token=f"{tid}.{secret_part}"
    )
    secret = join_token.token_secret(
        meta["name"],
        meta["namespace"],
        cluster_name,
        role,
        token,
        meta.get("labels") or {},
        join_command=_join_command(cluster, cluster_ns, token, expires) if role == "worker" else "",
        expires=expires,
        download_url=join_options().download_url,
        registry_mirror=join_options().registry_mirror,
    )
    try:
        await rt.client.create(from_dict(owned_by(secret, body)))
        metrics.WRITES.labels(kind="Secret").inc()
    except ApiError as exc:
        if exc.status.code != 409:
            raise
    requester = (meta.get("annotations") or {}).get(v1beta2.REQUESTER_ANNOTATION) or "unknown"
    events.info(
        body,
        reason="TokenCreated",
        message=f"token {tid} ({role}) for {cluster_ns}/{cluster_name}, requested by {requester}",
    )
    message = f"token {tid} in Secret {meta['name']}" + (
        f", expires {expires:%Y-%m-%dT%H:%M:%SZ}" if expires else ", never expires"
    )
    # k0smotron's type and reason, so `kubectl wait --for=condition=...` scripts work unchanged
    cond = Condition(v1beta2.CONDITION_JOIN_TOKEN_SECRET_CREATED, True, "Created", message)
    await _write_status(body, tid, cond)
    _watch_use(jtr, meta, (cluster_ns, cluster_name), tid)


def _watch_use(
    jtr: v1beta2.JoinTokenRequest, meta: dict[str, Any], cluster: tuple[str, str], tid: str
) -> None:
    """Keep (or stop) watching for the first node that joins with a single-use token."""
    key = (meta["namespace"], meta["name"], meta["uid"])
    if not jtr.spec.single_use:
        join_token_use.stop_watch(key)
        return

    async def used(node: str) -> None:
        current = await get_or_none(runtime().client, JTRResource, meta["name"], meta["namespace"])
        if current is None or current.metadata is None or current.metadata.uid != meta["uid"]:
            return
        body = current.to_dict()
        message = f"node {node} joined with token {tid}; the token is revoked in the tenant"
        events.info(body, reason="TokenUsed", message=message)
        cond = Condition(v1beta2.CONDITION_JOIN_TOKEN_USED, True, "UsedByNode", message)
        await _write_status(body, tid, cond)

    join_token_use.ensure_watch(key, cluster, tid, used)


def join_options() -> node_join.JoinOptions:
    """The operator's defaults for join commands (mirrors for air-gapped sites)."""
    return node_join.JoinOptions(
        download_url=os.environ.get(NODE_DOWNLOAD_URL_ENV, ""),
        registry_mirror=os.environ.get(NODE_REGISTRY_MIRROR_ENV, ""),
    )


def _join_command(
    cluster: dict[str, Any], namespace: str, token: str, expires: datetime | None
) -> str:
    """The one-line join for a worker of this Cluster (either distribution).

    A k0s token is what k0smotron's users take from the Secret (`k0s install worker
    --token-file`), so for k0s a version with no downloadable k0s release only leaves the
    join command out; a kubernetes Cluster has no other way to join, so there it waits."""
    try:
        model = v1beta2.Cluster.model_validate(cluster)
        facts = node_join.join_facts(model, namespace, token, expires)
        return node_join.join_command(node_join.render_join_script(facts, join_options()))
    except (ValueError, ValidationError) as exc:
        if (cluster.get("spec") or {}).get("distribution") != "kubernetes":
            return ""
        raise NotYet("JoinCommandFailed", f"cannot render the join command: {exc}") from exc


def _true(status: dict[str, Any], condition: str) -> bool:
    return any(
        c.get("type") == condition and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


async def _cluster(name: str, namespace: str) -> dict[str, Any]:
    obj = await get_or_none(runtime().client, ClusterResource, name, namespace)
    if obj is None:
        raise NotYet("ClusterNotFound", f"Cluster {namespace}/{name} does not exist")
    return obj.to_dict()


async def _exists(name: str, namespace: str) -> bool:
    return await get_or_none(runtime().client, Secret, name, namespace) is not None


async def _ensure_bootstrap_token(
    kubeconfig: str, tid: str, role: str, expires: datetime | None, request: str
) -> str:
    """The token secret part, from the tenant's existing bootstrap secret or a new one."""
    client = tenant.client_for(kubeconfig, timeout=10.0)
    try:
        existing = await get_or_none(client, Secret, f"bootstrap-token-{tid}", "kube-system")
        if existing is not None:
            return base64.b64decode((existing.data or {})["token-secret"]).decode()
        part = join_token.new_token_secret(os.urandom(16))
        await client.create(
            from_dict(join_token.bootstrap_secret(tid, part, role, expires, request))
        )
        return part
    except ApiError as exc:
        raise NotYet("TenantAPIError", f"tenant API refused: {exc.status.message}") from exc
    except Exception as exc:  # connection refused, TLS, timeouts: the tenant is not up yet
        raise NotYet("TenantAPINotReachable", f"{type(exc).__name__}: {exc}"[:300]) from exc
    finally:
        await client.close()


async def _ensure_finalizer(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    if FINALIZER in (meta.get("finalizers") or []):
        return
    patch = {
        "metadata": {
            "finalizers": [*(meta.get("finalizers") or []), FINALIZER],
            "resourceVersion": meta["resourceVersion"],
        }
    }
    await runtime().client.patch(
        JTRResource, meta["name"], patch, namespace=meta["namespace"], patch_type=PatchType.MERGE
    )
    metrics.WRITES.labels(kind="JoinTokenRequest").inc()


async def _write_status(body: dict[str, Any], tid: str | None, cond: Condition) -> None:
    meta = body["metadata"]
    previous = body.get("status") or {}
    new: dict[str, Any] = {
        "conditions": merge(previous.get("conditions"), [cond], meta.get("generation")),
    }
    if tid:
        new["tokenID"] = tid
    elif previous.get("tokenID"):
        new["tokenID"] = previous["tokenID"]
    if previous == new:
        return
    await runtime().client.patch(
        JTRResource.Status,
        meta["name"],
        {"status": new},
        namespace=meta["namespace"],
        patch_type=PatchType.MERGE,
    )
    metrics.WRITES.labels(kind="JoinTokenRequestStatus").inc()


async def finalize(body: dict[str, Any]) -> None:
    """Revoke the token in the tenant (if it can still be reached), then let go."""
    meta = body["metadata"]
    join_token_use.stop_watch((meta["namespace"], meta["name"], meta["uid"]))
    if FINALIZER not in (meta.get("finalizers") or []):
        return
    tid = (body.get("status") or {}).get("tokenID")
    if tid:
        try:
            jtr = v1beta2.JoinTokenRequest.model_validate(body)
            cluster_ns, cluster_name = jtr.target_cluster()
            rt = runtime()
            kubeconfig = await tenant.kubeconfig_text(
                rt, (cluster_ns or meta["namespace"], cluster_name)
            )
            client = tenant.client_for(kubeconfig, timeout=10.0)
            try:
                await client.delete(Secret, f"bootstrap-token-{tid}", namespace="kube-system")
            finally:
                await client.close()
            events.info(body, reason="TokenRevoked", message=f"token {tid} deleted in the tenant")
        except ApiError as exc:
            if exc.status.code != 404:
                events.warn(body, reason="RevokeFailed", message=str(exc))
        except Exception as exc:  # the tenant (or its Cluster) is gone: nothing to revoke
            events.warn(body, reason="RevokeSkipped", message=f"{type(exc).__name__}: {exc}"[:300])
    finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    await runtime().client.patch(
        JTRResource,
        meta["name"],
        {"metadata": {"finalizers": finalizers}},
        namespace=meta["namespace"],
        patch_type=PatchType.MERGE,
    )
