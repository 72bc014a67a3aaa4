"""A tenant kubeconfig whose user logs in through the identity provider.

Made from the admin kubeconfig's cluster entry (server and CA) with the admin's client
certificate left out: the user is `mothership oidc-login`, a client-go credential plugin, so
the file holds no credential at all and can be handed to every member of a team.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from mothership.identity.device_login import EXEC_API_VERSION, Settings

PLUGIN_COMMAND = "mothership"


def plugin_args(settings: Settings) -> list[str]:
    args = ["oidc-login", "--issuer", settings.issuer, "--client-id", settings.client_id]
    if settings.client_secret:
        args += ["--client-secret", settings.client_secret]
    if settings.ca_pem:
        args += ["--ca-data", base64.b64encode(settings.ca_pem.encode()).decode()]
    if settings.flow != "device":
        args += ["--flow", settings.flow]
    if settings.listen_port:
        args += ["--listen-port", str(settings.listen_port)]
    return args


def oidc_kubeconfig(admin_text: str, context_name: str, settings: Settings) -> str:
    """The admin kubeconfig's first cluster, with a user that logs in through the provider."""
    admin: dict[str, Any] = yaml.safe_load(admin_text) or {}
    clusters = admin.get("clusters") or []
    if not clusters or "cluster" not in clusters[0]:
        raise ValueError("the admin kubeconfig names no cluster")
    cluster = clusters[0]["cluster"]
    user = f"{context_name}-oidc"
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context_name, "cluster": cluster}],
        "users": [
            {
                "name": user,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": PLUGIN_COMMAND,
                        "args": plugin_args(settings),
                        "interactiveMode": "IfAvailable",
                        "provideClusterInfo": False,
                        "installHint": "oidc-login is a command of the mothership CLI; "
                        "install it and put `mothership` on PATH",
                    }
                },
            }
        ],
        "contexts": [{"name": context_name, "context": {"cluster": context_name, "user": user}}],
        "current-context": context_name,
    }
    return yaml.safe_dump(out, sort_keys=False, default_flow_style=False)
