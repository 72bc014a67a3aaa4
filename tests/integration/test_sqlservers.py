"""kine really stores its keys in the private PostgreSQL and MariaDB servers the tests start."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mothership.testenv import health, paths, sqlservers
from mothership.testenv.config import REAL_HOST_IP
from mothership.testenv.ports import free_ports
from mothership.testenv.procs import Supervisor, wait_for
from tests.leftovers import processes_mentioning


@contextmanager
def _kine(endpoint: str, state: Path) -> Iterator[str]:
    """A kine on this endpoint; yields its etcd URL and leaves no process behind."""
    ports = free_ports(["etcd", "metrics"])
    sup = Supervisor(state)
    sup.start(
        "kine",
        [
            str(paths.bin_dir() / "kine"),
            f"--endpoint={endpoint}",
            f"--listen-address=127.0.0.1:{ports['etcd']}",
            f"--metrics-bind-address=127.0.0.1:{ports['metrics']}",
        ],
    )
    try:
        wait_for(
            "kine",
            lambda: health.tcp_open("127.0.0.1", ports["etcd"]),
            timeout=60,
            supervisor=sup,
            component="kine",
        )
        yield f"http://127.0.0.1:{ports['etcd']}"
    finally:
        sup.stop("kine")
    assert processes_mentioning(state) == []


def _etcdctl(url: str, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [str(paths.bin_dir() / "etcdctl"), f"--endpoints={url}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _create(url: str, key: str, value: str) -> str:
    """Create a key the way kube-apiserver does: a txn guarded on mod revision 0.

    kine serves only the operations the API server uses, and a plain put is not one.
    """
    return _etcdctl(url, "txn", stdin=f'mod("{key}") = "0"\n\nput {key} {value}\n\n\n')


def _stored_value(server: sqlservers.SqlServer, db: str, key: str) -> str:
    """What the SQL server itself holds for a key, read without kine."""
    value = "convert_from(value, 'UTF8')" if server.kind == "postgres" else "CAST(value AS CHAR)"
    query = f"SELECT {value} FROM kine WHERE name = '{key}' ORDER BY id DESC LIMIT 1"
    return server.sql(query, database=db).strip()


def test_kine_writes_and_reads_through_each_sql_server(
    sql_server: sqlservers.SqlServer, tmp_path: Path
) -> None:
    db = sql_server.create_database("kine_roundtrip")
    assert db.name in sql_server.databases()
    key = "/registry/configmaps/default/roundtrip"
    with _kine(db.url, tmp_path / "first") as url:
        assert "SUCCESS" in _create(url, key, "stored-in-sql")
        assert _etcdctl(url, "get", key, "--print-value-only").strip() == "stored-in-sql"
        # A second create of the same key is refused: kine really checked the revision.
        assert "FAILURE" in _create(url, key, "again")

    # The row is in the SQL server, and a new kine on the same database serves it.
    assert _stored_value(sql_server, db.name, key) == "stored-in-sql"
    with _kine(db.url, tmp_path / "second") as url:
        assert _etcdctl(url, "get", key, "--print-value-only").strip() == "stored-in-sql"

    sql_server.drop_database(db.name)
    assert db.name not in sql_server.databases()


def test_databases_are_separate_per_tenant(
    sql_server: sqlservers.SqlServer, tmp_path: Path
) -> None:
    one = sql_server.create_database(sqlservers.database_name("tenant-one"))
    two = sql_server.create_database(sqlservers.database_name("tenant-two"))
    assert (one.name, two.name) == ("tenant_one", "tenant_two")
    key = "/registry/namespaces/only-in-one"
    with _kine(one.url, tmp_path / "one") as url:
        assert "SUCCESS" in _create(url, key, "x")
    with _kine(two.url, tmp_path / "two") as url:
        assert _etcdctl(url, "get", key, "--print-value-only").strip() == ""
    for db in (one, two):
        sql_server.drop_database(db.name)


def test_kine_urls_and_pod_urls(sql_server: sqlservers.SqlServer) -> None:
    db = sql_server.create_database("url_shape")
    host_part = f"127.0.0.1:{sql_server.port}"
    pod_part = f"{REAL_HOST_IP}:{sql_server.port}"
    if sql_server.kind == "postgres":
        assert db.url.startswith(f"postgres://{sql_server.user}:{sql_server.password}@")
        assert db.url.endswith(f"@{host_part}/url_shape?sslmode=disable")
        assert f"@{pod_part}/url_shape?" in db.pod_url
    else:
        assert db.url == (
            f"mysql://{sql_server.user}:{sql_server.password}@tcp({host_part})/url_shape"
        )
        assert f"@tcp({pod_part})/url_shape" in db.pod_url
    sql_server.drop_database(db.name)


def test_wrong_password_is_refused_over_tcp(sql_server: sqlservers.SqlServer) -> None:
    """Logins over TCP need the password, so the wildcard listener is not an open door."""
    if sql_server.kind == "postgres":
        psql = sqlservers._postgres_bin_dir() / "psql"
        cmd = [str(psql), "-h", "127.0.0.1", "-p", str(sql_server.port), "-U", "kine", "-c", "1"]
        env = {"PGPASSWORD": "wrong", "PATH": "/usr/bin:/bin"}
    else:
        cmd = [
            "mariadb",
            "--no-defaults",
            "--protocol=tcp",
            "-h127.0.0.1",
            f"-P{sql_server.port}",
            "-ukine",
            "-pwrong",
            "-e",
            "SELECT 1",
        ]
        env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30, check=False)
    assert out.returncode != 0
    assert "password" in out.stderr.lower() or "denied" in out.stderr.lower()
