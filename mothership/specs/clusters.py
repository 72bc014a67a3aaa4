"""Clusters from command-line flags or manifests, checked before anything is sent. Pure.

Both paths go through the API models and the admission webhook's own rules, so a bad value
is reported with its field path (and the flag that set it) before a request is made, in the
same words the webhook would use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from mothership.api.k0smotron import v1beta1, v1beta2
from mothership.errors import InvalidInput
from mothership.webhooks.validate import validate

Obj = dict[str, Any]

DEFAULT_PVC_SIZE = "1Gi"
# Flags that set each field, so a message about the field can name what the user typed.
FLAG_FOR_PATH = {
    "metadata.name": "NAME",
    "spec.distribution": "--distribution",
    "spec.version": "--version",
    "spec.replicas": "--replicas",
    "spec.storage.type": "--storage",
    "spec.storage.kine.dataSourceURL": "--kine-url",
    "spec.storage.kine.dataSourceSecretName": "--kine-secret",
    "spec.persistence.type": "--persistence",
    "spec.persistence.hostPath": "--host-path",
    "spec.persistence.persistentVolumeClaim": "--persistence-size",
    "spec.service.type": "--service-type",
    "spec.service.apiPort": "--api-port",
    "spec.service.konnectivityPort": "--konnectivity-port",
    "spec.externalAddress": "--external-address",
}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MODELS: dict[tuple[str, str], type[Any]] = {
    (v1beta2.API_VERSION, "Cluster"): v1beta2.Cluster,
    ("k0smotron.io/v1beta1", "Cluster"): v1beta1.Cluster,
    (v1beta2.API_VERSION, "JoinTokenRequest"): v1beta2.JoinTokenRequest,
    ("k0smotron.io/v1beta1", "JoinTokenRequest"): v1beta1.JoinTokenRequest,
}


@dataclass
class ClusterFlags:
    """What `mothership cluster create` was told; None means "not given"."""

    distribution: str | None = None
    version: str | None = None
    replicas: int | None = None
    storage: str | None = None
    kine_url: str | None = None
    kine_secret: str | None = None
    datastore: str | None = None
    persistence: str | None = None
    persistence_size: str | None = None
    storage_class: str | None = None
    host_path: str | None = None
    service_type: str | None = None
    api_port: int | None = None
    konnectivity_port: int | None = None
    external_address: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Checked:
    """Objects ready to apply and the warnings found on the way."""

    objects: list[Obj]
    warnings: list[str]


def check_name(name: str, what: str = "cluster name") -> None:
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise InvalidInput(
            f"{what} {name!r} is not valid: use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (it becomes part of Service and "
            "Secret names)"
        )


def spec_from_flags(f: ClusterFlags) -> Obj:
    """The spec fields the flags set, and nothing else (the API fills in the rest)."""
    spec: Obj = {}
    if f.distribution is not None:
        spec["distribution"] = f.distribution
    if f.version is not None:
        spec["version"] = f.version
    if f.replicas is not None:
        spec["replicas"] = f.replicas
    if f.external_address is not None:
        spec["externalAddress"] = f.external_address
    storage_type = f.storage
    if storage_type is None and (f.kine_url or f.kine_secret or f.datastore):
        storage_type = "kine"
    if storage_type is not None:
        spec["storage"] = {"type": storage_type}
    if f.datastore and (f.kine_url or f.kine_secret):
        raise InvalidInput(
            "--datastore cannot be combined with --kine-url/--kine-secret: the operator makes "
            "the database and its credentials on the DataStore; give one or the other"
        )
    if f.datastore and storage_type == "etcd":
        # An etcd DataStore: a key prefix, a user and a role of its own there.
        spec["storage"]["etcd"] = {"dataStoreRef": {"name": f.datastore}}
    elif f.kine_url or f.kine_secret or f.datastore:
        if storage_type != "kine":
            what = "--kine-url/--kine-secret" if not f.datastore else "--datastore"
            need = "--storage kine" if not f.datastore else "--storage kine (or etcd)"
            raise InvalidInput(f"{what} need {need} (got --storage {storage_type})")
        kine: Obj = {}
        if f.kine_url:
            kine["dataSourceURL"] = f.kine_url
        if f.kine_secret:
            kine["dataSourceSecretName"] = f.kine_secret
        if f.datastore:
            kine["dataStoreRef"] = {"name": f.datastore}
        spec["storage"]["kine"] = kine
    persistence = f.persistence
    if persistence is None and f.host_path:
        persistence = "hostPath"
    if persistence is None and (f.persistence_size or f.storage_class):
        persistence = "pvc"
    if persistence is not None:
        spec["persistence"] = {"type": persistence}
        if f.host_path:
            if persistence != "hostPath":
                raise InvalidInput(f"--host-path needs --persistence hostPath, not {persistence}")
            spec["persistence"]["hostPath"] = f.host_path
        if persistence == "pvc":
            claim: Obj = {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f.persistence_size or DEFAULT_PVC_SIZE}},
            }
            if f.storage_class:
                claim["storageClassName"] = f.storage_class
            spec["persistence"]["persistentVolumeClaim"] = {"spec": claim}
        elif f.persistence_size or f.storage_class:
            raise InvalidInput(
                f"--persistence-size/--storage-class need --persistence pvc, not {persistence}"
            )
    service: Obj = {}
    if f.service_type is not None:
        service["type"] = f.service_type
    if f.api_port is not None:
        service["apiPort"] = f.api_port
    if f.konnectivity_port is not None:
        service["konnectivityPort"] = f.konnectivity_port
    if service:
        spec["service"] = service
    return spec


def cluster_from_flags(name: str, namespace: str | None, flags: ClusterFlags) -> Checked:
    """A v1beta2 Cluster holding only what the flags set, validated like the webhook does.

    Without a namespace the object has none: the context's is filled in at apply time.
    """
    check_name(name)
    if "distribution" not in v1beta2.ClusterSpec.model_fields:
        # An API without spec.distribution runs k0s only.
        if flags.distribution not in (None, "k0s"):
            raise InvalidInput(
                f"--distribution {flags.distribution}: this mothership version runs k0s only"
            )
        flags.distribution = None
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if flags.labels:
        meta["labels"] = dict(flags.labels)
    obj = {
        "apiVersion": v1beta2.API_VERSION,
        "kind": "Cluster",
        "metadata": meta,
        "spec": spec_from_flags(flags),
    }
    warnings = _check_object(obj, "", with_flags=True)
    return Checked([obj], warnings)


def load_manifests(text: str, source: str, namespace: str, namespace_given: bool) -> Checked:
    """Every document of a manifest, checked; -n fills in missing namespaces (kubectl's rule:
    a document's own namespace must then agree with it)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {exc}") from exc
    if not docs:
        raise InvalidInput(f"{source} holds no objects")
    objects, warnings = [], []
    for index, doc in enumerate(_flatten(docs), start=1):
        where = f"{source} document {index}"
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise InvalidInput(f"{where}: not a Kubernetes object (needs apiVersion and kind)")
        meta = doc.setdefault("metadata", {}) or {}
        doc["metadata"] = meta
        if not meta.get("name"):
            raise InvalidInput(f"{where} ({doc['kind']}): metadata.name is required")
        where = f"{where} ({doc['kind']} {meta['name']})"
        if meta.get("namespace") and namespace_given and meta["namespace"] != namespace:
            raise InvalidInput(
                f"{where}: its namespace {meta['namespace']!r} differs from -n {namespace}; "
                "drop one of them"
            )
        if namespace_given:
            meta.setdefault("namespace", namespace)  # else: the context's, at apply time
        if doc["kind"] == "Cluster" and doc["apiVersion"].startswith("k0smotron.io/"):
            check_name(meta["name"], f"{where}: Cluster name")
        warnings += _check_object(doc, where)
        objects.append(doc)
    return Checked(objects, warnings)


def _flatten(docs: list[Any]) -> list[Any]:
    """A `kind: List` (what `kubectl get -o yaml` prints) counts as its items."""
    out: list[Any] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def _check_object(obj: Obj, where: str, with_flags: bool = False) -> list[str]:
    """Model validation, then the webhook's rules; raises on errors, returns warnings."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    model = MODELS.get(key)  # type: ignore[arg-type]
    if model is None:
        if str(key[0]).startswith("k0smotron.io/"):
            raise InvalidInput(
                f"{where}: {key[0]} {key[1]} is not served; use k0smotron.io/v1beta2 "
                "Cluster or JoinTokenRequest"
            )
        return []  # other kinds: the API server checks them
    prefix = f"{where}: " if where else ""
    try:
        model.model_validate(obj)
    except ValidationError as exc:
        raise InvalidInput(prefix + _pydantic_lines(exc, with_flags)) from None
    result = validate(obj)
    if result.errors:
        lines = [_with_flag(str(p.path), p.message, with_flags) for p in result.errors]
        raise InvalidInput(prefix + "invalid input:\n  " + "\n  ".join(lines))
    return [prefix + _with_flag(str(p.path), p.message, with_flags) for p in result.warnings]


def _pydantic_lines(exc: ValidationError, with_flags: bool) -> str:
    lines = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg"))
        if "input" in error and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
        lines.append(_with_flag(path, message, with_flags))
    return "invalid input:\n  " + "\n  ".join(lines)


def _with_flag(path: str, message: str, with_flags: bool) -> str:
    flag = next(
        (f for p, f in FLAG_FOR_PATH.items() if path == p or path.startswith(p + ".")), None
    )
    return f"{path} ({flag}): {message}" if with_flags and flag else f"{path}: {message}"
