"""A Cluster's tenancy on a shared DataStore: its own database, its own user, and a Secret.

Runs before rendering: the control-plane pods read their kine URL from the Secret this
writes (`<cluster>-datastore`), so it must exist before the pods are created. The Secret
is written only after the database and the user exist with the password it holds, so
its presence means "provisioned" and a reconcile that finds it does no SQL at all. A
crash between the two leaves no Secret: the next pass makes a new password and sets it
on the existing user (ensure is idempotent), so the two never disagree for long.

The database outlives the Cluster unless `reclaimPolicy: Delete` asks otherwise (see
`release`): the data belongs to the user, and a Cluster created again with the same
namespace and name finds its database again (the user's password is set anew).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from mothership.api.k0smotron import v1beta2
from mothership.api.k0smotron.v1beta2 import KINE_DATASOURCE_SECRET_KEY
from mothership.api.mothership import v1alpha1
from mothership.controllers import children, events, metrics
from mothership.controllers.apply import get_or_none, owned_by
from mothership.controllers.runtime import runtime
from mothership.datastores import etcd_admin, sql_admin, sql_move, sql_tenant
from mothership.render import names

log = logging.getLogger("mothership.datastore")

DataStoreResource = create_global_resource(
    v1alpha1.GROUP, v1alpha1.VERSION, "DataStore", v1alpha1.PLURAL
)
DATASTORE_ANNOTATION = "mothership.io/datastore"
"""On the tenant Secret: the DataStore it was provisioned on (kept in the children cache)."""
TENANT_ANNOTATION = "mothership.io/datastore-tenant"
"""On the tenant Secret: `<database>/<user>` on that DataStore, for the operator's reader."""

NOT_FOUND_REASON = "DataStoreNotFound"
CREDENTIALS_REASON = "DataStoreCredentialsMissing"
UNREACHABLE_REASON = "DataStoreUnreachable"
MOVED_REASON = "DataStoreChanged"
MOVE_FAILED_REASON = "DataStoreMoveFailed"
DRIVER_REASON = "DataStoreDriverMismatch"
TLS_REASON = "DataStoreTLSUnsupported"
ETCD_ENDPOINTS_KEY = v1alpha1.ETCD_ENDPOINTS_KEY
ETCD_PREFIX_KEY = v1alpha1.ETCD_PREFIX_KEY
TLS_ANNOTATION = "mothership.io/datastore-tls"
"""On a SQL tenant Secret: "true" when it holds the server's CA (rendering mounts it)."""
CERT_ANNOTATION = "mothership.io/datastore-cert-not-after"
"""On an etcd tenant Secret: when its client certificate expires (renewed a month before)."""
RENEW_BEFORE = timedelta(days=30)
GENERATION_ANNOTATION = "mothership.io/datastore-generation"
"""On a tenant Secret: the DataStore's metadata.generation it was written from. Once the
DataStore's spec changes (endpoints, TLS), its tenants' Secrets are written again."""
REVISION_ANNOTATION = "mothership.io/datastore-revision"
"""On a tenant Secret: a digest of its data, new at every write (a move, a renewal, a
changed DataStore). Rendering puts it on the pod template: the pods roll onto the new
credentials, which they read only at start."""
RENEWED = ("DataStoreTenantRenewed", "client certificate renewed")
UPDATED = ("DataStoreTenantUpdated", "the DataStore's spec changed")
"""Why a tenant Secret is written again: (event reason, what the message says)."""

STORE_GENERATIONS: dict[str, int] = {}
"""DataStore name -> the metadata.generation its watch last showed (the DataStore handler)."""
STORE_CHANGED: list[Callable[[children.Key], None]] = []
"""Called with each tenant of a DataStore whose spec changed: the operator reconciles it."""


class Problem(Exception):
    """Why a tenant cannot be provisioned (or released): an Available reason and a message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def data_store_ref(cluster: v1beta2.Cluster) -> v1beta2.DataStoreRef | None:
    storage = cluster.spec.storage
    if storage.type == "kine":
        return storage.kine.data_store_ref
    if storage.type == "etcd":
        return storage.etcd.data_store_ref
    return None


def ref_from_spec(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The dataStoreRef of a raw spec (deletion works from the body: no model needed)."""
    storage = spec.get("storage") or {}
    kind = storage.get("type")
    if kind not in ("kine", "etcd"):
        return None
    ref = (storage.get(kind) or {}).get("dataStoreRef")
    return ref if isinstance(ref, dict) and ref.get("name") else None


def ref_field(spec: dict[str, Any]) -> str:
    """Path of the dataStoreRef in the spec, for messages."""
    kind = (spec.get("storage") or {}).get("type")
    return f"spec.storage.{'etcd' if kind == 'etcd' else 'kine'}.dataStoreRef"


AnyAdmin = sql_admin.Admin | etcd_admin.EtcdAdmin


async def _secret_data(name: str, namespace: str) -> dict[str, str] | None:
    secret = await get_or_none(runtime().client, Secret, name, namespace)
    return None if secret is None else dict(secret.data or {})


async def admin_for(store_name: str, field: str) -> tuple[dict[str, Any], AnyAdmin]:
    """The DataStore and an admin login to it; Problem names what is missing and where."""
    client = runtime().client
    try:
        store = await client.get(DataStoreResource, store_name)
    except ApiError as exc:
        if exc.status.code == 404:
            raise Problem(
                NOT_FOUND_REASON,
                f"{field} names DataStore {store_name!r}, which does not exist: create it "
                "(kubectl get datastores lists those that do) or correct the name",
            ) from None
        raise
    body = store.to_dict()
    spec = body.get("spec") or {}
    ref = spec.get("adminSecretRef") or {}
    where = f"{ref.get('namespace')}/{ref.get('name')}"
    data = await _secret_data(ref.get("name", ""), ref.get("namespace", ""))
    if data is None:
        raise Problem(
            CREDENTIALS_REASON,
            f"DataStore {store_name!r}: its admin Secret {where} (spec.adminSecretRef) does "
            "not exist; create it with the admin's username and password",
        )
    keys = (ref.get("usernameKey") or "username", ref.get("passwordKey") or "password")
    missing = [k for k in keys if k not in data]
    if missing:
        raise Problem(
            CREDENTIALS_REASON,
            f"DataStore {store_name!r}: its admin Secret {where} has no key "
            f"{', '.join(missing)} (spec.adminSecretRef.usernameKey/passwordKey)",
        )
    user, password = (base64.b64decode(data[k]).decode() for k in keys)
    endpoints = spec.get("endpoints") or []
    driver = spec.get("driver")
    if driver == "etcd":
        return body, await _etcd_admin(store_name, spec, user, password)
    try:
        sql_driver = sql_tenant.as_driver(driver)
        host, port = sql_tenant.parse_endpoint(endpoints[0], sql_driver)
    except (IndexError, ValueError) as exc:
        raise Problem(
            UNREACHABLE_REASON, f"DataStore {store_name!r}: spec.driver/endpoints[0]: {exc}"
        ) from None
    ca_pem = None
    if (spec.get("tls") or {}).get("secretRef"):
        (ca_pem,) = await _tls_secret(
            store_name, spec, (v1alpha1.TLS_CA_CERT_KEY,), "of the server"
        )
    return body, sql_admin.Admin(sql_driver, host, port, user, password, ca_pem=ca_pem)


async def _tls_secret(
    store_name: str, spec: dict[str, Any], wanted: tuple[str, ...], what: str
) -> list[bytes]:
    """The values of `wanted` in the DataStore's spec.tls Secret; Problem naming what lacks."""
    ref = (spec.get("tls") or {}).get("secretRef") or {}
    where = f"{ref.get('namespace')}/{ref.get('name')}"
    data = await _secret_data(ref.get("name", ""), ref.get("namespace", ""))
    missing = [k for k in wanted if data is not None and k not in data]
    if data is None or missing:
        lack = "does not exist" if data is None else f"has no key {', '.join(missing)}"
        raise Problem(
            CREDENTIALS_REASON,
            f"DataStore {store_name!r}: its TLS Secret {where} (spec.tls.secretRef) {lack}; "
            f"it needs {' and '.join(wanted)} of the CA {what}",
        )
    return [base64.b64decode(data[k]) for k in wanted]


async def _etcd_admin(
    store_name: str, spec: dict[str, Any], user: str, password: str
) -> etcd_admin.EtcdAdmin:
    try:
        endpoints = tuple(v1alpha1.split_endpoint(e, "etcd") for e in spec.get("endpoints") or [])
    except ValueError as exc:
        raise Problem(
            UNREACHABLE_REASON, f"DataStore {store_name!r}: spec.endpoints: {exc}"
        ) from None
    if not (spec.get("tls") or {}).get("secretRef") or not endpoints:
        raise Problem(
            CREDENTIALS_REASON,
            f"DataStore {store_name!r}: an etcd DataStore needs spec.endpoints and "
            "spec.tls.secretRef (its CA certificate and key)",
        )
    ca_cert, ca_key = await _tls_secret(
        store_name,
        spec,
        (v1alpha1.TLS_CA_CERT_KEY, v1alpha1.TLS_CA_KEY_KEY),
        "etcd trusts for clients",
    )
    return etcd_admin.EtcdAdmin(endpoints, user, password, ca_cert, ca_key)


def _driver_problem(admin: AnyAdmin, store_name: str, field: str) -> Problem | None:
    """A kine ref must name a SQL DataStore, an etcd ref an etcd one."""
    on_etcd = field.startswith("spec.storage.etcd")
    if on_etcd == isinstance(admin, etcd_admin.EtcdAdmin):
        return None
    want, other = ("etcd", "kine") if on_etcd else ("postgresql or mysql", "etcd")
    return Problem(
        DRIVER_REASON,
        f"{field} names DataStore {store_name!r} of driver {_driver_of(admin)}, but this "
        f"field takes a {want} DataStore; use spec.storage.{other}.dataStoreRef (storage "
        f"type {other}) for it, or name a {want} DataStore",
    )


def _tls_problem(body: dict[str, Any], admin: sql_admin.Admin, store_name: str) -> Problem | None:
    """k0s runs kine itself with only a data source: a MySQL DSN cannot name a CA, and there
    is no flag to give it one (PostgreSQL's URL can, so that works on both)."""
    distribution = (body.get("spec") or {}).get("distribution")
    if admin.ca_pem is None or admin.driver != "mysql" or distribution == "kubernetes":
        return None
    return Problem(
        TLS_REASON,
        f"DataStore {store_name!r} is a mysql server with TLS (spec.tls), which the k0s "
        "distribution's kine cannot verify (no way to give it the CA); use the kubernetes "
        "distribution, or a DataStore without spec.tls",
    )


def _driver_of(admin: AnyAdmin) -> str:
    return "etcd" if isinstance(admin, etcd_admin.EtcdAdmin) else admin.driver


async def ensure(
    body: dict[str, Any],
    cluster: v1beta2.Cluster,
    owned: dict[tuple[str, str], children.Child],
) -> Problem | None:
    """Provision this Cluster's tenant on its DataStore if it has none yet; the Problem
    when it cannot, for the caller to tell on the Cluster (Available=False)."""
    ref = data_store_ref(cluster)
    if ref is None:
        return None
    field = ref_field(body.get("spec") or {})
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    secret_name = names.datastore_secret(name)
    child = owned.get(("Secret", secret_name))
    if (
        child is not None
        and child.annotations.get(DATASTORE_ANNOTATION) == ref.name
        and not renewal_due(child.annotations)
        and not store_changed(child.annotations, ref.name)
    ):
        return None
    # Not (yet) in the watch cache: the Secret may still exist.
    existing = await get_or_none(runtime().client, Secret, secret_name, namespace)
    try:
        if existing is None:
            await _provision(body, ref.name, field)
            return None
        annotations = (existing.metadata and existing.metadata.annotations) or {}
        on = annotations.get(DATASTORE_ANNOTATION)
        if on == ref.name:
            if renewal_due(annotations):
                await _provision(body, ref.name, field, renew=RENEWED)
            elif store_changed(annotations, ref.name):
                await _provision(body, ref.name, field, renew=UPDATED)
            return None
        if not on:
            return Problem(
                MOVED_REASON,
                f"Secret {namespace}/{secret_name} holds this Cluster's data store credentials "
                f"but names no DataStore: it is not the operator's; delete it to provision on "
                f"{ref.name!r}",
            )
        if field.startswith("spec.storage.etcd"):
            await _move_etcd(body, on, ref.name)
        else:
            await _move(body, on, ref.name)
    except Problem as problem:
        return problem
    return None


def store_changed(annotations: Mapping[str, str], store_name: str) -> bool:
    """Whether the DataStore's spec changed since the tenant Secret was written from it.

    Older than the DataStore's generation only: a Secret written from a fresher read than
    the watch has shown yet is not stale. A Secret without the annotation (written by an
    operator before it) is taken as current: no surprise rewrite on upgrade.
    """
    seen = STORE_GENERATIONS.get(store_name)
    try:
        written = int(annotations.get(GENERATION_ANNOTATION) or "")
    except ValueError:
        return False
    return seen is not None and written < seen


def revision(data: Mapping[str, str]) -> str:
    """A digest of the tenant Secret's data: what the pod template carries."""
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(f"{key}\0{data[key]}\0".encode())
    return digest.hexdigest()[:16]


def renewal_due(annotations: Mapping[str, str], now: datetime | None = None) -> bool:
    """Whether an etcd tenant's client certificate expires within RENEW_BEFORE."""
    text = annotations.get(CERT_ANNOTATION)
    if not text:
        return False
    try:
        not_after = datetime.fromisoformat(text)
    except ValueError:
        return True
    return not_after - (now or datetime.now(UTC)) < RENEW_BEFORE


async def _move(body: dict[str, Any], source_name: str, target_name: str) -> None:
    """Move the tenant from DataStore `source_name` to `target_name` (the spec changed).

    The source login is disabled before the copy (writes stop: kine fails until the control
    plane restarts on the target), the rows are copied with their ids, and only then is the
    Secret rewritten; the caller's render rolls the pods, whose template names the DataStore.
    A failure lets the tenant back in on the source and is told; the next pass tries again.
    The source database is kept, its login disabled: moving never drops the user's data.
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    _, source = await admin_for(source_name, f"the DataStore this Cluster is on ({source_name})")
    target_store, target = await admin_for(target_name, "spec.storage.kine.dataStoreRef.name")
    refusal = _cannot_move(source, target, source_name, target_name)
    if refusal:
        raise Problem(MOVED_REASON, refusal)
    assert isinstance(source, sql_admin.Admin) and isinstance(target, sql_admin.Admin)
    unsupported = _tls_problem(body, target, target_name)
    if unsupported is not None:
        raise unsupported
    tenant = sql_tenant.tenant_for(namespace, name)
    events.info(
        body,
        reason="DataStoreMoving",
        message=f"moving database {tenant.database} from DataStore {source_name} to "
        f"{target_name}: writes stop until the control plane restarts on {target_name}",
    )
    started = time.monotonic()
    password = sql_tenant.new_password()
    try:
        await asyncio.to_thread(sql_move.freeze, source, tenant)
        await asyncio.to_thread(sql_admin.ensure_tenant, target, tenant, password)
        copied = await asyncio.to_thread(sql_move.copy_tenant, source, target, tenant)
    except sql_admin.DataStoreError as exc:
        with contextlib.suppress(sql_admin.DataStoreError):
            await asyncio.to_thread(sql_move.thaw, source, tenant)
        raise Problem(
            MOVE_FAILED_REASON,
            f"moving database {tenant.database} from DataStore {source_name} to {target_name} "
            f"failed, it stays on {source_name} (writes allowed again; retried): {exc}",
        ) from None
    secret = _sql_secret(name, namespace, target_name, target, tenant, password)
    await _rewrite(_stamped(secret, target_store), namespace)
    last = ", ".join(f"{t} up to id {i}" for t, i in copied.last_ids.items()) or "no tables"
    events.info(
        body,
        reason="DataStoreMoved",
        message=f"{copied.total} rows ({last}) copied from DataStore {source_name} to "
        f"{target_name} ({target_store['spec'].get('driver')}) in "
        f"{time.monotonic() - started:.1f} s; the database on {source_name} is kept with its "
        "login disabled; the control plane restarts on the new one",
    )


async def _move_etcd(body: dict[str, Any], source_name: str, target_name: str) -> None:
    """Move the tenant's keys from etcd DataStore `source_name` to `target_name`.

    As for SQL (see _move): the tenant's permission on the source is taken away first (its
    API server stops), the keys are copied and compared, then the Secret is rewritten with
    the target's endpoints and a certificate from the target's CA, and the pods roll. A
    failure gives the permission back. The keys on the source are kept, the role without
    permission: moving never deletes the user's data.
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    field = "spec.storage.etcd.dataStoreRef"
    _, source = await admin_for(source_name, f"the DataStore this Cluster is on ({source_name})")
    target_store, target = await admin_for(target_name, f"{field}.name")
    for store, admin in ((source_name, source), (target_name, target)):
        mismatch = _driver_problem(admin, store, f"{field}.name")
        if mismatch is not None:
            raise mismatch
    assert isinstance(source, etcd_admin.EtcdAdmin) and isinstance(target, etcd_admin.EtcdAdmin)
    if set(source.endpoints) & set(target.endpoints):
        raise Problem(
            MOVED_REASON,
            f"DataStores {source_name} and {target_name} name the same etcd: there is nothing "
            f"to move; restore {field}.name to {source_name}",
        )
    tenant = etcd_admin.etcd_tenant_for(namespace, name)
    events.info(
        body,
        reason="DataStoreMoving",
        message=f"moving the keys under {tenant.prefix}/ from DataStore {source_name} to "
        f"{target_name}: the control plane stops until it restarts on {target_name}",
    )
    started = time.monotonic()
    try:
        await asyncio.to_thread(etcd_admin.freeze, source, tenant)
        await asyncio.to_thread(etcd_admin.ensure_tenant, target, tenant)
        copied = await asyncio.to_thread(etcd_admin.copy_tenant, source, target, tenant)
    except sql_admin.DataStoreError as exc:
        with contextlib.suppress(sql_admin.DataStoreError):
            await asyncio.to_thread(etcd_admin.thaw, source, tenant)
        raise Problem(
            MOVE_FAILED_REASON,
            f"moving the keys under {tenant.prefix}/ from DataStore {source_name} to "
            f"{target_name} failed, they stay on {source_name} (the control plane may write "
            f"again; retried): {exc}",
        ) from None
    secret = _etcd_secret(name, namespace, target_name, target, tenant)
    await _rewrite(_stamped(secret, target_store), namespace)
    events.info(
        body,
        reason="DataStoreMoved",
        message=f"{copied.keys} keys ({copied.leased} with a lease, given a new one) copied "
        f"from DataStore {source_name} to {target_name} and compared in "
        f"{time.monotonic() - started:.1f} s; the keys on {source_name} are kept, the "
        "tenant's permission there withdrawn; the control plane restarts on the new one",
    )


def _cannot_move(
    source: AnyAdmin, target: AnyAdmin, source_name: str, target_name: str
) -> str | None:
    if (
        isinstance(source, etcd_admin.EtcdAdmin)
        or isinstance(target, etcd_admin.EtcdAdmin)
        or source.driver != target.driver
    ):
        return (
            f"cannot move this tenant from DataStore {source_name} ({_driver_of(source)}) to "
            f"{target_name} ({_driver_of(target)}): only between SQL DataStores of one "
            f"driver; restore spec.storage.kine.dataStoreRef.name to {source_name}"
        )
    if (source.host, source.port) == (target.host, target.port):
        return (
            f"DataStores {source_name} and {target_name} name the same server "
            f"({source.host}:{source.port}): there is nothing to move; restore "
            f"spec.storage.kine.dataStoreRef.name to {source_name}"
        )
    return None


def _secret(
    name: str,
    namespace: str,
    store_name: str,
    tenant: str,
    data: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The tenant Secret: its credentials, and which DataStore and tenant they are for."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.datastore_secret(name),
            "namespace": namespace,
            "labels": names.labels(name, "datastore"),
            "annotations": {
                DATASTORE_ANNOTATION: store_name,
                TENANT_ANNOTATION: tenant,
                **(annotations or {}),
            },
        },
        "stringData": data,
    }


def _sql_secret(
    name: str,
    namespace: str,
    store_name: str,
    admin: sql_admin.Admin,
    tenant: sql_tenant.Tenant,
    password: str,
) -> dict[str, Any]:
    """The kine URL; with TLS also the server's CA, which the pods mount at TENANT_CA_DIR."""
    ca_file = f"{v1alpha1.TENANT_CA_DIR}/{v1alpha1.TLS_CA_CERT_KEY}" if admin.ca_pem else None
    url = sql_tenant.kine_url(admin.driver, admin.host, admin.port, tenant, password, ca_file)
    data = {KINE_DATASOURCE_SECRET_KEY: url}
    # "false" said, not left out: a move from a server with TLS to one without rewrites the
    # Secret by merging, which would keep a "true".
    annotations = {TLS_ANNOTATION: "true" if admin.ca_pem is not None else "false"}
    if admin.ca_pem is not None:
        data[v1alpha1.TLS_CA_CERT_KEY] = admin.ca_pem.decode()
    tenant_name = f"{tenant.database}/{tenant.user}"
    return _secret(name, namespace, store_name, tenant_name, data, annotations)


def _etcd_secret(
    name: str,
    namespace: str,
    store_name: str,
    admin: etcd_admin.EtcdAdmin,
    tenant: etcd_admin.EtcdTenant,
) -> dict[str, Any]:
    """What the API server needs: where etcd is, its CA, the tenant's certificate and key.
    Never the CA key: that stays in the DataStore's Secret."""
    cert = etcd_admin.client_cert(admin, tenant)
    data = {
        ETCD_ENDPOINTS_KEY: ",".join(admin.urls),
        ETCD_PREFIX_KEY: tenant.prefix,
        "ca.crt": admin.ca_cert_pem.decode(),
        v1alpha1.ETCD_CLIENT_CERT_KEY: cert.cert_pem.decode(),
        v1alpha1.ETCD_CLIENT_KEY_KEY: cert.key_pem.decode(),
    }
    return _secret(
        name,
        namespace,
        store_name,
        tenant.user,
        data,
        {CERT_ANNOTATION: cert.not_after.isoformat()},
    )


def _stamped(secret: dict[str, Any], store: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret with the DataStore generation it comes from and its data's revision."""
    annotations = secret["metadata"]["annotations"]
    generation = (store.get("metadata") or {}).get("generation")
    if generation is not None:
        annotations[GENERATION_ANNOTATION] = str(generation)
    annotations[REVISION_ANNOTATION] = revision(secret["stringData"])
    return secret


async def _rewrite(secret: dict[str, Any], namespace: str) -> None:
    """Replace the tenant Secret's data and our annotations (a move, a renewal)."""
    result = await runtime().client.patch(
        Secret,
        secret["metadata"]["name"],
        {"metadata": {"annotations": secret["metadata"]["annotations"]}, **_data(secret)},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    metrics.WRITES.labels(kind="Secret").inc()
    children.observe_write(result.to_dict())


def _data(secret: dict[str, Any]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()}
    return {"data": encoded}


async def _provision(
    body: dict[str, Any], store_name: str, field: str, *, renew: tuple[str, str] | None = None
) -> None:
    """Make the tenant and write its Secret (`renew`, RENEWED or UPDATED: rewrite the
    Secret of one that has it, with a new client certificate or password)."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    store, admin = await admin_for(store_name, f"{field}.name")
    mismatch = _driver_problem(admin, store_name, f"{field}.name")
    if mismatch is not None:
        raise mismatch
    if isinstance(admin, etcd_admin.EtcdAdmin):
        etcd = etcd_admin.etcd_tenant_for(namespace, name)
        try:
            created = await asyncio.to_thread(etcd_admin.ensure_tenant, admin, etcd)
        except sql_admin.DataStoreError as exc:
            raise Problem(
                UNREACHABLE_REASON,
                f"DataStore {store_name!r}: could not create etcd user and role {etcd.user}: {exc}",
            ) from None
        secret = _etcd_secret(name, namespace, store_name, admin, etcd)
        made = f"etcd user and role {etcd.user} (keys under {etcd.prefix}/) " + (
            "created" if created else "found"
        )
    else:
        unsupported = _tls_problem(body, admin, store_name)
        if unsupported is not None:
            raise unsupported
        tenant = sql_tenant.tenant_for(namespace, name)
        password = sql_tenant.new_password()
        try:
            created = await asyncio.to_thread(sql_admin.ensure_tenant, admin, tenant, password)
        except sql_admin.DataStoreError as exc:
            raise Problem(
                UNREACHABLE_REASON,
                f"DataStore {store_name!r}: could not create database {tenant.database} and "
                f"user {tenant.user}: {exc}",
            ) from None
        secret = _sql_secret(name, namespace, store_name, admin, tenant, password)
        verb = "created" if created else "found (its password set anew)"
        made = f"database {tenant.database} and user {tenant.user} {verb}"
    secret = _stamped(secret, store)
    if renew:
        await _rewrite(secret, namespace)
    else:
        created_secret = await runtime().client.create(from_dict(owned_by(secret, body)))
        metrics.WRITES.labels(kind="Secret").inc()
        children.observe_write(created_secret.to_dict())
    reason, why = renew or ("DataStoreTenantReady", "")
    events.info(
        body,
        reason=reason,
        message=f"{made} on DataStore {store_name} ({store['spec'].get('driver')}); "
        + (f"{why}: credentials rewritten in" if why else "credentials in")
        + f" Secret {names.datastore_secret(name)}",
    )


async def release(body: dict[str, Any]) -> bool:
    """On deletion: drop the tenant's database and user if reclaimPolicy is Delete.

    False while it cannot (the server is unreachable, the admin Secret is missing): the
    Cluster keeps its finalizer and the next resync tries again, so nothing the user asked
    to remove is left behind silently; setting reclaimPolicy to Retain lets the deletion
    finish instead. A DataStore that does not exist holds nothing: a warning, and done.
    """
    spec = body.get("spec") or {}
    ref = ref_from_spec(spec)
    if ref is None or ref.get("reclaimPolicy", "Retain") != "Delete":
        return True
    field = ref_field(spec)
    meta = body["metadata"]
    sql = sql_tenant.tenant_for(meta["namespace"], meta["name"])
    etcd = etcd_admin.etcd_tenant_for(meta["namespace"], meta["name"])
    on_etcd = field.startswith("spec.storage.etcd")
    what = (
        f"etcd keys under {etcd.prefix}/, user and role {etcd.user}"
        if on_etcd
        else f"database {sql.database} and user {sql.user}"
    )
    try:
        _, admin = await admin_for(ref["name"], f"{field}.name")
        if isinstance(admin, etcd_admin.EtcdAdmin):
            dropped = await asyncio.to_thread(etcd_admin.drop_tenant, admin, etcd)
        else:
            dropped = await asyncio.to_thread(sql_admin.drop_tenant, admin, sql)
    except Problem as exc:
        if exc.reason != NOT_FOUND_REASON:
            return _retrying(body, what, field, exc.message)
        # No DataStore, no server to drop from: a Cluster that never got its database (the
        # DataStore never existed), or one whose DataStore was forced away. Holding the
        # deletion for ever would help nobody; the event says what was not done.
        events.warn(
            body,
            reason=NOT_FOUND_REASON,
            message=f"reclaimPolicy Delete: DataStore {ref['name']} does not exist, so "
            f"{what} were not dropped anywhere",
        )
        return True
    except sql_admin.DataStoreError as exc:
        return _retrying(body, what, field, str(exc))
    events.info(
        body,
        reason="DataStoreTenantDropped" if dropped else "DataStoreTenantGone",
        message=f"reclaimPolicy Delete: {what} "
        + ("dropped" if dropped else "were already gone")
        + f" on DataStore {ref['name']}",
    )
    return True


def _retrying(body: dict[str, Any], what: str, field: str, why: str) -> bool:
    events.warn(
        body,
        reason="DataStoreReleaseFailed",
        message=f"reclaimPolicy Delete: {what} not dropped yet ({why}); "
        f"retrying. Set {field}.reclaimPolicy to Retain to keep them "
        "and let the deletion finish",
    )
    return False
