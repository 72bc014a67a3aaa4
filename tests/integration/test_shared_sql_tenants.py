"""Tenants on a shared SQL server, against the real PostgreSQL and MariaDB the tests start.

What matters is isolation: each tenant's login works in its own database and nowhere
else, ensure is idempotent without losing data, and drop leaves no way back in.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pg8000.native
import pymysql
import pytest

from mothership.datastores import sql_admin
from mothership.datastores.sql_admin import Admin, DataStoreError
from mothership.datastores.sql_tenant import Tenant, new_password, tenant_for
from mothership.testenv import sqlservers
from mothership.testenv.ports import free_ports

HOST = sqlservers.LOOPBACK
# Its own name per run: other modules may add admins to the same session servers.
ADMIN_USER = f"datastore_admin_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Shared:
    """A session SQL server and an admin login on it with only the rights a DataStore's
    admin needs (not the server's superuser)."""

    server: sqlservers.SqlServer
    admin: Admin


@pytest.fixture(scope="module", params=["postgres", "mysql"])
def shared(request: pytest.FixtureRequest) -> Iterator[Shared]:
    name = "postgres_server" if request.param == "postgres" else "mariadb_server"
    server: sqlservers.SqlServer = request.getfixturevalue(name)
    password = new_password()
    server.create_admin(ADMIN_USER, password, HOST)
    driver = "postgresql" if server.kind == "postgres" else "mysql"
    yield Shared(server, Admin(driver, HOST, server.port, ADMIN_USER, password))
    server.drop_admin(ADMIN_USER, HOST)


@contextlib.contextmanager
def _login(shared: Shared, user: str, password: str, database: str) -> Iterator[Any]:
    """A tenant's own connection, made the way kine would: its user, its password, TCP."""
    port = shared.admin.port
    con: Any
    if shared.server.kind == "postgres":
        con = pg8000.native.Connection(
            user, host=HOST, port=port, password=password, database=database, timeout=30
        )
    else:
        con = pymysql.connect(
            host=HOST,
            port=port,
            user=user,
            password=password,
            database=database,
            autocommit=True,
            connect_timeout=30,
        )
    try:
        yield con
    finally:
        with contextlib.suppress(Exception):
            con.close()


def _query(shared: Shared, con: Any, statement: str) -> list[Any]:
    if shared.server.kind == "postgres":
        return list(con.run(statement) or [])
    with con.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def _write(shared: Shared, tenant: Tenant, password: str, value: str) -> list[str]:
    """As the tenant: create a table if needed, add a row; returns every row's value."""
    with _login(shared, tenant.user, password, tenant.database) as con:
        _query(shared, con, "CREATE TABLE IF NOT EXISTS kv (v VARCHAR(64))")
        _query(shared, con, f"INSERT INTO kv (v) VALUES ('{value}')")
        return sorted(row[0] for row in _query(shared, con, "SELECT v FROM kv"))


def _read(shared: Shared, tenant: Tenant, password: str) -> list[str]:
    with _login(shared, tenant.user, password, tenant.database) as con:
        return sorted(row[0] for row in _query(shared, con, "SELECT v FROM kv"))


def _driver_error(shared: Shared) -> type[Exception]:
    return pg8000.DatabaseError if shared.server.kind == "postgres" else pymysql.MySQLError


def _user_exists(shared: Shared, user: str) -> bool:
    if shared.server.kind == "postgres":
        out = shared.server.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'")
    else:
        out = shared.server.sql(f"SELECT 1 FROM mysql.user WHERE User = '{user}'")
    return bool(out.strip())


@contextlib.contextmanager
def _tenants(shared: Shared, namespace: str, *names: str) -> Iterator[list[Tenant]]:
    """Tenants for this test, dropped afterwards whatever happened."""
    tenants = [tenant_for(namespace, name) for name in names]
    try:
        yield tenants
    finally:
        for tenant in tenants:
            sql_admin.drop_tenant(shared.admin, tenant)


def test_ping(shared: Shared) -> None:
    sql_admin.ping(shared.admin)


def test_each_tenant_works_in_its_own_database_and_only_there(shared: Shared) -> None:
    with _tenants(shared, "isolation", "alpha", "beta") as (alpha, beta):
        pw_alpha, pw_beta = new_password(), new_password()
        assert not sql_admin.tenant_exists(shared.admin, alpha)
        assert sql_admin.ensure_tenant(shared.admin, alpha, pw_alpha) is True
        assert sql_admin.ensure_tenant(shared.admin, beta, pw_beta) is True
        assert sql_admin.tenant_exists(shared.admin, alpha)
        assert sql_admin.tenant_exists(shared.admin, beta)

        assert _write(shared, alpha, pw_alpha, "from-alpha") == ["from-alpha"]
        assert _write(shared, beta, pw_beta, "from-beta") == ["from-beta"]

        # alpha's login cannot even open beta's database.
        with (
            pytest.raises(_driver_error(shared)) as refused,
            _login(shared, alpha.user, pw_alpha, beta.database),
        ):
            pass
        if shared.server.kind == "postgres":
            fields = refused.value.args[0]
            assert fields["C"] == "42501", fields  # insufficient_privilege
            assert "CONNECT" in fields["D"] or "permission denied" in fields["M"], fields
        else:
            assert refused.value.args[0] == 1044, refused.value.args  # access denied to db
            # Nor reach beta's tables from its own database.
            with _login(shared, alpha.user, pw_alpha, alpha.database) as con:
                with pytest.raises(pymysql.MySQLError) as denied:
                    _query(shared, con, f"SELECT v FROM `{beta.database}`.kv")
                assert denied.value.args[0] == 1142, denied.value.args

        # beta's password does not open alpha's login.
        with (
            pytest.raises(_driver_error(shared)),
            _login(shared, alpha.user, pw_beta, alpha.database),
        ):
            pass


def test_ensure_again_keeps_data_and_applies_a_new_password(shared: Shared) -> None:
    with _tenants(shared, "again", "gamma") as (gamma,):
        first = new_password()
        assert sql_admin.ensure_tenant(shared.admin, gamma, first) is True
        assert _write(shared, gamma, first, "kept") == ["kept"]

        assert sql_admin.ensure_tenant(shared.admin, gamma, first) is False
        assert _read(shared, gamma, first) == ["kept"]

        second = new_password()
        assert sql_admin.ensure_tenant(shared.admin, gamma, second) is False
        with pytest.raises(_driver_error(shared)):
            _read(shared, gamma, first)
        assert _read(shared, gamma, second) == ["kept"]


def test_drop_removes_database_and_user_even_while_connected(shared: Shared) -> None:
    with _tenants(shared, "dropping", "delta") as (delta,):
        password = new_password()
        assert sql_admin.ensure_tenant(shared.admin, delta, password) is True
        _write(shared, delta, password, "doomed")
        # The tenant's kine would still be connected when its Cluster is deleted.
        with _login(shared, delta.user, password, delta.database) as held:
            assert sql_admin.drop_tenant(shared.admin, delta) is True
            with pytest.raises(Exception):  # noqa: B017 - each driver has its own
                _query(shared, held, "SELECT v FROM kv")
        assert not sql_admin.tenant_exists(shared.admin, delta)
        assert not _user_exists(shared, delta.user)
        assert delta.database not in shared.server.databases()
        with pytest.raises(_driver_error(shared)):
            _read(shared, delta, password)
        assert sql_admin.drop_tenant(shared.admin, delta) is False


def test_a_recreated_tenant_starts_empty(shared: Shared) -> None:
    with _tenants(shared, "recreate", "epsilon") as (epsilon,):
        password = new_password()
        sql_admin.ensure_tenant(shared.admin, epsilon, password)
        _write(shared, epsilon, password, "old")
        assert sql_admin.drop_tenant(shared.admin, epsilon) is True
        assert sql_admin.ensure_tenant(shared.admin, epsilon, password) is True
        assert _write(shared, epsilon, password, "new") == ["new"]


def test_ping_on_a_wrong_port_names_host_and_port(shared: Shared) -> None:
    port = free_ports(["nothing-listens"])["nothing-listens"]
    wrong = Admin(shared.admin.driver, HOST, port, ADMIN_USER, shared.admin.password)
    with pytest.raises(DataStoreError, match=rf"{HOST}:{port}\b") as err:
        sql_admin.ping(wrong)
    assert shared.admin.password not in str(err.value)
    assert "refused" in str(err.value).lower()


def test_a_wrong_admin_password_is_reported_without_the_password(shared: Shared) -> None:
    wrong_password = "Wr0ng" + new_password()
    wrong = Admin(shared.admin.driver, HOST, shared.admin.port, ADMIN_USER, wrong_password)
    for call in (
        lambda: sql_admin.ping(wrong),
        lambda: sql_admin.ensure_tenant(wrong, tenant_for("x", "y"), new_password()),
    ):
        with pytest.raises(DataStoreError) as err:
            call()
        message = str(err.value)
        assert f"{HOST}:{shared.admin.port}" in message
        assert wrong_password not in message
        assert "password" in message.lower() or "denied" in message.lower(), message
    assert wrong_password not in repr(wrong)


# --- refusals and masking: no server needed ---------------------------------------------


@pytest.mark.parametrize("driver", ["postgresql", "mysql"])
def test_names_and_passwords_not_made_here_are_refused_before_connecting(driver: Any) -> None:
    # Port 1: if anything connected, the error would be DataStoreError, not ValueError.
    admin = Admin(driver, HOST, 1, "admin", "secret")
    with pytest.raises(ValueError, match="not one tenant_for makes"):
        sql_admin.drop_tenant(admin, Tenant("postgres", "postgres"))
    with pytest.raises(ValueError, match="not one tenant_for makes"):
        sql_admin.ensure_tenant(admin, Tenant("k0s_x'; DROP_12345678", "u"), new_password())
    with pytest.raises(ValueError, match="letters and digits"):
        sql_admin.ensure_tenant(admin, tenant_for("a", "b"), "x' OR '1'='1" * 4)
    with pytest.raises(ValueError, match="not one tenant_for makes"):
        sql_admin.tenant_exists(admin, Tenant("mysql", "root"))


def test_passwords_a_server_quotes_back_are_masked() -> None:
    """MySQL quotes the statement near a syntax error; that text must not carry passwords."""
    admin = Admin("mysql", "db.example", 3306, "admin", "AdminSecret1")
    tenant_password = new_password()
    with (
        pytest.raises(DataStoreError) as err,
        sql_admin._failures(admin, "ensure tenant", tenant_password),
    ):
        raise pymysql.err.ProgrammingError(
            1064, f"near 'IDENTIFIED BY '{tenant_password}'' as AdminSecret1 at line 1"
        )
    message = str(err.value)
    assert message.startswith("mysql server db.example:3306: ensure tenant: ")
    assert tenant_password not in message and "AdminSecret1" not in message
    assert "(error 1064)" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
