"""Tenants on a shared etcd: a key prefix, a user and a role limited to it (blocking I/O).

etcd's auth gives each Cluster exactly what kube-apiserver needs and nothing more: a role
with read-write permission on the range ``/<tenant>/`` … ``/<tenant>0`` and a user (no
password) holding only that role. The API server authenticates as that user with a client
certificate whose common name is the user's name, which the operator issues from the CA the
etcd cluster trusts for clients; the certificate is all the tenant ever holds.

The operator speaks to etcd through its JSON gateway (``/v3/...`` on the client port) with
httpx, not gRPC: no generated stubs or grpcio wheels for the half-dozen calls it makes. Two
properties of the gateway shape the calls: it refuses a client certificate that has a
common name (it could not pass it on as the user), so the operator's own certificate has
an organization only; and it authenticates the operator with the admin user's password
(a token per call batch). Tenants' API servers speak gRPC and are never limited by this.

Compaction needs the root role in etcd 3.6: tenants cannot compact (their API servers run
with ``--etcd-compaction-interval=0``); the etcd cluster must compact itself
(``--auto-compaction-mode``/``--auto-compaction-retention``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from mothership.api.mothership.v1alpha1 import TLS_CA_CERT_KEY
from mothership.datastores.sql_admin import DataStoreError
from mothership.datastores.sql_tenant import check_tenant, tenant_for
from mothership.pki import certs

OPERATOR_ORGANIZATION = "mothership-operator"
"""Subject of the operator's own client certificate (no common name: see the module doc)."""
CLIENT_CERT_DAYS = 365
TIMEOUT = 10.0


@dataclass(frozen=True)
class EtcdTenant:
    """A Cluster's user, role (same name) and key prefix on a shared etcd."""

    user: str

    @property
    def role(self) -> str:
        return self.user

    @property
    def prefix(self) -> str:
        """The API server's --etcd-prefix: its keys are ``<prefix>/<resource>/...``."""
        return f"/{self.user}"

    @property
    def key_range(self) -> tuple[bytes, bytes]:
        """[start, end) of every key under the prefix, and nothing of a longer sibling name."""
        start = f"{self.prefix}/".encode()
        return start, start[:-1] + b"0"  # "/" + 1 == "0"


def etcd_tenant_for(namespace: str, name: str) -> EtcdTenant:
    """The tenant of the Cluster ``namespace/name``: named as its SQL database would be."""
    tenant = tenant_for(namespace, name)
    check_tenant(tenant)
    return EtcdTenant(user=tenant.database)


@dataclass(frozen=True)
class EtcdAdmin:
    """The operator's login to a shared etcd: root-role user and password, and the CA."""

    endpoints: tuple[tuple[str, int], ...]
    user: str
    password: str = field(repr=False)
    ca_cert_pem: bytes = field(repr=False)
    ca_key_pem: bytes = field(repr=False)
    timeout: float = 5.0

    @property
    def urls(self) -> list[str]:
        return [f"https://{_host(h)}:{p}" for h, p in self.endpoints]

    @property
    def ca(self) -> certs.CertKey:
        return certs.CertKey(self.ca_cert_pem, self.ca_key_pem)


def client_cert(admin: EtcdAdmin, tenant: EtcdTenant) -> certs.CertKey:
    """The tenant's client certificate: its user name as common name, from the DataStore CA."""
    return certs.issue_cert(admin.ca, tenant.user, client=True, validity_days=CLIENT_CERT_DAYS)


def ping(admin: EtcdAdmin) -> None:
    """Log in as the admin and ask for the auth status; DataStoreError if that fails or auth
    is off (then any client could read every tenant's keys: refused, not tolerated)."""
    with _session(admin, "ping", admin.timeout) as call:
        status = call("/v3/auth/status", {})
    if not status.get("enabled"):
        raise DataStoreError(
            f"etcd at {admin.urls[0]}: authentication is not enabled, so tenants could read "
            "each other's keys; enable it (etcdctl auth enable) first"
        )


def ensure_tenant(admin: EtcdAdmin, tenant: EtcdTenant) -> bool:
    """Make the tenant's role (read-write on its prefix only) and user holding just that
    role; True if the user was created. Idempotent: existing ones are granted again."""
    start, end = tenant.key_range
    with _session(admin, f"ensure tenant {tenant.user!r}") as call:
        created = _absent_ok(call, "/v3/auth/user/add", _user_add(tenant.user))
        _absent_ok(call, "/v3/auth/role/add", {"name": tenant.role})
        call(
            "/v3/auth/role/grant",
            {
                "name": tenant.role,
                "perm": {"permType": "READWRITE", "key": _b64(start), "range_end": _b64(end)},
            },
        )
        call("/v3/auth/user/grant", {"user": tenant.user, "role": tenant.role})
    return created


def drop_tenant(admin: EtcdAdmin, tenant: EtcdTenant) -> bool:
    """Delete every key under the prefix, then the user and the role; True if any existed."""
    start, end = tenant.key_range
    with _session(admin, f"drop tenant {tenant.user!r}") as call:
        deleted = call("/v3/kv/deleterange", {"key": _b64(start), "range_end": _b64(end)})
        had_keys = int(deleted.get("deleted", 0)) > 0
        had_user = _gone_ok(call, "/v3/auth/user/delete", {"name": tenant.user})
        _gone_ok(call, "/v3/auth/role/delete", {"role": tenant.role})
    return had_keys or had_user


# --- moving a tenant to another etcd -----------------------------------------------------------

PAGE = 500  # keys per range read while copying
BATCH = 100  # puts per transaction (etcd's default --max-txn-ops is 128)
MOVED_LEASE_SECONDS = 3600
"""Keys that had a lease on the source (events) get one lease of this length on the target:
they stay transient instead of outliving their purpose for ever."""


@dataclass(frozen=True)
class Copied:
    """What a copy moved: how many keys, how many of them with a lease, and a digest of every
    key and value (the same on both sides when the copy is whole)."""

    keys: int
    leased: int
    digest: str


def freeze(admin: EtcdAdmin, tenant: EtcdTenant) -> None:
    """Take the tenant's permission away: its API server can neither write nor read until
    it restarts elsewhere. The user and role stay (thaw gives the permission back)."""
    start, end = tenant.key_range
    with _session(admin, f"freeze tenant {tenant.user!r}") as call:
        _gone_ok(
            call,
            "/v3/auth/role/revoke",
            {"role": tenant.role, "key": _b64(start), "range_end": _b64(end)},
        )


def thaw(admin: EtcdAdmin, tenant: EtcdTenant) -> None:
    """Give the tenant its permission back (after a failed move)."""
    ensure_tenant(admin, tenant)


def copy_tenant(source: EtcdAdmin, target: EtcdAdmin, tenant: EtcdTenant) -> Copied:
    """Copy every key under the tenant's prefix from `source` to `target`, replacing what a
    failed earlier try left there, and check both sides hold the same keys and values.

    Revisions cannot be kept (the target's counter is shared with its other tenants): the
    API server restarting there relists, and watchers with an old resourceVersion start over.
    """
    start, end = tenant.key_range
    with _session(target, f"clear {tenant.prefix}/ before the copy") as put:
        put("/v3/kv/deleterange", {"key": _b64(start), "range_end": _b64(end)})
    lease_id = ""
    with (
        _session(source, f"read {tenant.prefix}/") as get,
        _session(target, f"write {tenant.prefix}/") as put,
    ):
        keys = leased = 0
        for page in _pages(get, start, end):
            ops = []
            for kv in page:
                op: dict[str, Any] = {"key": kv["key"], "value": kv.get("value", "")}
                if kv.get("lease") not in (None, "0", 0):
                    if not lease_id:
                        granted = put("/v3/lease/grant", {"TTL": str(MOVED_LEASE_SECONDS)})
                        lease_id = str(granted["ID"])
                    op["lease"] = lease_id
                    leased += 1
                ops.append({"request_put": op})
            for i in range(0, len(ops), BATCH):
                put("/v3/kv/txn", {"success": ops[i : i + BATCH]})
            keys += len(page)
    source_digest = _digest(source, tenant)
    target_digest = _digest(target, tenant)
    if source_digest != target_digest:
        raise DataStoreError(
            f"etcd at {target.urls[0]}: the copy of {tenant.prefix}/ differs from the source "
            f"({target_digest[1]} keys against {source_digest[1]})"
        )
    return Copied(keys, leased, source_digest[0])


def _pages(call: Any, start: bytes, end: bytes) -> Iterator[list[dict[str, Any]]]:
    key = start
    while True:
        answer = call(
            "/v3/kv/range",
            {
                "key": _b64(key),
                "range_end": _b64(end),
                "limit": PAGE,
                "sort_order": "ASCEND",
                "sort_target": "KEY",
            },
        )
        page = answer.get("kvs") or []
        if page:
            yield page
        if not answer.get("more") or not page:
            return
        key = base64.b64decode(page[-1]["key"]) + b"\x00"


def _digest(admin: EtcdAdmin, tenant: EtcdTenant) -> tuple[str, int]:
    """(sha256 over every key and value in key order, how many keys)."""
    start, end = tenant.key_range
    digest = hashlib.sha256()
    count = 0
    with _session(admin, f"check {tenant.prefix}/") as call:
        for page in _pages(call, start, end):
            for kv in page:
                digest.update(kv["key"].encode() + b"=" + kv.get("value", "").encode() + b"\n")
                count += 1
    return digest.hexdigest(), count


def key_count(admin: EtcdAdmin, tenant: EtcdTenant) -> int:
    """How many keys the tenant has (for status and tests)."""
    start, end = tenant.key_range
    with _session(admin, f"count keys of {tenant.user!r}") as call:
        answer = call(
            "/v3/kv/range", {"key": _b64(start), "range_end": _b64(end), "count_only": True}
        )
    return int(answer.get("count", 0))


def tenant_exists(admin: EtcdAdmin, tenant: EtcdTenant) -> bool:
    with _session(admin, f"look up tenant {tenant.user!r}") as call:
        return _gone_ok(call, "/v3/auth/user/get", {"name": tenant.user})


# --- the gateway ------------------------------------------------------------------------------

_EXISTS = "already exists"
_NOT_FOUND = "not found"


def _user_add(user: str) -> dict[str, Any]:
    return {"name": user, "options": {"no_password": True}}


def _absent_ok(call: Any, path: str, body: dict[str, Any]) -> bool:
    """True if made, False if it was there already."""
    return _tolerating(_EXISTS, call, path, body)


def _gone_ok(call: Any, path: str, body: dict[str, Any]) -> bool:
    """True if it existed (and the call went through), False if etcd did not know it."""
    return _tolerating(_NOT_FOUND, call, path, body)


def _tolerating(refusal: str, call: Any, path: str, body: dict[str, Any]) -> bool:
    """False when etcd refuses the call with `refusal` in its message, True when it went
    through; any other refusal is raised."""
    try:
        call(path, body)
    except _Refused as exc:
        if refusal in exc.message:
            return False
        raise
    return True


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@contextlib.contextmanager
def _session(admin: EtcdAdmin, what: str, timeout: float = TIMEOUT) -> Iterator[Any]:
    """A `call(path, body) -> dict` logged in as the admin, on the first endpoint that
    answers; every failure becomes DataStoreError naming the endpoint and what etcd said."""
    with _tls(admin) as context, contextlib.ExitStack() as stack:
        found: tuple[httpx.Client, str, str] | None = None
        last: Exception | None = None
        for url in admin.urls:
            client = stack.enter_context(
                httpx.Client(base_url=url, verify=context, timeout=timeout)
            )
            try:
                found = (
                    client,
                    url,
                    _post(client, "/v3/auth/authenticate", admin.user, admin.password),
                )
                break
            except _Refused as exc:
                raise DataStoreError(f"etcd at {url}: {what}: {_explain(exc.message)}") from None
            except httpx.HTTPError as exc:
                last = exc
        if found is None:
            where = ", ".join(admin.urls)
            raise DataStoreError(f"etcd at {where}: {what}: {_describe(last)}")
        client, url, token = found
        headers = {"Authorization": token}

        def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            return _answer(client.post(path, json=body, headers=headers))

        try:
            yield call
        except _Refused as exc:
            raise DataStoreError(f"etcd at {url}: {what}: {_explain(exc.message)}") from None
        except httpx.HTTPError as exc:
            raise DataStoreError(f"etcd at {url}: {what}: {_describe(exc)}") from None


def _post(client: httpx.Client, path: str, user: str, password: str) -> str:
    answer = _answer(client.post(path, json={"name": user, "password": password}))
    token = answer.get("token")
    if not isinstance(token, str):
        # Auth is off: etcd answers without a token, and ping says what that means.
        return ""
    return token


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise _Refused(f"HTTP {response.status_code}: {response.text.strip()[:300]}") from None
    if response.status_code >= 400 or (isinstance(body, dict) and "code" in body):
        message = body.get("message") or body.get("error") if isinstance(body, dict) else body
        raise _Refused(str(message or f"HTTP {response.status_code}"))
    return body if isinstance(body, dict) else {}


def _explain(message: str) -> str:
    if "authentication failed" in message:
        return f"{message} (check spec.adminSecretRef: user name and password of a root user)"
    if "bad certificate" in message:
        return (
            f"{message} (etcd's JSON gateway dials etcd with the server's own certificate: "
            "it must allow client use, and be signed by the CA in spec.tls)"
        )
    return message


def _describe(exc: Exception | None) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"no connection ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def _tls(admin: EtcdAdmin) -> Iterator[ssl.SSLContext]:
    """Verify the server with the DataStore CA; present a client certificate from it.

    ssl loads a certificate chain only from files: they live for the call in a private
    directory and are removed with it.
    """
    try:
        context = ssl.create_default_context(cadata=admin.ca_cert_pem.decode())
    except (ssl.SSLError, ValueError) as exc:
        raise DataStoreError(
            f"spec.tls: {TLS_CA_CERT_KEY} is not a PEM certificate: {exc}"
        ) from None
    try:
        mine = certs.issue_cert(
            admin.ca, "", organizations=[OPERATOR_ORGANIZATION], client=True, validity_days=1
        )
    except ValueError as exc:
        raise DataStoreError(f"spec.tls: cannot issue a client certificate: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="mothership-etcd-") as folder:
        cert, key = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
        with open(cert, "wb") as out:
            out.write(mine.cert_pem)
        with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
            out.write(mine.key_pem)
        context.load_cert_chain(cert, key)
        yield context


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
