"""Encryption at rest of a tenant's Secrets: the API server's EncryptionConfiguration.

Each kubernetes-distribution Cluster gets its own key, made once by the operator and kept in
a Secret in the mothership (the datastore, often shared or run by someone else, only ever
sees ciphertext). The provider is secretbox (XSalsa20-Poly1305: authenticated, no padding
oracle, unlike aescbc); `identity` comes last so Secrets written before encryption was on
stay readable until they are next written.

A new key must never replace one that data was written with: that data would be lost. So
the key Secret is created only when absent and carries a finalizer the operator removes
only when the Cluster goes: a `kubectl delete` by mistake leaves it in place, terminating.

The API server reloads the file when it changes (automatic reload), which is what a key
rotation without downtime needs: add a key for reading, make it the one written, rewrite
the Secrets, then drop the old key, each step one edit of this Secret.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import yaml

from mothership.render import names

CONFIG_KEY = "encryption-config.yaml"
# On the control plane's StatefulSet: it runs with this key Secret, so a missing Secret
# means a lost key, not a Cluster from before encryption at rest.
KEY_ANNOTATION = "mothership.io/encryption-key-secret"
FINALIZER = "k0smotron.io/encryption-key"
KEY_BYTES = 32  # secretbox takes exactly 32 bytes
ENCRYPTED_RESOURCES = ("secrets",)
# What the API server writes before each value it encrypted with our provider and a key.
STORED_PREFIX = "k8s:enc:secretbox:v1:"


def key_name(now: datetime) -> str:
    """A key's name says when it was made, so a rotation's keys sort and read plainly."""
    return now.astimezone(UTC).strftime("key-%Y%m%d%H%M%S")


def config(keys: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The EncryptionConfiguration: the first key encrypts, every key decrypts."""
    if not keys:
        raise ValueError("an EncryptionConfiguration needs at least one key")
    for name, secret in keys:
        if len(secret) != KEY_BYTES:
            raise ValueError(f"key {name} has {len(secret)} bytes; secretbox takes {KEY_BYTES}")
    entries = [{"name": n, "secret": base64.b64encode(s).decode()} for n, s in keys]
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": list(ENCRYPTED_RESOURCES),
                "providers": [{"secretbox": {"keys": entries}}, {"identity": {}}],
            }
        ],
    }


def keys_of(text: str) -> list[tuple[str, bytes]]:
    """The secretbox keys of a stored EncryptionConfiguration, the writing one first."""
    doc = yaml.safe_load(text) or {}
    out: list[tuple[str, bytes]] = []
    for rule in doc.get("resources") or []:
        for provider in rule.get("providers") or []:
            for key in (provider.get("secretbox") or {}).get("keys") or []:
                out.append((str(key["name"]), base64.b64decode(key["secret"])))
    return out


def key_secret(cluster: str, namespace: str, key: bytes, now: datetime) -> dict[str, Any]:
    """The Secret holding a new Cluster's EncryptionConfiguration, with its first key."""
    text = yaml.safe_dump(config([(key_name(now), key)]), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.encryption_secret(cluster),
            "namespace": namespace,
            "labels": names.labels(cluster, "encryption"),
            "finalizers": [FINALIZER],
        },
        "data": {CONFIG_KEY: base64.b64encode(text.encode()).decode()},
    }


def apiserver_flags(mount_dir: str) -> list[str]:
    return [
        f"--encryption-provider-config={mount_dir}/{CONFIG_KEY}",
        "--encryption-provider-config-automatic-reload=true",
    ]


def volume(cluster: str, mode: int = 0o440) -> dict[str, Any]:
    """The pod volume of the key Secret (not optional: an API server must never start
    writing Secrets in plain text because the key was not there)."""
    return {
        "name": "encryption",
        "secret": {"secretName": names.encryption_secret(cluster), "defaultMode": mode},
    }


K0S_DIR = "/etc/mothership/encryption"
# Under k0s the API server runs as k0s's own `kube-apiserver` system user, whose uid the
# image chooses: the file must be readable by others in the container (all of them
# control-plane components k0s runs; nothing else runs in the pod's controller container).
K0S_MODE = 0o444


def user_provider(k0s_config: dict[str, Any] | None) -> bool:
    """Whether the user's k0sConfig already names an EncryptionConfiguration: theirs wins."""
    spec = (k0s_config or {}).get("spec") or {}
    args = ((spec.get("api") or {}) if isinstance(spec, dict) else {}).get("extraArgs") or {}
    return isinstance(args, dict) and "encryption-provider-config" in args


def k0s_extra_args() -> dict[str, str]:
    """k0s's api.extraArgs for the key Secret mounted at K0S_DIR."""
    return {
        flag.removeprefix("--").split("=", 1)[0]: flag.split("=", 1)[1]
        for flag in apiserver_flags(K0S_DIR)
    }
