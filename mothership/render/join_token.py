"""Join tokens in k0s's format, from a bootstrap token: pure.

A k0s join token is base64(gzip(kubeconfig)) where the kubeconfig names the API, trusts
the cluster CA and authenticates with a bootstrap token. We mint the bootstrap token
ourselves through the tenant API instead of exec-ing `k0s token create` in a pod.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from datetime import datetime, timedelta
from typing import Any, cast

import yaml

from mothership.render import names

ROLE_USERS = {"worker": "kubelet-bootstrap", "controller": "controller-bootstrap"}
# Groups the token's user belongs to (besides system:bootstrappers). The kubeadm group
# is what the standard node-bootstrap RBAC and CSR auto-approval are bound to.
ROLE_GROUPS = {
    "worker": "system:bootstrappers:kubeadm:default-node-token,system:bootstrappers:worker",
    "controller": "system:bootstrappers:controller",
}
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# Go's time.ParseDuration syntax: "1.h" and ".5h" are numbers too, and the micro sign may be
# U+00B5 or U+03BC (the admission webhook accepts the same).
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
}


def parse_duration(text: str) -> timedelta:
    """A Go duration ("1h30m", "300ms", "0s", "-1.5h") as a timedelta; ValueError names the
    input."""
    if text == "":
        return timedelta(0)
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.removeprefix("+"))
    if body == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(f"{text!r} is not a duration; use e.g. 1h, 30m, 1h30m or 0s (no expiry)")
    return timedelta(seconds=sign * total)


def token_id(request_uid: str) -> str:
    """Six characters derived from the request's uid.

    Deterministic, so a reconcile interrupted between minting the token and recording
    it finds and reuses the same bootstrap token instead of leaking a second one.
    """
    digest = hashlib.sha256(request_uid.encode()).digest()
    return "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:6])


def new_token_secret(random_bytes: bytes) -> str:
    """Sixteen [a-z0-9] characters from the given random bytes (>= 16 of them)."""
    return "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in random_bytes[:16])


def bootstrap_secret(
    tid: str, secret: str, role: str, expires: datetime | None, request: str
) -> dict[str, Any]:
    """The kube-system bootstrap token Secret the tenant's API server authenticates with."""
    data = {
        "token-id": tid,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": ROLE_GROUPS[role],
        "description": f"k0s {role} join token for JoinTokenRequest {request}",
    }
    if expires is not None:
        data["expiration"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "bootstrap.kubernetes.io/token",
        "metadata": {
            "name": f"bootstrap-token-{tid}",
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/managed-by": names.MANAGED_BY},
        },
        "stringData": data,
    }


def join_token(*, server: str, ca_pem: bytes, role: str, token: str) -> str:
    user = ROLE_USERS[role]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "k0s",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "contexts": [{"name": "k0s", "context": {"cluster": "k0s", "user": user}}],
        "current-context": "k0s",
        "users": [{"name": user, "user": {"token": token}}],
    }
    raw = yaml.safe_dump(config, sort_keys=False).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode()


def decode_join_token(token: str) -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(gzip.decompress(base64.b64decode(token))))


JOIN_COMMAND_KEY = "joinCommand"
EXPIRES_ANNOTATION = "mothership.io/token-expires"
DOWNLOAD_URL_ANNOTATION = "mothership.io/node-download-url"
REGISTRY_MIRROR_ANNOTATION = "mothership.io/node-registry-mirror"


def token_secret(
    request: str,
    namespace: str,
    cluster: str,
    role: str,
    token: str,
    labels: dict[str, str],
    *,
    join_command: str = "",
    expires: datetime | None = None,
    download_url: str = "",
    registry_mirror: str = "",
) -> dict[str, Any]:
    """The Secret named after the request, holding the join token under `token` and, for
    a worker, the one-line join under `joinCommand`."""
    data = {"token": base64.b64encode(token.encode()).decode()}
    if join_command:
        data[JOIN_COMMAND_KEY] = base64.b64encode(join_command.encode()).decode()
    # What the join command was rendered with, so a client can render it again with changes.
    annotations = {EXPIRES_ANNOTATION: expires.strftime("%Y-%m-%dT%H:%M:%SZ")} if expires else {}
    if join_command:
        annotations[DOWNLOAD_URL_ANNOTATION] = download_url
        annotations[REGISTRY_MIRROR_ANNOTATION] = registry_mirror
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": request,
            "namespace": namespace,
            **({"annotations": annotations} if annotations else {}),
            "labels": {
                **labels,
                **names.labels(cluster, "jointoken"),
                "k0smotron.io/cluster": cluster,
                "k0smotron.io/role": role,
                "k0smotron.io/token-request": request,
            },
        },
        "data": data,
    }
