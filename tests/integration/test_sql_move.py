"""Moving a tenant's database between two real PostgreSQL servers (datastores/sql_move.py).

A table shaped like kine's (serial id, a "C"-collated name, binary values) is written as the
tenant on one server and moved to a second: while frozen the tenant cannot log in anywhere
on the source, afterwards every row is on the target with its id, the sequence continues
past the highest, and the source still holds its copy. The operator's use of it (a Cluster
changing DataStore, really serving before and after) is in test_kubernetes_distribution.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pg8000.native
import pytest

from mothership.datastores import sql_admin, sql_move
from mothership.datastores.sql_admin import Admin, DataStoreError
from mothership.datastores.sql_tenant import Tenant, new_password, tenant_for
from mothership.testenv import sqlservers
from tests.leftovers import processes_mentioning

HOST = sqlservers.LOOPBACK
KINE_LIKE = (
    'CREATE TABLE kine (id SERIAL PRIMARY KEY, name text COLLATE "C", created INTEGER, '
    "deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, "
    "value bytea, old_value bytea)"
)


@pytest.fixture(scope="module")
def second_postgres() -> Iterator[sqlservers.SqlServer]:
    server = sqlservers.start("postgres")
    try:
        yield server
    finally:
        sqlservers.remove(server)
        assert not processes_mentioning(server.base_dir)


def _admin(server: sqlservers.SqlServer) -> Admin:
    user, password = f"move_admin_{secrets.token_hex(4)}", new_password()
    server.create_admin(user, password, HOST)
    return Admin("postgresql", HOST, server.port, user, password)


def _as_tenant(admin: Admin, tenant: Tenant, password: str) -> Any:
    return pg8000.native.Connection(
        tenant.user, host=HOST, port=admin.port, password=password, database=tenant.database
    )


def test_a_tenant_moves_with_every_row_and_id_and_the_source_keeps_its_copy(
    postgres_server: sqlservers.SqlServer, second_postgres: sqlservers.SqlServer
) -> None:
    source, target = _admin(postgres_server), _admin(second_postgres)
    tenant = tenant_for("moving", f"t{secrets.token_hex(3)}")
    password = new_password()
    sql_admin.ensure_tenant(source, tenant, password)
    try:
        con = _as_tenant(source, tenant, password)
        con.run(KINE_LIKE)
        for i in range(450):  # more than two INSERT batches
            con.run(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, "
                "lease, value, old_value) VALUES (:n, 1, 0, :i, 0, 0, :v, NULL)",
                n=f"/registry/configmaps/default/cm-{i:03d}",
                i=i,
                v=bytes([i % 256]) * 40,
            )
        con.run("DELETE FROM kine WHERE id % 10 = 0")  # gaps: ids are revisions, kept as is
        before = con.run("SELECT id, name, value FROM kine ORDER BY id")
        con.close()

        sql_move.freeze(source, tenant)
        with pytest.raises(pg8000.native.DatabaseError, match="not permitted to log in"):
            _as_tenant(source, tenant, password)
        target_password = new_password()
        sql_admin.ensure_tenant(target, tenant, target_password)
        copied = sql_move.copy_tenant(source, target, tenant)
        assert copied.rows == {"kine": len(before)}
        assert copied.last_ids == {"kine": before[-1][0]}

        moved = _as_tenant(target, tenant, target_password)
        assert moved.run("SELECT id, name, value FROM kine ORDER BY id") == before
        # kine's next write gets the next revision, and names sort bytewise as before.
        (next_id,) = moved.run(
            "INSERT INTO kine (name, created) VALUES ('/registry/z', 1) RETURNING id"
        )[0]
        assert next_id == before[-1][0] + 1
        collation = moved.run(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_name = 'kine' AND column_name = 'name'"
        )
        assert collation == [["C"]]
        owner = moved.run("SELECT tableowner FROM pg_tables WHERE tablename = 'kine'")
        assert owner == [[tenant.user]]
        moved.close()

        # A second copy (the operator retrying after a crash) replaces, never doubles.
        assert sql_move.copy_tenant(source, target, tenant).rows == {"kine": len(before)}
        # The source keeps its copy, and a failed move can let the tenant back in.
        sql_move.thaw(source, tenant)
        back = _as_tenant(source, tenant, password)
        assert len(back.run("SELECT id FROM kine")) == len(before)
        back.close()
    finally:
        sql_admin.drop_tenant(source, tenant)
        sql_admin.drop_tenant(target, tenant)


def test_moving_a_tenant_that_has_no_database_there_says_so(
    postgres_server: sqlservers.SqlServer, second_postgres: sqlservers.SqlServer
) -> None:
    source, target = _admin(postgres_server), _admin(second_postgres)
    tenant = tenant_for("moving", f"none{secrets.token_hex(3)}")
    with pytest.raises(DataStoreError, match=tenant.database):
        sql_move.copy_tenant(source, target, tenant)
