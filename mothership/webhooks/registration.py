"""Tell the API server about the webhooks: admission configurations and CRD conversion.

Everything is written by server-side apply under the field manager ``mothership`` with
``force``: the operator is the only authority on where its webhooks live, and a stale
registration (an old port, an old CA) must be replaced, not negotiated with. Applying is
idempotent, so the operator can call :func:`register` at every start.

The CRDs themselves are installed by someone else (the install manifest, a test); only
their ``spec.conversion`` is touched here. Whoever re-applies a CRD with
``strategy: None`` afterwards turns conversion off until the next :func:`register`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType

from mothership.api.bootstrap.v1beta2 import TEMPLATE_CRD as WORKER_TEMPLATE_CRD
from mothership.api.bootstrap.v1beta2 import WORKER_CONFIG_CRD
from mothership.api.controlplane.v1beta2 import CONTROL_PLANE_CRD, TEMPLATE_CRD
from mothership.api.infrastructure import v1beta2 as infrastructure
from mothership.api.infrastructure.v1beta2 import GROUP as INFRA_GROUP
from mothership.api.k0smotron.v1beta2 import CLUSTER_CRD, GROUP, JOIN_TOKEN_REQUEST_CRD
from mothership.api.mothership import v1alpha1 as mothership_v1alpha1
from mothership.webhooks.server import PATHS

CONFIG_NAME = "mothership-k0smotron"
FIELD_MANAGER = "mothership"
# Owns only the caBundle fields of objects the install manifest created.
CA_FIELD_MANAGER = "mothership-ca-bundle"
TIMEOUT_SECONDS = 10
VERSIONS = ["v1beta2", "v1beta1"]
CRD_NAMES = tuple(
    f"{crd.plural}.{crd.group}"
    for crd in (
        CLUSTER_CRD,
        JOIN_TOKEN_REQUEST_CRD,
        CONTROL_PLANE_CRD,
        TEMPLATE_CRD,
        WORKER_CONFIG_CRD,
        WORKER_TEMPLATE_CRD,
        infrastructure.RemoteCluster.CRD,
        infrastructure.RemoteClusterTemplate.CRD,
        infrastructure.RemoteMachine.CRD,
        infrastructure.RemoteMachineTemplate.CRD,
        infrastructure.PooledRemoteMachine.CRD,
    )
)

Obj = dict[str, Any]


@dataclass(frozen=True)
class ServiceRef:
    """The in-cluster Service in front of the operator's webhook port."""

    namespace: str
    name: str
    port: int = 443


async def register(
    client: AsyncClient,
    *,
    url_base: str | None = None,
    service: ServiceRef | None = None,
    ca_pem: bytes | str,
) -> None:
    """Register every webhook, reachable at ``url_base`` or through ``service``.

    ``url_base`` (``https://127.0.0.1:<port>``) is for an operator running next to the
    API server, ``service`` for one running in the cluster; exactly one is required.
    ``ca_pem`` is the CA that signed the serving certificate (:func:`webhook_tls`).
    The conversion webhook is switched on last, after the endpoints it shares with the
    admission webhooks are registered, so a half-finished registration never breaks reads.
    """
    mutating, validating = webhook_configurations(url_base=url_base, service=service, ca_pem=ca_pem)
    await _apply(client, MutatingWebhookConfiguration, mutating)
    await _apply(client, ValidatingWebhookConfiguration, validating)
    conversion = conversion_spec(url_base=url_base, service=service, ca_pem=ca_pem)
    for name in CRD_NAMES:
        if await _get_or_none(client, CustomResourceDefinition, name) is None:
            continue  # not installed (an apply would try to create a CRD of one field)
        await _apply(client, CustomResourceDefinition, _crd_conversion_patch(name, conversion))


async def unregister(client: AsyncClient) -> None:
    """Remove what :func:`register` added: both configurations, CRD conversion back to None.

    Conversion is reset with a merge patch that also deletes ``webhook``: the API server
    refuses ``strategy: None`` next to a webhook, and an apply would only drop the fields
    our field manager owns. CRDs that are gone already are skipped.
    """
    for kind in (MutatingWebhookConfiguration, ValidatingWebhookConfiguration):
        try:
            await client.delete(kind, CONFIG_NAME)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
    reset = {"spec": {"conversion": {"strategy": "None", "webhook": None}}}
    for name in CRD_NAMES:
        try:
            await client.patch(CustomResourceDefinition, name, reset, patch_type=PatchType.MERGE)
        except ApiError as exc:
            if exc.status.code != 404:
                raise


class NotInstalled(RuntimeError):
    """What :func:`register_ca_bundle` fills in is not there (yet): the message says what."""


async def register_ca_bundle(client: AsyncClient, ca_pem: bytes | str) -> list[str]:
    """Put ``caBundle`` into webhook configurations and CRD conversion installed by others.

    The install manifest (kubectl or Helm) owns every other field of those objects; this
    owns only ``caBundle``, under a field manager of its own, so re-applying the manifest
    and renewing the certificate never fight over a field, and a manifest upgrade that
    changes a rule is not blocked by the operator. Objects that already carry the bundle
    are not written. Returns what was written; raises :class:`NotInstalled` naming what
    is missing (the operator retries: in a fresh install it may start first).
    """
    bundle = _bundle(ca_pem)
    written: list[str] = []
    missing: list[str] = []
    for kind in (MutatingWebhookConfiguration, ValidatingWebhookConfiguration):
        live = await _get_or_none(client, kind, CONFIG_NAME)
        if live is None:
            missing.append(f"{kind.__name__} {CONFIG_NAME}")
            continue
        hooks = [h.name for h in live.webhooks or []]
        if all((h.clientConfig.caBundle or "") == bundle for h in live.webhooks or []):
            continue
        # Every entry, not only the stale ones: an apply that leaves out a field this
        # manager owned removes it.
        entries = [{"name": name, "clientConfig": {"caBundle": bundle}} for name in hooks]
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind.__name__,
            "metadata": {"name": CONFIG_NAME},
            "webhooks": entries,
        }
        await _apply(client, kind, body, CA_FIELD_MANAGER)
        written.append(f"{kind.__name__} {CONFIG_NAME}")
    for name in CRD_NAMES:
        crd = await _get_or_none(client, CustomResourceDefinition, name)
        conversion = crd.spec.conversion if crd is not None else None
        if conversion is None or conversion.strategy != "Webhook" or conversion.webhook is None:
            what = "does not exist" if crd is None else "has no conversion webhook"
            missing.append(f"CustomResourceDefinition {name} {what}")
            continue
        config = conversion.webhook.clientConfig
        if config is not None and config.caBundle == bundle:
            continue
        patch = {"webhook": {"clientConfig": {"caBundle": bundle}}}
        await _apply(
            client, CustomResourceDefinition, _crd_conversion_patch(name, patch), CA_FIELD_MANAGER
        )
        written.append(f"CustomResourceDefinition {name}")
    if missing:
        raise NotInstalled(
            "the install manifest's webhook registration is incomplete: "
            + "; ".join(missing)
            + " (apply deploy/install.yaml, or run `mothership install`)"
        )
    return written


def webhook_configurations(
    *, url_base: str | None = None, service: ServiceRef | None = None, ca_pem: bytes | str | None
) -> tuple[Obj, Obj]:
    """(MutatingWebhookConfiguration, ValidatingWebhookConfiguration) as dicts.

    ``ca_pem=None`` leaves ``caBundle`` out: the install manifest's form, whose bundle is
    filled in at run time (:func:`register_ca_bundle`, or cert-manager's CA injector).
    """
    client_config = _client_config_factory(url_base, service, ca_pem)
    mutating = [
        _webhook("clusters.mutate", ["clusters"], client_config(PATHS["mutate_cluster"])),
        _webhook(
            "jointokenrequests.mutate", ["jointokenrequests"], client_config(PATHS["mutate_jtr"])
        ),
    ]
    validating = [
        # clusters/scale: `kubectl scale` and autoscalers bypass the Cluster's own admission.
        _webhook(
            "clusters.validate",
            ["clusters", "clusters/scale"],
            client_config(PATHS["validate_cluster"]),
        ),
        _webhook(
            "jointokenrequests.validate",
            ["jointokenrequests"],
            client_config(PATHS["validate_jtr"]),
        ),
        # Cluster API providers' kinds: one endpoint, the kind decides the rules.
        _webhook(
            "k0smotroncontrolplanes.validate",
            ["k0smotroncontrolplanes"],
            client_config(PATHS["validate_capi"]),
            group=CONTROL_PLANE_CRD.group,
        ),
        _webhook(
            "k0sworkerconfigs.validate",
            ["k0sworkerconfigs"],
            client_config(PATHS["validate_capi"]),
            group=WORKER_CONFIG_CRD.group,
        ),
        _webhook(
            "remotemachines.validate",
            ["remotemachines"],
            client_config(PATHS["validate_capi"]),
            group=INFRA_GROUP,
            versions=VERSIONS,
        ),
        # mothership's own kinds: one version, cluster-scoped.
        _webhook(
            "datastores.validate",
            [mothership_v1alpha1.PLURAL],
            client_config(PATHS["validate_datastore"]),
            group=mothership_v1alpha1.GROUP,
            versions=[mothership_v1alpha1.VERSION],
            scope="Cluster",
        ),
    ]
    for hook in mutating:
        # Our defaults never undo another webhook's change, so a second pass adds nothing.
        hook["reinvocationPolicy"] = "Never"
    return (
        _configuration("MutatingWebhookConfiguration", mutating),
        _configuration("ValidatingWebhookConfiguration", validating),
    )


def conversion_spec(
    *, url_base: str | None = None, service: ServiceRef | None = None, ca_pem: bytes | str | None
) -> Obj:
    """The ``spec.conversion`` a k0smotron.io CRD needs to convert through ``/convert``."""
    client_config = _client_config_factory(url_base, service, ca_pem)(PATHS["convert"])
    return {
        "strategy": "Webhook",
        "webhook": {"clientConfig": client_config, "conversionReviewVersions": ["v1"]},
    }


def _client_config_factory(
    url_base: str | None, service: ServiceRef | None, ca_pem: bytes | str | None
) -> Callable[[str], Obj]:
    """Builds each webhook's clientConfig (URL or Service, plus caBundle) from its path."""
    if (url_base is None) == (service is None):
        raise ValueError("give exactly one of url_base (out of cluster) or service (in cluster)")
    bundle = None if ca_pem is None else _bundle(ca_pem)
    with_bundle = {} if bundle is None else {"caBundle": bundle}

    def client_config(path: str) -> Obj:
        if url_base is not None:
            if not url_base.startswith("https://"):
                raise ValueError(f"webhook URLs must use https, got {url_base!r}")
            return {"url": url_base.rstrip("/") + path, **with_bundle}
        assert service is not None
        ref = {"namespace": service.namespace, "name": service.name, "port": service.port}
        return {"service": {**ref, "path": path}, **with_bundle}

    return client_config


def _bundle(ca_pem: bytes | str) -> str:
    pem = ca_pem.encode() if isinstance(ca_pem, str) else ca_pem
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("ca_pem must be a PEM certificate")
    return base64.b64encode(pem).decode()


def _webhook(
    name: str,
    resources: list[str],
    client_config: Obj,
    group: str = GROUP,
    versions: list[str] = VERSIONS,
    scope: str = "Namespaced",
) -> Obj:
    return {
        "name": f"{name}.mothership.{GROUP}",
        "clientConfig": client_config,
        "rules": [
            {
                "apiGroups": [group],
                "apiVersions": versions,
                "operations": ["CREATE", "UPDATE"],
                "resources": resources,
                "scope": scope,
            }
        ],
        # Equivalent: a request through a version added later is converted to one of
        # ours instead of slipping past unchecked.
        "matchPolicy": "Equivalent",
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": TIMEOUT_SECONDS,
    }


def _configuration(kind: str, webhooks: list[Obj]) -> Obj:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": CONFIG_NAME,
            "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER},
        },
        "webhooks": webhooks,
    }


def _crd_conversion_patch(name: str, conversion: Obj) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"conversion": conversion},
    }


async def _apply(
    client: AsyncClient, kind: Any, body: Obj, field_manager: str = FIELD_MANAGER
) -> None:
    await client.patch(
        kind,
        body["metadata"]["name"],
        body,
        patch_type=PatchType.APPLY,
        field_manager=field_manager,
        force=True,
    )


async def _get_or_none(client: AsyncClient, kind: Any, name: str) -> Any:
    try:
        return await client.get(kind, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
