"""The K0sWorkerConfig reconciler: Cluster API's bootstrap contract for worker Machines.

For a config owned by a Machine (Cluster API sets the ownerReference), once the Machine's
Cluster has an initialized control plane: a JoinTokenRequest for the hosted Cluster, owned
by the config (so the per-Machine token expires after a day and is revoked from the tenant
when the Machine, and with it the config, goes), then cloud-config bootstrap data with the
join script rendered from that token and the config's fields, in a Secret Cluster API hands
to the infrastructure provider. The data is written once: a Machine is bootstrapped from
what it was given, and a later edit of the config does not rewrite it.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from datetime import datetime
from typing import Any

import kopf
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import ConfigMap, Secret
from lightkube.types import PatchType
from pydantic import ValidationError

from mothership.api.bootstrap.v1beta2 import CONDITION_DATA_SECRET, GROUP, K0sWorkerConfig
from mothership.api.k0smotron import v1beta2 as k0smotron
from mothership.controllers import events, metrics
from mothership.controllers.apply import get_or_none, owner_name
from mothership.controllers.cluster import ClusterResource
from mothership.controllers.conditions import Condition, merge
from mothership.controllers.controlplane import CapiClusterResource
from mothership.controllers.join_token import JTRResource, join_options
from mothership.controllers.runtime import runtime
from mothership.render import node_join, worker_bootstrap, worker_ignition
from mothership.render.join_token import EXPIRES_ANNOTATION
from mothership.render.names import CAPI_CLUSTER_NAME_LABEL, FIELD_MANAGER

# The bootstrap data formats written (spec.provisioner.type), each for linux.
FORMATS = (worker_bootstrap.FORMAT, worker_ignition.FORMAT)

log = logging.getLogger("mothership.bootstrap")

VERSION, PLURAL, KIND = "v1beta2", "k0sworkerconfigs", "K0sWorkerConfig"
ConfigResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
TOKEN_EXPIRY = "24h"
MERGE = PatchType.MERGE


class NotYet(Exception):
    """A precondition is not met yet; the message is the condition's text."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@kopf.on.event(GROUP, VERSION, PLURAL)
async def on_config_event(type: str, body: kopf.Body, **_: Any) -> None:
    if type != "DELETED":
        await reconcile(dict(body))


@kopf.on.event("k0smotron.io", "v1beta2", "jointokenrequests")
async def on_token_event(body: kopf.Body, **_: Any) -> None:
    """The per-Machine token request changed (its Secret was written): go on."""
    owner = owner_name(dict(body), KIND, GROUP)
    if owner is not None:
        config = await get_or_none(
            runtime().client, ConfigResource, owner, body["metadata"]["namespace"]
        )
        if config is not None:
            await reconcile(config.to_dict())


@kopf.on.event("cluster.x-k8s.io", "v1beta2", "clusters")
async def on_capi_cluster_event(type: str, body: kopf.Body, **_: Any) -> None:
    """A Cluster's control plane came up: its Machines' configs can get their data."""
    status = body.get("status") or {}
    if type != "DELETED" and (status.get("initialization") or {}).get("controlPlaneInitialized"):
        await reconcile_waiting(body["metadata"]["namespace"], body["metadata"]["name"])


async def reconcile_waiting(namespace: str, cluster: str) -> None:
    """Configs of this Cluster still without data (its control plane just came up)."""
    rt = runtime()
    try:
        async for config in rt.client.list(
            ConfigResource, namespace=namespace, labels={CAPI_CLUSTER_NAME_LABEL: cluster}
        ):
            body = config.to_dict()
            if not _created(body):
                await reconcile(body)
    except ApiError as exc:
        if exc.status.code != 404:  # 404: the bootstrap CRD is not installed
            raise


def _created(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    return bool((status.get("initialization") or {}).get("dataSecretCreated"))


async def reconcile(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp") or _created(body):
        return
    try:
        secret_name = await _reconcile(body)
        await _write_status(body, secret_name, None)
        metrics.RECONCILES.labels(kind=KIND, result="ok").inc()
    except NotYet as exc:
        await _write_status(
            body, None, Condition(CONDITION_DATA_SECRET, False, exc.reason, str(exc))
        )
        metrics.RECONCILES.labels(kind=KIND, result="waiting").inc()
    except ApiError as exc:
        if exc.status.code not in (404, 409):
            raise


async def _reconcile(body: dict[str, Any]) -> str:
    rt = runtime()
    meta = body["metadata"]
    ns = meta["namespace"]
    try:
        config = K0sWorkerConfig.model_validate(body)
    except ValidationError as exc:
        raise NotYet("InvalidSpec", str(exc)[:500]) from exc
    machine = owner_name(body, "Machine", "cluster.x-k8s.io")
    if machine is None:
        raise NotYet("WaitingForMachine", "waiting for Cluster API to set the owning Machine")
    cluster = (meta.get("labels") or {}).get(CAPI_CLUSTER_NAME_LABEL)
    if not cluster:
        raise NotYet("WaitingForMachine", f"waiting for the {CAPI_CLUSTER_NAME_LABEL} label")
    provisioner = config.spec.provisioner
    if provisioner.type not in FORMATS or provisioner.platform != "linux":
        raise NotYet(
            "UnsupportedFormat",
            f"spec.provisioner: {provisioner.type} for {provisioner.platform} is not written "
            f"by mothership yet; use type {' or '.join(FORMATS)}, platform linux",
        )
    ignition = provisioner.ignition
    additional = (ignition.additional_config if ignition else None) or ""
    if provisioner.type == worker_ignition.FORMAT:
        if provisioner.custom_user_data_ref is not None:
            raise NotYet(
                "InvalidSpec",
                "spec.provisioner.customUserDataRef is cloud-config; with type ignition put "
                "an Ignition config in spec.provisioner.ignition.additionalConfig",
            )
        if additional.strip():
            try:
                worker_ignition.check_additional_config(additional)
            except worker_ignition.IgnitionError as exc:
                raise NotYet("InvalidSpec", str(exc)) from exc
    capi = await get_or_none(rt.client, CapiClusterResource, cluster, ns)
    status = (capi.to_dict().get("status") or {}) if capi is not None else {}
    if not (status.get("initialization") or {}).get("controlPlaneInitialized"):
        raise NotYet(
            "WaitingForControlPlaneInitialization",
            f"Cluster {cluster}'s control plane is not initialized yet",
        )
    hosted = await get_or_none(rt.client, ClusterResource, cluster, ns)
    if hosted is None:
        raise NotYet(
            "NoHostedControlPlane",
            f"no k0smotron.io Cluster {cluster}: mothership joins workers to control planes "
            "it hosts (a K0smotronControlPlane)",
        )
    token, expires = await _token(body, cluster)
    script = _join_script(hosted.to_dict(), ns, token, expires, config, machine)
    files = [await _file(ns, i, f) for i, f in enumerate(config.spec.files or [])]
    custom = ""
    if config.spec.provisioner.custom_user_data_ref is not None:
        custom = await _content(ns, "spec.provisioner.customUserDataRef",
                                config.spec.provisioner.custom_user_data_ref)  # fmt: skip
    # What every format carries; each writes it its own way.
    steps: dict[str, Any] = {
        "files": files,
        "pre_commands": config.spec.pre_k0s_commands,
        "post_commands": config.spec.post_k0s_commands,
        "working_dir": config.spec.working_dir,
    }
    if provisioner.type == worker_ignition.FORMAT:
        try:
            data = worker_ignition.ignition_config(script, **steps, additional_config=additional)
        except worker_ignition.IgnitionError as exc:
            raise NotYet("InvalidSpec", str(exc)) from exc
    else:
        data = worker_bootstrap.cloud_config(script, **steps, custom_user_data=custom)
    metadata = config.spec.secret_metadata.to_api() if config.spec.secret_metadata else None
    secret = worker_bootstrap.bootstrap_secret(
        body, cluster, data, metadata, data_format=provisioner.type
    )
    try:
        await rt.client.create(from_dict(secret))
        metrics.WRITES.labels(kind="Secret").inc()
        events.info(body, reason="BootstrapDataWritten", message=f"Secret {meta['name']}")
    except ApiError as exc:
        if exc.status.code != 409:  # 409: written by an earlier run whose status write was lost
            raise
    return str(meta["name"])


async def _token(body: dict[str, Any], cluster: str) -> tuple[str, datetime | None]:
    """The per-Machine join token, from a JoinTokenRequest owned by the config."""
    rt = runtime()
    meta = body["metadata"]
    ns, name = meta["namespace"], f"{meta['name']}-token"
    request = {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "JoinTokenRequest",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {CAPI_CLUSTER_NAME_LABEL: cluster},
            "ownerReferences": [
                {
                    "apiVersion": body["apiVersion"],
                    "kind": body["kind"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "clusterRef": {"name": cluster, "namespace": ns},
            "expiry": TOKEN_EXPIRY,
            "role": "worker",
        },
    }
    if await get_or_none(rt.client, JTRResource, name, ns) is None:
        await rt.client.apply(from_dict(request), field_manager=FIELD_MANAGER, force=True)
        metrics.WRITES.labels(kind="JoinTokenRequest").inc()
    secret = await get_or_none(rt.client, Secret, name, ns)
    if secret is None or "token" not in (secret.data or {}):
        raise NotYet("WaitingForJoinToken", f"waiting for JoinTokenRequest {name}")
    token = base64.b64decode(secret.data["token"]).decode()
    expiry = (secret.metadata.annotations or {}).get(EXPIRES_ANNOTATION)
    return token, datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None


def _join_script(
    hosted: dict[str, Any],
    ns: str,
    token: str,
    expires: datetime | None,
    config: K0sWorkerConfig,
    machine: str,
) -> str:
    spec = config.spec
    try:
        model = k0smotron.Cluster.model_validate(hosted)
        facts = node_join.join_facts(model, ns, token, expires)
        if spec.version:
            versions = (
                dataclasses.replace(facts.versions, kubernetes=spec.version)
                if facts.distribution == "kubernetes"
                else dataclasses.replace(
                    facts.versions,
                    k0s=node_join.k0s_release(spec.version),
                    kubernetes=node_join.k0s_release(spec.version).split("+", 1)[0],
                )
            )
            facts = dataclasses.replace(facts, versions=versions)
        defaults = join_options()
        options = worker_bootstrap.worker_options(
            spec.args,
            node_name="" if spec.use_system_hostname else machine,
            download_url=spec.download_url or defaults.download_url,
            registry_mirror=defaults.registry_mirror,
            preinstalled=spec.pre_installed_k0s,
        )
        return node_join.render_join_script(facts, options)
    except (ValueError, ValidationError) as exc:
        raise NotYet("InvalidSpec", f"cannot render the join: {exc}"[:500]) from exc


async def _content(ns: str, field: str, source: Any) -> str:
    rt = runtime()
    ref, kind = (
        (source.secret_ref, Secret)
        if source.secret_ref is not None
        else (source.config_map_ref, ConfigMap)
    )
    if ref is None:
        raise NotYet("InvalidSpec", f"{field}: give secretRef or configMapRef")
    obj = await get_or_none(rt.client, kind, ref.name, ns)
    data = (obj.data or {}) if obj is not None else {}
    if ref.key not in data:
        what = "Secret" if kind is Secret else "ConfigMap"
        raise NotYet("MissingContent", f"{field}: {what} {ns}/{ref.name} has no key {ref.key!r}")
    value = data[ref.key]
    return base64.b64decode(value).decode() if kind is Secret else str(value)


async def _file(ns: str, index: int, f: Any) -> worker_bootstrap.BootstrapFile:
    field = f"spec.files[{index}]"
    if not f.path:
        raise NotYet("InvalidSpec", f"{field}.path: give the file's absolute path")
    content = f.content or ""
    if f.content_from is not None:
        content = await _content(ns, f"{field}.contentFrom", f.content_from)
    return worker_bootstrap.BootstrapFile(f.path, content, f.permissions or "0644")


async def _write_status(
    body: dict[str, Any], secret_name: str | None, waiting: Condition | None
) -> None:
    meta = body["metadata"]
    previous = body.get("status") or {}
    created = secret_name is not None
    cond = waiting or Condition(
        CONDITION_DATA_SECRET, True, "SecretCreated", f"Secret {secret_name}"
    )
    ready = Condition("Ready", created, "Ready" if created else "NotReady", cond.message)
    new: dict[str, Any] = {
        "conditions": merge(previous.get("conditions"), [cond, ready], meta.get("generation")),
        "initialization": {"dataSecretCreated": created},
    }
    if secret_name:
        new["dataSecretName"] = secret_name
    if meta.get("generation") is not None:
        new["observedGeneration"] = meta["generation"]
    if previous == new:
        return
    await runtime().client.patch(
        ConfigResource.Status, meta["name"], {"status": new}, namespace=meta["namespace"],
        patch_type=MERGE,
    )  # fmt: skip
    metrics.WRITES.labels(kind=f"{KIND}Status").inc()
