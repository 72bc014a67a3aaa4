"""Names, passwords, endpoints and kine URLs for tenants on a shared SQL server (pure).

Each Cluster that uses a shared PostgreSQL or MySQL/MariaDB server gets its own database
and its own login on it. Everything here is derived without talking to the server, so the
operator can compute a tenant's names again after a restart instead of storing them, and
so :mod:`.sql_admin` can refuse anything that did not come from here: it builds its DDL by
formatting (servers take no bind parameters in CREATE ROLE/USER and friends), and these
checks are what make that safe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import string
from dataclasses import dataclass
from typing import Literal

from mothership.api.mothership.v1alpha1 import split_endpoint

Driver = Literal["postgresql", "mysql"]
DEFAULT_PORTS: dict[str, int] = {"postgresql": 5432, "mysql": 3306}

PREFIX = "k0s"
DATABASE_MAX = 63  # PostgreSQL's identifier limit (NAMEDATALEN - 1); MySQL allows 64
USER_MAX = 32  # MySQL's user name limit (MariaDB allows 80, PostgreSQL 63)
_HASH_CHARS = 8
# What tenant_for makes: the prefix, underscore-separated [a-z0-9] words, the hash. No
# quote, backtick, backslash or space can appear, so a name can be put into SQL verbatim.
_TENANT_NAME = re.compile(rf"^{PREFIX}(?:_[a-z0-9]+)*_[0-9a-f]{{{_HASH_CHARS}}}$")

_PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 40  # about 238 bits
_PASSWORD = re.compile(r"^[A-Za-z0-9]{32,128}$")

_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class Tenant:
    """One Cluster's database and login on a shared server (names from :func:`tenant_for`)."""

    database: str
    user: str


def tenant_for(namespace: str, name: str) -> Tenant:
    """The database and user for the Cluster `namespace/name`, the same on every call.

    Readable (``k0s_<namespace>_<name>``, shortened to fit) and unique: every character
    outside ``[a-z0-9]`` becomes ``_`` and long names are cut, so ``a-b/c`` and ``a/b-c``
    (or two long names sharing a prefix) would meet; the hash of the exact ``<ns>/<name>``
    always appended keeps them apart. The user is shorter than the database only because
    MySQL limits user names to 32 characters.
    """
    key = f"{namespace}/{name}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(key).hexdigest()[:_HASH_CHARS]
    words = [_words(namespace), _words(name)]
    readable = "_".join([PREFIX, *(w for w in words if w)])
    return Tenant(
        database=_fit(readable, digest, DATABASE_MAX),
        user=_fit(readable, digest, USER_MAX),
    )


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _fit(readable: str, digest: str, limit: int) -> str:
    keep = limit - len(digest) - 1
    # Cutting may leave a trailing "_"; the prefix keeps the result non-empty.
    return f"{readable[:keep].rstrip('_')}_{digest}"


def check_tenant(tenant: Tenant) -> None:
    """Raise ValueError unless both names have the shape :func:`tenant_for` makes.

    This is what lets :mod:`.sql_admin` format the names into SQL, and it keeps drop_tenant
    away from databases and users it did not create (``postgres``, ``mysql``, the admin).
    """
    for what, value, limit in (
        ("database", tenant.database, DATABASE_MAX),
        ("user", tenant.user, USER_MAX),
    ):
        if len(value) > limit or not _TENANT_NAME.match(value):
            raise ValueError(
                f"refusing tenant {what} name {value!r}: not one tenant_for makes "
                f"({PREFIX}_ + lower-case letters, digits and underscores + an "
                f"{_HASH_CHARS}-hex-digit hash, at most {limit} characters)"
            )


def new_password() -> str:
    """A random password of letters and digits only: it needs no quoting in an SQL string
    literal nor escaping in a kine URL, so it can be formatted into both."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677 keys).

    Sent instead of the password in CREATE/ALTER ROLE, the server stores it as it is and
    never sees the password itself: nothing for a statement log or an error report to
    show. A login with the password checks against it exactly as if the server had
    hashed it.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def check_password(password: str) -> None:
    """Raise ValueError unless the password has new_password's alphabet (the message does
    not repeat the password)."""
    if not _PASSWORD.match(password):
        raise ValueError(
            "refusing a tenant password that new_password did not make: it must be 32 to "
            f"128 letters and digits (got {len(password)} characters)"
        )


def as_driver(value: object) -> Driver:
    """`value` (read from an object, so of no known type) as a Driver; ValueError naming
    the drivers otherwise."""
    if value == "postgresql":
        return "postgresql"
    if value == "mysql":
        return "mysql"
    raise ValueError(f"unknown SQL driver {value!r}: use one of {', '.join(DEFAULT_PORTS)}")


def default_port(driver: str) -> int:
    """The server's usual port; ValueError for a driver other than postgresql or mysql."""
    try:
        return DEFAULT_PORTS[driver]
    except KeyError:
        raise ValueError(
            f"unknown SQL driver {driver!r}: use one of {', '.join(DEFAULT_PORTS)}"
        ) from None


def parse_endpoint(endpoint: str, driver: Driver) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` (or a bare IPv6 address) -> (host, port).

    The same rules admission applied to the DataStore (`v1alpha1.split_endpoint`), read
    again here because the operator must not trust a DataStore stored without its webhook.
    """
    default_port(driver)  # ValueError for a driver this module does not speak
    try:
        return split_endpoint(endpoint.strip(), driver)
    except ValueError as exc:
        raise ValueError(
            f"endpoint {endpoint!r} {exc}; use host:port, e.g. db.example.com:5432"
        ) from None


def _check_ipv6(host: str, endpoint: str) -> None:
    if "%" in host:
        raise ValueError(
            f"IPv6 address {host!r} in endpoint {endpoint!r} has a zone (%...): "
            "give an address without one"
        )
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(
            f"{host!r} in endpoint {endpoint!r} is not an IPv6 address (an IPv6 address "
            "with a port is written [address]:port)"
        ) from None


def _check_host_name(host: str, endpoint: str) -> None:
    if not host:
        raise ValueError(f"endpoint {endpoint!r} has no host before ':'")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise ValueError(
            f"host {host!r} in endpoint {endpoint!r} is not a host name or IP address "
            "(dot-separated letters, digits, '-' and '_')"
        )


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (for URLs and messages)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kine_url(
    driver: Driver, host: str, port: int, tenant: Tenant, password: str, ca_file: str | None = None
) -> str:
    """kine's ``--endpoint`` for the tenant: a postgres:// URL with TLS off
    (``sslmode=disable``), or verified against `ca_file` (``sslmode=verify-full``), or,
    behind ``mysql://``, the Go MySQL driver's DSN (whose TLS comes from kine's --ca-file
    flag: the DSN cannot name a CA). Host, names and password are checked rather than
    escaped: the Go DSN form has no escaping."""
    default_port(driver)
    check_tenant(tenant)
    check_password(password)
    if ":" in host:
        _check_ipv6(host, host)
    else:
        _check_host_name(host, host)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    address = host_port(host, port)
    if driver == "postgresql":
        tls = f"sslmode=verify-full&sslrootcert={ca_file}" if ca_file else "sslmode=disable"
        return f"postgres://{tenant.user}:{password}@{address}/{tenant.database}?{tls}"
    return f"mysql://{tenant.user}:{password}@tcp({address})/{tenant.database}"
