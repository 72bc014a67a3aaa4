"""Encryption at rest of a tenant's Secrets: the API server's EncryptionConfiguration.

Each kubernetes-distribution Cluster gets its own key, made once by the operator and kept in
a Secret in the mothership (the datastore, often shared or run by someone else, only ever
sees ciphertext). The provider is secretbox (XSalsa20-Poly1305: authenticated, no padding
oracle, unlike aescbc); `identity` comes last so Secrets written before encryption was on
stay readable until they are next written.

A new key must never replace one that data was written with: that data would be lost. So
the key Secret is created only when absent and carries a finalizer the operator removes
only when the Cluster goes: a `kubectl delete` by mistake leaves it in place, terminating.

A rotation (the Cluster annotated with ROTATE_ANNOTATION, any new value) goes in steps,
each one edit of this Secret: add a new key for reading only; once every replica runs
with it, make it the one written; once every replica writes with it, rewrite the tenant's
Secrets and drop the old key. "Runs with it" is not left to the API server's file poll
and the kubelet's volume refresh (minutes, and no way to see which replica has read
what): the config's digest is on the pod template, so each step rolls the control plane
and the StatefulSet's status says when every replica started with it. With two replicas
or more, the roll keeps the API serving throughout.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
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
# On the Cluster, set by its owner (`mothership cluster rotate-encryption-key`): any value
# not handled yet asks for one rotation.
ROTATE_ANNOTATION = "mothership.io/rotate-encryption-key"
# On the key Secret: the request being or last handled, how far it got, and the digest of
# the config it holds (also on the pod template: a new digest rolls the control plane).
ROTATION_ANNOTATION = "mothership.io/encryption-rotation"
STEP_ANNOTATION = "mothership.io/encryption-rotation-step"
REVISION_ANNOTATION = "mothership.io/encryption-revision"
ADDED, PROMOTED, DONE = "added", "promoted", "done"


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


def config_text(keys: list[tuple[str, bytes]]) -> str:
    return yaml.safe_dump(config(keys), sort_keys=False)


def revision(text: str) -> str:
    """The digest of a stored config: equal texts, equal revisions."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def key_secret(cluster: str, namespace: str, key: bytes, now: datetime) -> dict[str, Any]:
    """The Secret holding a new Cluster's EncryptionConfiguration, with its first key."""
    text = config_text([(key_name(now), key)])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.encryption_secret(cluster),
            "namespace": namespace,
            "labels": names.labels(cluster, "encryption"),
            "annotations": {REVISION_ANNOTATION: revision(text)},
            "finalizers": [FINALIZER],
        },
        "data": {CONFIG_KEY: base64.b64encode(text.encode()).decode()},
    }


@dataclass(frozen=True)
class Rotation:
    """The next edit of a rotation: write `keys` as step `step` of request `request`.

    `after_roll`: only once the control plane runs the current config (every replica
    started with it), since the edit assumes every API server reads, or writes with, the
    key the previous step added or promoted. `rewrite`: first rewrite the tenant's
    Secrets, so none is left that only the dropped key could read.
    """

    request: str
    keys: list[tuple[str, bytes]]
    step: str
    after_roll: bool
    rewrite: bool = False


def next_rotation(
    request: str | None,
    handled: str | None,
    step: str | None,
    keys: list[tuple[str, bytes]],
    fresh: tuple[str, bytes],
) -> Rotation | None:
    """What a rotation does next, from the Cluster's request and the key Secret's record;
    None when there is nothing to do. A request made while another rotation is half done
    waits for it to finish (its record would otherwise be lost, and its keys with it)."""
    if handled and step in (ADDED, PROMOTED):
        if step == ADDED:
            # The key added last becomes the one written; the others still read.
            return Rotation(handled, [keys[-1], *keys[:-1]], PROMOTED, after_roll=True)
        return Rotation(handled, keys[:1], DONE, after_roll=True, rewrite=True)
    if not request or request == handled:
        return None
    return Rotation(request, [*keys, fresh], ADDED, after_roll=False)


def mark(out: dict[str, Any], cluster_name: str, config_revision: str | None) -> None:
    """On a control plane's StatefulSet: it runs with the key Secret (a missing Secret
    then means a lost key, not one still to be made), and the config's revision on the
    pod template, so each rotation step rolls it."""
    annotations = out["metadata"].setdefault("annotations", {})
    annotations[KEY_ANNOTATION] = names.encryption_secret(cluster_name)
    if config_revision:
        annotations[REVISION_ANNOTATION] = config_revision
        template = out["spec"]["template"].setdefault("metadata", {})
        template.setdefault("annotations", {})[REVISION_ANNOTATION] = config_revision


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
