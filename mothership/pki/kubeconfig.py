"""Kubeconfig files with every credential embedded.

Embedding (rather than pointing at files) keeps a kubeconfig self-contained, so it can live
in a single Secret key or be handed to a user without the certificate files next to it.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml


def kubeconfig(
    *,
    cluster_name: str,
    server: str,
    ca_pem: bytes,
    user: str,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
) -> str:
    """YAML of a v1 Config with one cluster, user and context, that context being current.

    Exactly one way to authenticate is accepted: a kubeconfig carrying both a client cert and
    a token would leave it to each client to pick one, which hides mistakes.
    """
    has_cert = client_cert_pem is not None or client_key_pem is not None
    if has_cert and (client_cert_pem is None or client_key_pem is None):
        raise ValueError("client_cert_pem and client_key_pem must be given together")
    if has_cert == (token is not None):
        raise ValueError("give either client_cert_pem with client_key_pem, or token, not both")
    if token == "":
        raise ValueError("token must not be empty")

    credentials: dict[str, str] = {}
    if client_cert_pem is not None and client_key_pem is not None:
        credentials["client-certificate-data"] = _b64(client_cert_pem)
        credentials["client-key-data"] = _b64(client_key_pem)
    elif token is not None:
        credentials["token"] = token

    context_name = context or f"{user}@{cluster_name}"
    context_body: dict[str, str] = {"cluster": cluster_name, "user": user}
    if namespace:
        context_body["namespace"] = namespace
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context_name, "context": context_body}],
        "current-context": context_name,
        "preferences": {},
    }
    return str(yaml.safe_dump(config, sort_keys=False, default_flow_style=False))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
