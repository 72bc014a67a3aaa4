"""Which issuer and client a `--oidc` kubeconfig logs in with, read from the Cluster's spec."""

from __future__ import annotations

from typing import Any

from mothership.errors import InvalidInput
from mothership.identity.device_login import FLOWS, Settings


def check_flow(flow: str, listen_port: int, *, flow_flag: str, port_flag: str) -> None:
    """How a login happens, as either command spells it: a known flow, a port, and a port
    only for the browser flow (the device flow listens on nothing)."""
    if flow not in FLOWS:
        raise InvalidInput(f"{flow_flag} {flow}: use one of {', '.join(FLOWS)}")
    if not 0 <= listen_port <= 65535:
        raise InvalidInput(f"{port_flag} {listen_port}: a port is 0 to 65535 (0: any)")
    if listen_port and flow != "browser":
        raise InvalidInput(f"{port_flag} is the browser flow's; add {flow_flag} browser")


def oidc_settings(
    cluster: dict[str, Any],
    issuer: str | None,
    client_id: str | None,
    client_secret: str,
    flow: str = "device",
    listen_port: int = 0,
) -> Settings:
    """The settings of one of spec.kubernetes.authentication.jwt: the only one, or the one
    whose issuer URL is ``issuer``; the client is the first audience unless named. The flow
    and port are the person's choice, checked here so a kubeconfig that cannot log in is
    not written."""
    check_flow(flow, listen_port, flow_flag="--oidc-flow", port_flag="--oidc-listen-port")
    name = (cluster.get("metadata") or {}).get("name", "")
    spec = cluster.get("spec") or {}
    jwt = ((spec.get("kubernetes") or {}).get("authentication") or {}).get("jwt") or []
    if not jwt:
        raise InvalidInput(
            f"Cluster {name} trusts no identity provider: set spec.kubernetes.authentication.jwt "
            "(docs/concepts.md, users from an identity provider)"
        )
    urls = [str((item.get("issuer") or {}).get("url", "")) for item in jwt]
    if issuer is None and len(jwt) > 1:
        raise InvalidInput(
            f"Cluster {name} trusts {len(jwt)} issuers; choose one with --oidc-issuer: "
            + ", ".join(urls)
        )
    chosen = (
        jwt[0]
        if issuer is None
        else next((item for item, url in zip(jwt, urls, strict=True) if url == issuer), None)
    )
    if chosen is None:
        raise InvalidInput(
            f"--oidc-issuer {issuer}: Cluster {name} does not trust it; it trusts "
            + ", ".join(urls)
        )
    found = chosen.get("issuer") or {}
    audiences = [str(a) for a in found.get("audiences") or []]
    if client_id is not None and client_id not in audiences:
        raise InvalidInput(
            f"--oidc-client-id {client_id}: the API server accepts tokens for "
            + ", ".join(audiences)
            + " only; use one of these"
        )
    return Settings(
        issuer=str(found.get("url", "")),
        client_id=client_id or audiences[0],
        client_secret=client_secret,
        ca_pem=str(found.get("certificateAuthority") or ""),
        flow=flow,
        listen_port=listen_port,
    )
