"""Moving a tenant's database between two real servers (datastores/sql_move.py), PostgreSQL
and MariaDB.

A table shaped like kine's (serial id, a bytewise-ordered name, binary values) is written as
the tenant on one server and moved to a second of its kind: while frozen the tenant cannot
log in to the source, afterwards every row is on the target with its id, the counter
continues past the highest, and the source still holds its copy. The operator's use of it (a
Cluster changing DataStore, really serving before and after) is in
test_kubernetes_distribution.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pg8000.native
import pymysql
import pytest

from mothership.datastores import sql_admin, sql_move
from mothership.datastores.sql_admin import Admin, DataStoreError
from mothership.datastores.sql_tenant import Tenant, new_password, tenant_for
from mothership.testenv import sqlservers
from tests.leftovers import processes_mentioning

HOST = sqlservers.LOOPBACK
KINE_LIKE = {
    "postgres": (
        'CREATE TABLE kine (id SERIAL PRIMARY KEY, name text COLLATE "C", created INTEGER, '
        "deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, "
        "value bytea, old_value bytea)"
    ),
    "mysql": (
        "CREATE TABLE kine (id INTEGER AUTO_INCREMENT PRIMARY KEY, name VARCHAR(630) "
        "CHARACTER SET ascii, created INTEGER, deleted INTEGER, create_revision INTEGER, "
        "prev_revision INTEGER, lease INTEGER, value MEDIUMBLOB, old_value MEDIUMBLOB, "
        "UNIQUE KEY kine_name_prev_revision_uindex (name, prev_revision))"
    ),
}


@dataclass(frozen=True)
class Pair:
    kind: str
    source: Admin
    target: Admin


def _admin(server: sqlservers.SqlServer) -> Admin:
    user, password = f"move_admin_{secrets.token_hex(4)}", new_password()
    server.create_admin(user, password, HOST)
    driver = "postgresql" if server.kind == "postgres" else "mysql"
    return Admin(driver, HOST, server.port, user, password)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=["postgres", "mysql"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    """The session's server of that kind, and a second one started for the move."""
    first = request.getfixturevalue(
        "postgres_server" if request.param == "postgres" else "mariadb_server"
    )
    second = sqlservers.start(request.param)
    try:
        yield Pair(request.param, _admin(first), _admin(second))
    finally:
        sqlservers.remove(second)
        assert not processes_mentioning(second.base_dir)


class _Tenant:
    """The tenant's own login on one server, the same few statements on either kind."""

    def __init__(self, kind: str, admin: Admin, tenant: Tenant, password: str) -> None:
        self.kind = kind
        if kind == "postgres":
            self.con: Any = pg8000.native.Connection(
                tenant.user, host=HOST, port=admin.port, password=password,
                database=tenant.database,
            )  # fmt: skip
        else:
            self.con = pymysql.connect(
                host=HOST, port=admin.port, user=tenant.user, password=password,
                database=tenant.database, autocommit=True,
            )  # fmt: skip

    def run(self, sql: str, *params: Any) -> list[Any]:
        if self.kind == "postgres":
            names = {f"p{i}": v for i, v in enumerate(params)}
            for i in range(len(params)):
                sql = sql.replace("%s", f":p{i}", 1)
            return [list(r) for r in self.con.run(sql, **names) or []]
        with self.con.cursor() as cur:
            cur.execute(sql, params or None)
            return [list(r) for r in cur.fetchall()]

    def close(self) -> None:
        self.con.close()


def test_a_tenant_moves_with_every_row_and_id_and_the_source_keeps_its_copy(
    pair: Pair,
) -> None:
    source, target = pair.source, pair.target
    tenant = tenant_for("moving", f"t{secrets.token_hex(3)}")
    password = new_password()
    sql_admin.ensure_tenant(source, tenant, password)
    try:
        con = _Tenant(pair.kind, source, tenant, password)
        con.run(KINE_LIKE[pair.kind])
        for i in range(450):  # more than two INSERT batches
            con.run(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, "
                "lease, value, old_value) VALUES (%s, 1, 0, %s, 0, 0, %s, NULL)",
                f"/registry/configmaps/default/cm-{i:03d}",
                i,
                bytes([i % 256]) * 40,
            )
        con.run("DELETE FROM kine WHERE id % 10 = 0")  # gaps: ids are revisions, kept as is
        before = con.run("SELECT id, name, value FROM kine ORDER BY id")
        con.close()

        sql_move.freeze(source, tenant)
        locked = "not permitted to log in" if pair.kind == "postgres" else "locked"
        with pytest.raises((pg8000.native.DatabaseError, pymysql.MySQLError), match=locked):
            _Tenant(pair.kind, source, tenant, password)
        target_password = new_password()
        sql_admin.ensure_tenant(target, tenant, target_password)
        copied = sql_move.copy_tenant(source, target, tenant)
        assert copied.rows == {"kine": len(before)}
        assert copied.last_ids == {"kine": before[-1][0]}

        moved = _Tenant(pair.kind, target, tenant, target_password)
        assert moved.run("SELECT id, name, value FROM kine ORDER BY id") == before
        # kine's next write gets a revision the source never handed out (450 were, the
        # highest of them deleted since); names keep their bytewise order.
        moved.run("INSERT INTO kine (name, created) VALUES ('/registry/z', 1)")
        assert moved.run("SELECT MAX(id) FROM kine") == [[451]]
        names = [r[0] for r in moved.run("SELECT name FROM kine ORDER BY name")]
        assert names == sorted(names, key=lambda n: n.encode())
        moved.close()

        # A second copy (the operator retrying after a crash) replaces, never doubles.
        assert sql_move.copy_tenant(source, target, tenant).rows == {"kine": len(before)}
        # The source keeps its copy, and a failed move can let the tenant back in.
        sql_move.thaw(source, tenant)
        back = _Tenant(pair.kind, source, tenant, password)
        assert len(back.run("SELECT id FROM kine")) == len(before)
        back.close()
    finally:
        sql_admin.drop_tenant(source, tenant)
        sql_admin.drop_tenant(target, tenant)


def test_moving_a_tenant_that_has_no_database_there_says_so(pair: Pair) -> None:
    tenant = tenant_for("moving", f"none{secrets.token_hex(3)}")
    with pytest.raises(DataStoreError, match=tenant.database):
        sql_move.copy_tenant(pair.source, pair.target, tenant)
