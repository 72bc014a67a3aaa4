"""Talking to a tenant control plane through its kubeconfig (never by exec into pods)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace, Secret

from mothership.render import names

if TYPE_CHECKING:
    from mothership.controllers.cluster import Runtime

CHECK_TIMEOUT = 3.0


async def kubeconfig_text(rt: Runtime, key: tuple[str, str]) -> str:
    if key in rt.kubeconfigs:
        return rt.kubeconfigs[key]
    namespace, name = key
    secret = await rt.client.get(Secret, names.kubeconfig_secret(name), namespace=namespace)
    text = base64.b64decode((secret.data or {})["value"]).decode()
    rt.kubeconfigs[key] = text
    return text


def client_for(kubeconfig: str, timeout: float = CHECK_TIMEOUT) -> AsyncClient:
    import httpx2

    config = KubeConfig.from_dict(yaml.safe_load(kubeconfig))
    return AsyncClient(config=config, timeout=httpx2.Timeout(timeout))


async def check_functional(rt: Runtime, key: tuple[str, str]) -> tuple[bool, str]:
    """GET kube-system through the kubeconfig: the API answers and trusts our credentials."""
    try:
        client = client_for(await kubeconfig_text(rt, key))
    except (ApiError, KeyError, ValueError) as exc:
        return False, f"no usable kubeconfig: {exc}"
    try:
        await client.get(Namespace, "kube-system")
        return True, ""
    except ApiError as exc:
        return False, f"{exc.status.code} {exc.status.reason}"
    except Exception as exc:  # connection refused, timeouts, TLS errors
        return False, describe(exc)
    finally:
        await client.close()


def describe(exc: BaseException) -> str:
    """A stable, human-readable cause: the same failure must give the same text, or the
    condition message would change on every resync and cause a status write each time."""
    text = str(exc).lower()
    for needle, meaning in (
        ("certificate verify failed", "TLS: the server's certificate is not signed by the CA"),
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "DNS name does not resolve"),
        ("no route", "no route to host"),
        ("reset", "connection reset"),
    ):
        if needle in text or needle in type(exc).__name__.lower():
            return meaning
    return type(exc).__name__
