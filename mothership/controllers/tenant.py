"""Talking to a tenant control plane through its kubeconfig (never by exec into pods)."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Protocol

import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace, Secret

from mothership.render import names

CHECK_TIMEOUT = 3.0


class Access(Protocol):
    """What talking to tenants needs of the operator's runtime (runtime.Runtime has it):
    the mothership's API client and the kubeconfigs read so far."""

    client: AsyncClient
    kubeconfigs: dict[tuple[str, str], str]


async def kubeconfig_text(rt: Access, key: tuple[str, str]) -> str:
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


async def check_functional(rt: Access, key: tuple[str, str]) -> tuple[bool, str]:
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


@dataclass
class Probes:
    """When to look at a tenant API again, and what was seen last time.

    A tenant that does not answer is retried with growing pauses (1 s doubling to 5 min)
    instead of on every event; one that answers is re-checked once a minute. A new
    generation of the spec starts over at 1 s. This keeps a large, converging fleet from
    spending its CPU and memory on TLS handshakes with control planes still starting, while
    one whose pod just turned Ready, and whose API answers a moment later, is seen Available
    within about as long as it took to answer (with 5 s doubling, five control planes
    starting at once on two cores were seen up to a minute late: bench provision).
    """

    first: float = 1.0
    longest: float = 300.0
    healthy_every: float = 60.0
    seen: dict[tuple[str, str], tuple[bool, str, float, float, int | None]] = field(
        default_factory=dict
    )

    async def check(
        self, key: tuple[str, str], generation: int | None, rt: Access
    ) -> tuple[bool, str]:
        now = time.monotonic()
        last = self.seen.get(key)
        if last and last[4] == generation and now < last[2]:
            return last[0], last[1]
        ok, error = await check_functional(rt, key)
        if ok:
            pause = self.healthy_every
        elif last and last[4] == generation and not last[0]:
            pause = min(last[3] * 2, self.longest)
        else:
            pause = self.first
        self.seen[key] = (ok, error, now + pause, pause, generation)
        return ok, error

    def answered(self, key: tuple[str, str]) -> bool:
        """The last probe of this tenant found its API answering."""
        last = self.seen.get(key)
        return bool(last and last[0])

    def due(self, key: tuple[str, str]) -> bool:
        """A probe would run now (its answer may change the status)."""
        last = self.seen.get(key)
        return last is not None and time.monotonic() >= last[2]

    def forget(self, key: tuple[str, str]) -> None:
        self.seen.pop(key, None)
