"""Growing the volumes of a StatefulSet, whose claim templates cannot change in place.

The API server refuses every change to `spec.volumeClaimTemplates`. When a requested
size grows, each existing claim is asked for the new size (its storage class must allow
expansion), then the StatefulSet is deleted with orphan propagation, which leaves its
pods and claims running, and the next reconcile creates it again with the new template.
The new StatefulSet adopts the pods; their template is unchanged, so none restarts.

A changed set of claim templates (the persistence type changed) takes the same way out,
with no claim to grow: the new StatefulSet then rolls its pods onto the new volumes.

Volumes never shrink: Kubernetes cannot do it, and the admission webhook refuses it. A
smaller size that gets through anyway (webhook off) keeps the size in place, with a
warning, rather than failing every apply on the immutable field.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import PersistentVolumeClaim
from lightkube.types import CascadeType, PatchType

from mothership.api import quantity
from mothership.controllers import events, metrics
from mothership.controllers.children import Child


def template_sizes(sts: dict[str, Any]) -> dict[str, str]:
    """Claim template name -> requested storage, of a rendered StatefulSet."""
    out = {}
    for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        name = (template.get("metadata") or {}).get("name", "")
        requests = ((template.get("spec") or {}).get("resources") or {}).get("requests") or {}
        out[name] = str(requests.get("storage", ""))
    return out


def with_sizes(sts: dict[str, Any], sizes: dict[str, str]) -> dict[str, Any]:
    """A copy of sts whose claim templates request `sizes` (by template name)."""
    out = copy.deepcopy(sts)
    for template in out["spec"].get("volumeClaimTemplates") or []:
        name = template["metadata"]["name"]
        if name in sizes:
            template["spec"].setdefault("resources", {}).setdefault("requests", {})
            template["spec"]["resources"]["requests"]["storage"] = sizes[name]
    return out


def _compare(a: str, b: str) -> int:
    try:
        return quantity.compare(a, b)
    except ValueError:
        return 0 if a == b else 1


Sizes = dict[str, str]


def plan(desired: Sizes, observed: Sizes) -> tuple[Sizes, Sizes]:
    """(templates to grow -> new size, templates asked to shrink -> size kept)."""
    grow: Sizes = {}
    keep: Sizes = {}
    for name, size in desired.items():
        if name not in observed or not size or not observed[name]:
            continue
        order = _compare(size, observed[name])
        if order > 0:
            grow[name] = size
        elif order < 0:
            keep[name] = observed[name]
    return grow, keep


async def fit_claims(
    client: AsyncClient, body: dict[str, Any], sts: dict[str, Any], observed: Child | None
) -> tuple[dict[str, Any], bool]:
    """The StatefulSet to apply, and whether to hold it back for now.

    Held back while the old StatefulSet is being deleted for a resize: applying then
    would patch the object on its way out instead of creating the new one.
    """
    if observed is None:
        return sts, False
    if observed.deleting:
        return sts, True
    desired, have = template_sizes(sts), dict(observed.status.get("claims") or ())
    grow, keep = plan(desired, have)
    name = sts["metadata"]["name"]
    namespace = sts["metadata"]["namespace"]
    if set(desired) != set(have):
        # Another set of claim templates (the persistence type changed): no claim to
        # grow, the StatefulSet is made again and rolls its pods onto the new volumes.
        await client.delete(StatefulSet, name, namespace=namespace, cascade=CascadeType.ORPHAN)
        metrics.WRITES.labels(kind="StatefulSet").inc()
        events.info(
            body,
            reason="VolumesChanged",
            message=f"{name}: claim templates {sorted(have)} -> {sorted(desired)}; "
            "StatefulSet recreated",
        )
        return sts, True
    if keep:
        shown = ", ".join(f"{t} stays {s}" for t, s in sorted(keep.items()))
        events.warn(body, reason="VolumeShrinkIgnored", message=f"{name}: {shown}")
    if not grow:
        return (with_sizes(sts, keep) if keep else sts), False
    refused = await _grow_claims(client, sts, grow)
    if refused:
        events.warn(
            body,
            reason="VolumeResizeRefused",
            message=f"{name}: {refused}; the claim template keeps its size until the claims "
            "can grow (the storage class needs allowVolumeExpansion: true)",
        )
        return with_sizes(sts, {**keep, **{t: have[t] for t in grow}}), False
    await client.delete(StatefulSet, name, namespace=namespace, cascade=CascadeType.ORPHAN)
    metrics.WRITES.labels(kind="StatefulSet").inc()
    shown = ", ".join(f"{t} to {s}" for t, s in sorted(grow.items()))
    events.info(
        body,
        reason="VolumesResized",
        message=f"{name}: claims grown ({shown}); StatefulSet recreated, pods keep running",
    )
    return sts, True


async def _grow_claims(client: AsyncClient, sts: dict[str, Any], grow: dict[str, str]) -> str:
    """Ask every existing claim of the grown templates for its new size; '' when all agreed."""
    meta, spec = sts["metadata"], sts["spec"]
    owner = re.escape(meta["name"])
    patterns = {t: re.compile(rf"^{re.escape(t)}-{owner}-\d+$") for t in grow}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    refused = []
    async for pvc in client.list(PersistentVolumeClaim, namespace=meta["namespace"], labels=labels):
        pvc_name = (pvc.metadata.name if pvc.metadata else None) or ""
        template = next((t for t, p in patterns.items() if p.match(pvc_name or "")), None)
        if template is None or pvc.metadata is None:
            continue
        requests = (pvc.spec.resources.requests if pvc.spec and pvc.spec.resources else None) or {}
        if _compare(grow[template], str(requests.get("storage", ""))) <= 0:
            continue
        patch = {"spec": {"resources": {"requests": {"storage": grow[template]}}}}
        try:
            await client.patch(
                PersistentVolumeClaim,
                pvc_name,
                patch,
                namespace=meta["namespace"],
                patch_type=PatchType.MERGE,
            )
            metrics.WRITES.labels(kind="PersistentVolumeClaim").inc()
        except ApiError as exc:
            refused.append(f"claim {pvc_name}: {exc.status.message}")
    return "; ".join(refused)
