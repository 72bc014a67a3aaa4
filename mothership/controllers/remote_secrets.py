"""The Secrets a remotely hosted control plane's pods mount, copied to its hosting cluster.

The mothership keeps the Secrets of record (PKI, datastore credentials, encryption keys);
pods in another cluster can only mount Secrets there, so each one they name is copied,
stamped with the source's resourceVersion: an unchanged source is neither read nor written
again (the registry already knows both versions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Secret

from mothership.controllers import children
from mothership.controllers.apply import get_or_none
from mothership.controllers.remote_host import Host

SOURCE_VERSION = "mothership.io/source-version"
"""On a Secret copied to a hosting cluster: the resourceVersion of the mothership's Secret
it was copied from, so an unchanged source is not read again."""


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") in ("StatefulSet", "Deployment", "Job", "DaemonSet"):
        yield ((spec.get("template") or {}).get("spec")) or {}
    elif obj.get("kind") == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        yield ((job.get("template") or {}).get("spec")) or {}


def mounted_secrets(objects: Iterable[dict[str, Any]]) -> list[str]:
    """Names of the Secrets the rendered pods use that are not rendered themselves: the PKI,
    datastore and encryption Secrets the operator keeps in the mothership, and any the user
    named (volumes, projected volumes, env, envFrom, image pull Secrets)."""
    objects = list(objects)
    rendered = {o["metadata"]["name"] for o in objects if o.get("kind") == "Secret"}
    found: set[str] = set()
    for obj in objects:
        for pod in _pod_specs(obj):
            for volume in pod.get("volumes") or []:
                found.add((volume.get("secret") or {}).get("secretName") or "")
                for source in (volume.get("projected") or {}).get("sources") or []:
                    found.add((source.get("secret") or {}).get("name") or "")
            found.update(s.get("name") or "" for s in pod.get("imagePullSecrets") or [])
            for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                for env in container.get("env") or []:
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                    found.add(ref.get("name") or "")
                for source in container.get("envFrom") or []:
                    found.add((source.get("secretRef") or {}).get("name") or "")
    return sorted(found - rendered - {""})


def secret_copy(source: dict[str, Any], cluster: str) -> dict[str, Any]:
    """The hosting cluster's copy of a mothership Secret: same name, type and data, labelled
    as the Cluster's (so it is watched and deleted with it), no finalizers or owners."""
    meta = source.get("metadata") or {}
    labels = {
        **(meta.get("labels") or {}),
        "cluster": cluster,
        **children.MANAGED,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {SOURCE_VERSION: str(meta.get("resourceVersion") or "")},
        },
        "type": source.get("type") or "Opaque",
        "data": source.get("data") or {},
    }


async def copy_secrets(
    client: AsyncClient,
    host: Host,
    body: dict[str, Any],
    wanted: Iterable[str],
    owned: dict[tuple[str, str], children.Child],
    placed: dict[tuple[str, str], children.Child],
) -> list[str]:
    """Copy the Secrets the pods mount from the mothership to the hosting cluster; those
    whose copy is from the source's current version are not read. Returns `Secret/name`
    for each written. A Secret the mothership does not have is left to the hosting cluster
    (the user may have put it there)."""
    meta = body["metadata"]
    written = []
    for name in wanted:
        source = owned.get(("Secret", name))
        copy = placed.get(("Secret", name))
        if (
            source is not None
            and copy is not None
            and not copy.drifted
            and copy.annotations.get(SOURCE_VERSION) == str(source.version)
        ):
            continue
        live = await get_or_none(client, Secret, name, meta["namespace"])
        if live is None:
            continue
        wanted_copy = host.place(secret_copy(live.to_dict(), meta["name"]), body)
        if await host.applier.apply(wanted_copy, copy):
            written.append(f"Secret/{name}")
    return written
