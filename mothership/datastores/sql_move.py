"""Move a tenant's database from one SQL server to another of its kind (blocking I/O).

Used when a Cluster's dataStoreRef names another DataStore of the same driver. The tenant's
login on the source is disabled and its sessions ended first, so nothing writes while the
rows are copied (kine, the only writer, fails its requests until the control plane restarts
on the target); the copy keeps every row's id, since kine's revisions are those ids, and
sets each sequence past the highest one. The source database is kept, its login disabled:
the user's data is never dropped by a move.

PostgreSQL tables are recreated from the catalogue (column types, collations, serial
columns, the primary key); kine makes its other indexes itself when it starts (CREATE INDEX
IF NOT EXISTS), so they are not copied. MySQL/MariaDB tables are recreated from SHOW CREATE
TABLE, indexes and auto-increment counter included. PostgreSQL disables the login (NOLOGIN),
MySQL locks the account (ACCOUNT LOCK); both end the sessions it has open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mothership.datastores.sql_admin import (
    Admin,
    DataStoreError,
    _failures,
    _mysql,
    _mysql_end_sessions,
    _postgres,
    _postgres_act_as,
)
from mothership.datastores.sql_tenant import Tenant, check_tenant

BATCH = 200  # rows per INSERT: few round trips, statements well below any size limit
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SEQUENCE = re.compile(r'^(public\.)?"?[a-z_][a-z0-9_]{0,62}"?$')
_SERIAL = {"integer": "SERIAL", "bigint": "BIGSERIAL", "smallint": "SMALLSERIAL"}


@dataclass
class Copied:
    """What was copied: rows and the highest id per table, the same on both servers."""

    rows: dict[str, int] = field(default_factory=dict)
    last_ids: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def freeze(admin: Admin, tenant: Tenant) -> None:
    """Disable the tenant's login and end its sessions: from here nothing writes."""
    _login(admin, tenant, allowed=False)


def thaw(admin: Admin, tenant: Tenant) -> None:
    """Allow the tenant's login again (a move that failed leaves the tenant where it was)."""
    _login(admin, tenant, allowed=True)


def _login(admin: Admin, tenant: Tenant, allowed: bool) -> None:
    check_tenant(tenant)
    user = tenant.user
    doing = f"{'enable' if allowed else 'disable'} login {user!r}"
    if admin.driver == "mysql":
        with _failures(admin, doing), _mysql(admin) as cur:
            cur.execute(f"ALTER USER '{user}'@'%' ACCOUNT {'UNLOCK' if allowed else 'LOCK'}")
            if not allowed:
                _mysql_end_sessions(cur, user)
        return
    with _failures(admin, doing), _postgres(admin) as con:
        _postgres_act_as(con, user)
        con.run(f'ALTER ROLE "{user}" {"LOGIN" if allowed else "NOLOGIN"}')
        if not allowed:
            con.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = :user AND pid <> pg_backend_pid()",
                user=user,
            )


def copy_tenant(source: Admin, target: Admin, tenant: Tenant) -> Copied:
    """Copy every table of the tenant's database from `source` to `target` (where
    ensure_tenant made the database and user), replacing what a failed earlier copy left;
    DataStoreError unless both sides then hold the same rows and highest ids."""
    check_tenant(tenant)
    if source.driver != target.driver:
        raise ValueError(f"cannot copy from {source.driver} to {target.driver}")
    if source.driver == "mysql":
        return _mysql_copy(source, target, tenant)
    db, user = tenant.database, tenant.user
    copied = Copied()
    with (
        _failures(source, f"copy {db!r} from here"),
        _postgres(source, database=db) as src,
        _failures(target, f"copy {db!r} to here"),
        _postgres(target, database=db) as dst,
    ):
        for con in (src, dst):
            con.run(f'SET ROLE "{user}"')  # what is made belongs to the tenant, as kine's did
        tables = [
            str(row[0])
            for row in src.run(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'public' AND table_type = 'BASE TABLE' ORDER BY 1"
            )
        ]
        for table in tables:
            if not _NAME.match(table):
                raise DataStoreError(f"table {table!r}: not a name kine makes; not moved")
            columns, serial, ddl = _definition(src, table)
            dst.run(f'DROP TABLE IF EXISTS "{table}"')
            dst.run(f'CREATE TABLE "{table}" ({ddl})')
            names = ", ".join(f'"{c}"' for c in columns)
            rows = src.run(f'SELECT {names} FROM "{table}" ORDER BY 1')
            for start in range(0, len(rows), BATCH):
                _insert(dst, table, columns, rows[start : start + BATCH])
            for column in serial:
                # The source's counter, not the highest id left: an id handed out once (a
                # row compacted away since) is never handed out again.
                seq = f"pg_get_serial_sequence('\"{table}\"', '{column}')"
                (name,) = src.run(f"SELECT {seq}")[0]
                if not _SEQUENCE.match(str(name)):
                    raise DataStoreError(f"sequence {name!r}: not a name kine makes; not moved")
                last, called = src.run(f"SELECT last_value, is_called FROM {name}")[0]
                dst.run(f"SELECT setval({seq}, :last, :called)", last=last, called=called)
            before, after = _count(src, table, columns[0]), _count(dst, table, columns[0])
            if before != after:
                raise DataStoreError(
                    f"table {table!r}: {before} rows up to id {before[1]} on the source, "
                    f"{after} on the target after the copy"
                )
            copied.rows[table], copied.last_ids[table] = before
    return copied


def _definition(con: Any, table: str) -> tuple[list[str], list[str], str]:
    """(column names, serial columns, the column list of CREATE TABLE) from the catalogue."""
    found = con.run(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
        "  CASE WHEN a.attcollation <> t.typcollation THEN co.collname END, "
        "  pg_get_expr(d.adbin, d.adrelid), a.attnotnull, "
        "  COALESCE(a.attnum = ANY(i.indkey), false) "
        "FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
        "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        t=f'public."{table}"',
    )
    columns, serial, parts = [], [], []
    for name, type_, collation, default, not_null, primary in found:
        if not _NAME.match(str(name)):
            raise DataStoreError(f"column {table}.{name!r}: not a name kine makes; not moved")
        columns.append(str(name))
        default = str(default or "")
        if default.startswith("nextval(") and type_ in _SERIAL:
            serial.append(str(name))
            part = f'"{name}" {_SERIAL[type_]}'
        else:
            part = f'"{name}" {type_}'
            if collation:
                part += f' COLLATE "{collation}"'
            if default:
                part += f" DEFAULT {default}"
            if not_null:
                part += " NOT NULL"
        if primary:
            part += " PRIMARY KEY"
        parts.append(part)
    return columns, serial, ", ".join(parts)


def _insert(con: Any, table: str, columns: list[str], rows: list[list[Any]]) -> None:
    if not rows:
        return
    params: dict[str, Any] = {}
    values = []
    for r, row in enumerate(rows):
        names = []
        for c, value in enumerate(row):
            params[f"p{r}_{c}"] = value
            names.append(f":p{r}_{c}")
        values.append(f"({', '.join(names)})")
    names_sql = ", ".join(f'"{c}"' for c in columns)
    con.run(f'INSERT INTO "{table}" ({names_sql}) VALUES {", ".join(values)}', **params)


def _count(con: Any, table: str, first: str) -> tuple[int, int]:
    count, highest = con.run(f'SELECT COUNT(*), COALESCE(MAX("{first}"), 0) FROM "{table}"')[0]
    return int(count), int(highest)


def _mysql_copy(source: Admin, target: Admin, tenant: Tenant) -> Copied:
    db = tenant.database
    copied = Copied()
    with (
        _failures(source, f"copy {db!r} from here"),
        _mysql(source) as src,
        _failures(target, f"copy {db!r} to here"),
        _mysql(target) as dst,
    ):
        src.execute(f"USE `{db}`")
        dst.execute(f"USE `{db}`")
        src.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
            (db,),
        )
        for (table,) in list(src.fetchall()):
            if not _NAME.match(str(table)):
                raise DataStoreError(f"table {table!r}: not a name kine makes; not moved")
            src.execute(f"SHOW CREATE TABLE `{table}`")
            ddl = src.fetchall()[0][1]
            dst.execute(f"DROP TABLE IF EXISTS `{table}`")
            dst.execute(ddl)
            src.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (db, table),
            )
            columns = [str(c) for (c,) in src.fetchall()]
            if not all(_NAME.match(c) for c in columns):
                raise DataStoreError(f"table {table!r}: a column name kine does not make")
            names = ", ".join(f"`{c}`" for c in columns)
            src.execute(f"SELECT {names} FROM `{table}` ORDER BY 1")
            rows = list(src.fetchall())
            marks = ", ".join(["%s"] * len(columns))
            for start in range(0, len(rows), BATCH):
                dst.executemany(
                    f"INSERT INTO `{table}` ({names}) VALUES ({marks})",
                    rows[start : start + BATCH],
                )
            before = _mysql_count(src, table, columns[0])
            after = _mysql_count(dst, table, columns[0])
            if before != after:
                raise DataStoreError(
                    f"table {table!r}: {before} rows up to id {before[1]} on the source, "
                    f"{after} on the target after the copy"
                )
            copied.rows[table], copied.last_ids[table] = before
    return copied


def _mysql_count(cur: Any, table: str, first: str) -> tuple[int, int]:
    cur.execute(f"SELECT COUNT(*), COALESCE(MAX(`{first}`), 0) FROM `{table}`")
    count, highest = cur.fetchall()[0]
    return int(count), int(highest)
