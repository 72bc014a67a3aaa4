"""Create and drop tenants' databases and logins on a shared SQL server (blocking I/O).

The operator holds one admin login per shared server (a DataStore) and gives every
Cluster on it a database and a user of its own, so that one tenant's kine can neither
read nor damage another's keys. Calls are synchronous (the operator runs them with
``asyncio.to_thread``), and each opens and closes its own connection: they are rare
(create, delete, a periodic ping), and a pool would only hold connections a shared
server counts against its limit.

Both drivers are pure Python (pg8000, PyMySQL) so that the operator image builds from
small wheels. Every failure surfaces as :class:`DataStoreError`, naming the server and
what the server or driver said but never a password.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mothership.datastores.sql_tenant import (
    Driver,
    Tenant,
    check_password,
    check_tenant,
    default_port,
    host_port,
    scram_verifier,
)

# How long the login and each statement may wait for the server's answer once connected
# (Admin.timeout bounds reaching the server, and all of ping): CREATE DATABASE can take
# seconds on a busy server.
STATEMENT_TIMEOUT = 60.0
# The database the PostgreSQL admin logs in to: every server has it, and pg8000 would
# otherwise pick the database named like the user.
_PG_ADMIN_DATABASE = "postgres"
_MASK_FROM = 6  # characters: shorter passwords are not looked for in error texts
_MYSQL_UNKNOWN_THREAD = 1094  # KILL of a session that ended meanwhile


class DataStoreError(Exception):
    """The SQL server could not be reached or refused a statement.

    The message names the server's host:port and carries the server's or driver's own
    error text, with every password involved replaced by ``***``.
    """


@dataclass(frozen=True)
class Admin:
    """An admin login on a shared server: PostgreSQL needs CREATEDB and CREATEROLE,
    MySQL/MariaDB ALL PRIVILEGES ON *.* WITH GRANT OPTION."""

    driver: Driver
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    timeout: float = 5.0  # seconds to reach the server (connect)
    ca_pem: bytes | None = field(default=None, repr=False)
    """The CA of the server's certificate (DataStore spec.tls): TLS, verified, when set."""

    def tls(self) -> ssl.SSLContext | None:
        """A context that verifies the server's certificate and host name, or None."""
        if self.ca_pem is None:
            return None
        try:
            return ssl.create_default_context(cadata=self.ca_pem.decode())
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
            raise DataStoreError(
                f"{self.host}:{self.port}: spec.tls: ca.crt is not a PEM certificate: {exc}"
            ) from None


def ping(admin: Admin) -> None:
    """Log in and run ``SELECT 1``; DataStoreError if the server is unreachable or refuses,
    or does not answer within Admin.timeout (a health check should not wait longer)."""
    with _failures(admin, f"ping as {admin.user!r}"):
        if admin.driver == "postgresql":
            with _postgres(admin, admin.timeout) as con:
                con.run("SELECT 1")
        else:
            with _mysql(admin, admin.timeout) as cur:
                cur.execute("SELECT 1")


def ensure_tenant(admin: Admin, tenant: Tenant, password: str) -> bool:
    """Make the tenant's user (with `password`, also when it exists) and its database,
    owned by or fully granted to that user and to nobody else; True if either was created.

    ValueError, before connecting, for names tenant_for did not make or a password
    new_password could not have made: the DDL below is built by formatting (servers take
    no bind parameters in CREATE ROLE/USER, GRANT, ...), and these checks are what keep
    quotes and backticks out of it.
    """
    check_tenant(tenant)
    check_password(password)
    with _failures(admin, f"ensure tenant {tenant.database!r}", password):
        if admin.driver == "postgresql":
            with _postgres(admin) as con:
                return _postgres_ensure(con, tenant, password)
        with _mysql(admin) as cur:
            return _mysql_ensure(cur, tenant, password)


def drop_tenant(admin: Admin, tenant: Tenant) -> bool:
    """Drop the tenant's database, then its user, ending its sessions first (its kine may
    still be connected); True if either existed. ValueError, before connecting, for names
    tenant_for did not make: this never drops anything else."""
    check_tenant(tenant)
    with _failures(admin, f"drop tenant {tenant.database!r}"):
        if admin.driver == "postgresql":
            with _postgres(admin) as con:
                return _postgres_drop(con, tenant)
        with _mysql(admin) as cur:
            return _mysql_drop(cur, tenant)


def tenant_exists(admin: Admin, tenant: Tenant) -> bool:
    """Whether the tenant's database exists."""
    check_tenant(tenant)
    with _failures(admin, f"look up tenant {tenant.database!r}"):
        if admin.driver == "postgresql":
            with _postgres(admin) as con:
                return _postgres_has_database(con, tenant.database)
        with _mysql(admin) as cur:
            return _mysql_has_database(cur, tenant.database)


# --- PostgreSQL ---------------------------------------------------------------------------
# Identifiers are double-quoted although tenant_for makes only lower-case names: quoting
# keeps the name exact, whatever the server folds case to.


def _postgres_ensure(con: Any, tenant: Tenant, password: str) -> bool:
    db, user = tenant.database, tenant.user
    created = False
    # The SCRAM verifier, not the password: the server (and its log) never sees it.
    verifier = scram_verifier(password)
    if _postgres_has_role(con, user):
        con.run(f"ALTER ROLE \"{user}\" WITH LOGIN PASSWORD '{verifier}'")
    else:
        con.run(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{verifier}'")
        created = True
    _postgres_act_as(con, user)
    if not _postgres_has_database(con, db):
        # Not in a transaction (pg8000.native runs each statement on its own): CREATE
        # DATABASE refuses to run inside one.
        con.run(f'CREATE DATABASE "{db}" OWNER "{user}"')
        created = True
    # Every role may CONNECT to a new database by default; only the owner may now. Run on
    # every ensure, so a create interrupted before this line is completed.
    con.run(f'REVOKE ALL ON DATABASE "{db}" FROM PUBLIC')
    return created


def _postgres_drop(con: Any, tenant: Tenant) -> bool:
    db, user = tenant.database, tenant.user
    had_role = _postgres_has_role(con, user)
    had_database = _postgres_has_database(con, db)
    if had_role:
        _postgres_act_as(con, user)
    # DROP DATABASE refuses while anyone is connected, and a deleted tenant's kine may
    # still be (or reconnect: FORCE, PostgreSQL 13+, ends those atomically with the drop).
    con.run(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE (datname = :db OR usename = :user) AND pid <> pg_backend_pid()",
        db=db,
        user=user,
    )
    if had_database:
        version = int(con.run("SHOW server_version_num")[0][0])
        force = " WITH (FORCE)" if version >= 130000 else ""
        con.run(f'DROP DATABASE IF EXISTS "{db}"{force}')
    if had_role:
        con.run(f'DROP ROLE IF EXISTS "{user}"')
    return had_role or had_database


def _postgres_act_as(con: Any, user: str) -> None:
    """Make the admin a member of the tenant's role: a non-superuser may create a database
    owned by, drop the database of, or end the sessions of a role only as its member."""
    if not con.run("SELECT pg_has_role(CURRENT_USER, :user, 'USAGE')", user=user)[0][0]:
        con.run(f'GRANT "{user}" TO CURRENT_USER')


def _postgres_has_role(con: Any, user: str) -> bool:
    return bool(con.run("SELECT 1 FROM pg_roles WHERE rolname = :user", user=user))


def _postgres_has_database(con: Any, db: str) -> bool:
    return bool(con.run("SELECT 1 FROM pg_database WHERE datname = :db", db=db))


@contextmanager
def _postgres(
    admin: Admin, patience: float | None = None, database: str = _PG_ADMIN_DATABASE
) -> Iterator[Any]:
    # The TCP connect is ours, so that Admin.timeout bounds reaching the server and
    # `patience` then each answer (pg8000 has one timeout for both; PyMySQL has two).
    sock = socket.create_connection((admin.host, admin.port), timeout=admin.timeout)
    try:
        sock.settimeout(patience or _patience(admin))
        con = _pg8000().native.Connection(
            admin.user,
            host=admin.host,
            port=admin.port,
            password=admin.password,
            database=database,
            sock=sock,
            application_name="mothership",
            ssl_context=admin.tls(),
        )
    except BaseException:
        sock.close()
        raise
    try:
        yield con
    finally:
        con.close()


# --- MySQL / MariaDB ----------------------------------------------------------------------
# Users are 'name'@'%': kine connects from pod addresses nobody can list in advance.


def _mysql_ensure(cur: Any, tenant: Tenant, password: str) -> bool:
    db, user = tenant.database, tenant.user
    created = not _mysql_has_database(cur, db)
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    if _mysql_has_user(cur, user):
        cur.execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'")
    else:
        cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'")
        created = True
    # In a database-level GRANT, "_" and "%" are wildcards: unescaped, the grant on
    # k0s_a_b_... would also cover k0sXa_b_... Hence \_ (the names hold no "%").
    pattern = db.replace("_", "\\_")
    cur.execute(f"GRANT ALL PRIVILEGES ON `{pattern}`.* TO '{user}'@'%'")
    return created


def _mysql_drop(cur: Any, tenant: Tenant) -> bool:
    db, user = tenant.database, tenant.user
    had_database = _mysql_has_database(cur, db)
    had_user = _mysql_has_user(cur, user)
    # A dropped user's open sessions live on, and they hold locks DROP DATABASE waits for.
    _mysql_end_sessions(cur, user)
    if had_database:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    if had_user:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    return had_database or had_user


def _mysql_end_sessions(cur: Any, user: str) -> None:
    cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
    for (session,) in cur.fetchall():
        try:
            cur.execute(f"KILL {int(session)}")
        except _pymysql().MySQLError as exc:
            if exc.args[:1] != (_MYSQL_UNKNOWN_THREAD,):
                raise


def _mysql_has_database(cur: Any, db: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
    return bool(cur.fetchall())


def _mysql_has_user(cur: Any, user: str) -> bool:
    cur.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", (user, "%"))
    return bool(cur.fetchall())


@contextmanager
def _mysql(admin: Admin, patience: float | None = None) -> Iterator[Any]:
    con = _pymysql().connect(
        host=admin.host,
        port=admin.port,
        user=admin.user,
        password=admin.password,
        connect_timeout=admin.timeout,
        read_timeout=patience or _patience(admin),
        write_timeout=patience or _patience(admin),
        autocommit=True,
        charset="utf8mb4",
        ssl=admin.tls(),
    )
    try:
        with con.cursor() as cur:
            yield cur
    finally:
        con.close()


def _patience(admin: Admin) -> float:
    return max(admin.timeout, STATEMENT_TIMEOUT)


# --- drivers ------------------------------------------------------------------------------


def _pg8000() -> Any:
    """pg8000, imported on first use: an operator serving no DataStore would otherwise hold
    both drivers (4 MiB) for nothing."""
    import pg8000.native  # type: ignore[import-untyped]

    return pg8000


def _pymysql() -> Any:
    """PyMySQL, imported on first use (see _pg8000)."""
    import pymysql  # type: ignore[import-untyped]

    return pymysql


# --- errors -------------------------------------------------------------------------------


@contextmanager
def _failures(admin: Admin, doing: str, *passwords: str) -> Iterator[None]:
    """Turn the drivers' and sockets' errors into DataStoreError, passwords masked.

    Masked rather than trusted absent: MySQL quotes the statement near a syntax error,
    and statements here carry passwords. Raised `from None`, so no traceback shows the
    driver's unmasked exception either.
    """
    default_port(admin.driver)  # ValueError for a driver this module does not speak
    try:
        yield
    except (_pg8000().Error, _pymysql().MySQLError, OSError) as exc:
        text = _error_text(exc)
        for secret in (admin.password, *passwords):
            # Tenant passwords are 32+ characters. A very short admin password would mask
            # every letter it shares with the text, and SQL here never quotes it anyway.
            if len(secret) >= _MASK_FROM:
                text = text.replace(secret, "***")
        where = host_port(admin.host, admin.port)
        raise DataStoreError(f"{admin.driver} server {where}: {doing}: {text}") from None


def _error_text(exc: BaseException) -> str:
    args = exc.args
    if isinstance(exc, _pg8000().DatabaseError) and args and isinstance(args[0], dict):
        fields = args[0]  # the server's error fields: M message, C SQLSTATE
        return f"{fields.get('M', exc)} (SQLSTATE {fields.get('C', '?')})"
    if isinstance(exc, _pymysql().MySQLError) and len(args) == 2 and isinstance(args[0], int):
        return f"{args[1]} (error {args[0]})"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        text = f"no answer within the timeout ({text})"
    # pg8000 wraps socket errors ("network error"); what the socket said is the useful part.
    # A bare "network error" is pg8000 reading end-of-stream.
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause):
        text = f"{text}: {cause}"
    elif isinstance(exc, _pg8000().InterfaceError) and text == "network error":
        text = "the server closed the connection (network error)"
    return text
