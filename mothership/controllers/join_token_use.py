"""Single-use join tokens: revoke a bootstrap token once a node has joined with it.

Kubernetes bootstrap tokens have no use count, so the operator watches for the use. A
kubelet joining with a bootstrap token asks for its client certificate with a CSR whose
requester is `system:bootstrap:<token id>` and whose subject is `system:node:<node>`. The
token is revoked only once that Node is registered: the kubelet still reads its issued
certificate with the bootstrap token, so revoking at the CSR would break the very join the
token was for.

One polling task per issued, unused single-use token (a few tenant requests every few
seconds); the resync pass restarts tasks lost with an operator restart, and a deleted
JoinTokenRequest cancels its task.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from lightkube.core.exceptions import ApiError
from lightkube.resources.certificates_v1 import CertificateSigningRequest
from lightkube.resources.core_v1 import Node, Secret

from mothership.controllers import tenant
from mothership.controllers.apply import get_or_none
from mothership.controllers.runtime import runtime

log = logging.getLogger(__name__)

POLL_SECONDS = 3.0
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
NODE_PREFIX = "system:node:"

Key = tuple[str, str, str]  # namespace, name, uid of the JoinTokenRequest
OnUsed = Any  # async callable (node name) -> None, told once the token is revoked

_TASKS: dict[Key, asyncio.Task[None]] = {}


def requester(token_id: str) -> str:
    """The user name the tenant API server gives a request made with this bootstrap token."""
    return f"system:bootstrap:{token_id}"


def node_of_csr(csr: dict[str, Any]) -> str | None:
    """The node a kubelet client CSR asks a certificate for, or None if it is not one."""
    spec = csr.get("spec") or {}
    raw = spec.get("request")
    if not isinstance(raw, str):
        return None
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(raw))
        names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    common = str(names[0].value) if names else ""
    return common[len(NODE_PREFIX) :] if common.startswith(NODE_PREFIX) else None


def nodes_asked_for(csrs: Iterable[dict[str, Any]], token_id: str) -> list[str]:
    """Nodes whose kubelet asked for a certificate with this token, oldest request first."""
    user = requester(token_id)
    mine = [c for c in csrs if (c.get("spec") or {}).get("username") == user]
    mine.sort(key=lambda c: (c.get("metadata") or {}).get("creationTimestamp") or "")
    found: list[str] = []
    for csr in mine:
        node = node_of_csr(csr)
        if node and node not in found:
            found.append(node)
    return found


def watching(key: Key) -> bool:
    task = _TASKS.get(key)
    return task is not None and not task.done()


def ensure_watch(key: Key, cluster: tuple[str, str], token_id: str, on_used: OnUsed) -> None:
    """Start the task that revokes the token at its first use, unless one runs already."""
    if watching(key):
        return
    _TASKS[key] = asyncio.create_task(_watch(key, cluster, token_id, on_used))


def stop_watch(key: Key) -> None:
    task = _TASKS.pop(key, None)
    if task is not None:
        task.cancel()


async def _watch(key: Key, cluster: tuple[str, str], token_id: str, on_used: OnUsed) -> None:
    try:
        while True:
            try:
                outcome = await check_once(cluster, token_id)
                if outcome is not None:
                    if outcome:  # a node joined: revoked, tell the request
                        await on_used(outcome)
                    return
            except Exception as exc:  # tenant unreachable, or the status write failed
                log.info("single-use token %s of %s/%s: %s", token_id, key[0], key[1], exc)
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if _TASKS.get(key) is asyncio.current_task():
            del _TASKS[key]


async def check_once(cluster: tuple[str, str], token_id: str) -> str | None:
    """One look at the tenant: the node that used the token (now revoked), "" when the
    token is gone without a use (expired and cleaned up, or deleted), None to look again."""
    kubeconfig = await tenant.kubeconfig_text(runtime(), cluster)
    client = tenant.client_for(kubeconfig, timeout=10.0)
    secret_name = f"bootstrap-token-{token_id}"
    try:
        csrs = [
            c.to_dict()
            async for c in client.list(
                CertificateSigningRequest, fields={"spec.signerName": KUBELET_CLIENT_SIGNER}
            )
        ]
        for node in nodes_asked_for(csrs, token_id):
            if await get_or_none(client, Node, node, "") is not None:
                try:
                    await client.delete(Secret, secret_name, namespace="kube-system")
                except ApiError as exc:
                    if exc.status.code != 404:
                        raise
                return node
        if await get_or_none(client, Secret, secret_name, "kube-system") is None:
            return ""
        return None
    finally:
        await client.close()
