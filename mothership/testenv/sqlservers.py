"""Private PostgreSQL and MariaDB servers from Debian's packages, for kine-backed tenants.

Tests (and benchmarks) need real SQL servers to put tenant datastores on, but must not
touch a system service the host may run. Each server here is a fresh data dir in a temp
dir, started as a child process on a free port, and stopped with everything it forked.

Servers bind the wildcard address: pods on the real node reach the host at the bridge
address (10.200.0.1), and that bridge is created and deleted with the real-node
mothership, possibly after the server started. Who may connect is limited instead by the
servers' own access rules to loopback and the pod subnet, each with a password.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mothership.pki import certs
from mothership.testenv.config import REACHABLE_LAN_CIDR, REAL_BRIDGE_CIDR, REAL_HOST_IP
from mothership.testenv.ports import free_ports
from mothership.testenv.procs import ComponentFailed, log_tail

Kind = Literal["postgres", "mysql"]
LOOPBACK = "127.0.0.1"
DEBIAN_PACKAGES = "postgresql mariadb-server"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SqlServerUnavailable(RuntimeError):
    """The Debian server package is missing; the message says how to install it."""


def database_name(tenant: str) -> str:
    """A database name for a tenant (a DNS label): hyphens become underscores."""
    name = tenant.replace("-", "_").replace(".", "_").lower()
    check_database_name(name)
    return name


def check_database_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(
            f"database name {name!r} is not usable: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters"
        )


def postgres_url(user: str, password: str, host: str, port: int, db: str) -> str:
    """A kine endpoint for PostgreSQL (TLS off: the server is local and plain-text)."""
    return f"postgres://{user}:{password}@{host}:{port}/{db}?sslmode=disable"


def mysql_url(user: str, password: str, host: str, port: int, db: str) -> str:
    """A kine endpoint for MySQL/MariaDB, in the Go driver's DSN form that kine takes."""
    return f"mysql://{user}:{password}@tcp({host}:{port})/{db}"


@dataclass(frozen=True)
class TenantDatabase:
    """One database on a server: its kine URL from the host and from pods on the real node."""

    name: str
    url: str
    pod_url: str


def _postgres_bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise SqlServerUnavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres). Install it "
            f"with `apt-get install -y {DEBIAN_PACKAGES}` or run `bash scripts/setup-host`."
        )
    # Newest major version last in a version-aware order.
    found.sort(key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent


def _mariadb_server() -> str:
    for candidate in ("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld"):
        path = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if path:
            return path
    raise SqlServerUnavailable(
        "MariaDB is not installed (no mariadbd). Install it with "
        f"`apt-get install -y {DEBIAN_PACKAGES}` or run `bash scripts/setup-host`."
    )


def _run_as(user: str | None) -> dict[str, Any]:
    """Popen arguments that run a child as `user` when we are root (the servers refuse root)."""
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _service_user(name: str) -> str | None:
    """The Debian service account to run as when root; None means run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise SqlServerUnavailable(
            f"the {name!r} user Debian's package creates is missing; reinstall with "
            f"`apt-get install --reinstall -y {DEBIAN_PACKAGES}`"
        ) from None
    return name


def _chown_tree(root: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for path in [root, *root.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def descendants(pid: int) -> set[int]:
    """Every live process below pid (servers fork workers whose command lines name nothing)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


@dataclass
class SqlServer:
    """A running private server: where it listens and how to log in as the kine user."""

    kind: Kind
    base_dir: Path
    port: int
    user: str
    password: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)
    _workers: set[int] = field(default_factory=set)
    # How it was started, so that it can be started again on the same data (start_again).
    argv: list[str] = field(default_factory=list)
    run_as: str | None = None
    # With TLS (start(..., tls=True)): the CA its certificate is from; network logins must
    # use TLS then.
    ca: certs.CertKey | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def url(self, db: str, host: str = LOOPBACK) -> str:
        check_database_name(db)
        make = postgres_url if self.kind == "postgres" else mysql_url
        return make(self.user, self.password, host, self.port, db)

    def create_database(self, name: str, pod_host: str = REAL_HOST_IP) -> TenantDatabase:
        """Create (if absent) one tenant's database; returns its kine URLs, the pods' at
        `pod_host` (a local mothership's `host_ip`: the host as its node's pods reach it)."""
        check_database_name(name)
        if self.kind == "postgres":
            exists = self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()
            if not exists:
                self.sql(f'CREATE DATABASE "{name}"')
        else:
            self.sql(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        return TenantDatabase(name, self.url(name), self.url(name, pod_host))

    def create_admin(self, user: str, password: str, host: str = "%") -> None:
        """A login that may create databases and users (what a platform team hands a
        DataStore): CREATEDB CREATEROLE on PostgreSQL, every privilege with grant option on
        MySQL/MariaDB (from `host`, MySQL's account host part)."""
        if self.kind == "postgres":
            self.sql(f"CREATE ROLE {user} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")
        else:
            self.sql(
                f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'; "
                f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}' WITH GRANT OPTION"
            )

    def drop_admin(self, user: str, host: str = "%") -> None:
        self.sql(f"DROP ROLE {user}" if self.kind == "postgres" else f"DROP USER '{user}'@'{host}'")

    def drop_database(self, name: str) -> None:
        check_database_name(name)
        if self.kind == "postgres":
            self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            self.sql(f"DROP DATABASE IF EXISTS `{name}`")

    def databases(self) -> list[str]:
        if self.kind == "postgres":
            out = self.sql("SELECT datname FROM pg_database WHERE NOT datistemplate")
        else:
            out = self.sql("SHOW DATABASES")
        return out.split()

    def sql(self, statement: str, database: str | None = None) -> str:
        """Run one statement as the server's superuser over its private socket."""
        if self.kind == "postgres":
            cmd = [
                str(_postgres_bin_dir() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.base_dir / "run"),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database or "postgres",
                "-c",
                statement,
            ]
        else:
            cmd = [
                shutil.which("mariadb") or "mysql",
                "--no-defaults",
                f"--socket={self.base_dir / 'run' / 'mysqld.sock'}",
                "-uroot",
                *([f"--database={database}"] if database else []),
                "-N",
                "-B",
                "-e",
                statement,
            ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if out.returncode != 0:
            raise RuntimeError(
                f"{self.kind} statement failed ({statement!r}): {out.stderr.strip()}"
            )
        return out.stdout

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server and every worker it forked; a second call does nothing."""
        if self.proc is None:
            return
        self._workers |= descendants(self.proc.pid)
        # SIGINT is PostgreSQL's fast shutdown; MariaDB shuts down cleanly on SIGTERM.
        first = signal.SIGINT if self.kind == "postgres" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(first)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.leftover_workers():
            time.sleep(0.05)
        for pid in self.leftover_workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc = None

    def launch(self, timeout: float) -> None:
        """Start the server process on its data dir and wait until it answers SQL."""
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **_run_as(self.run_as),
            )
        self._wait_ready("SELECT 1", timeout)

    def start_again(self, timeout: float = 60.0) -> None:
        """After stop(): the same server on the same data and port, as a restart after
        maintenance is (chaos tests: what the tenant committed before must still be there)."""
        if self.proc is not None:
            raise RuntimeError(f"the {self.kind} server is still running")
        self._workers.clear()
        self.launch(timeout)

    def leftover_workers(self) -> list[int]:
        """Workers seen while running that are still alive (none after a clean stop)."""
        live = []
        for pid in self._workers:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                live.append(pid)
        return live

    def _wait_ready(self, probe_sql: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.alive():
                raise ComponentFailed(
                    f"{self.kind} server exited at start; last lines of {self.log}:\n"
                    f"{log_tail(self.log)}"
                )
            try:
                self.sql(probe_sql)
                self._workers |= descendants(self.proc.pid) if self.proc else set()
                return
            except RuntimeError as exc:
                last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise ComponentFailed(
            f"{self.kind} server not ready after {timeout:.0f}s ({last}); last lines of "
            f"{self.log}:\n{log_tail(self.log)}"
        )


def _base_dir(prefix: str, parent: Path | None) -> Path:
    # Under /tmp by default: the servers run as their service user, which cannot enter
    # pytest's root-only temp dirs.
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def _server_tls(base: Path, run_as: str | None) -> tuple[certs.CertKey, Path, Path, Path]:
    """A CA and a server certificate for a TLS server: (CA, ca.crt, server.crt, server.key),
    the files owned by the server's user (PostgreSQL refuses a key others may read)."""
    ca = certs.new_ca("mothership-test-sql")
    server = certs.issue_cert(
        ca,
        "sql",
        dns_names=["localhost"],
        ip_addresses=sorted({LOOPBACK, REAL_HOST_IP}),
        server=True,
    )
    files = base / "tls"
    files.mkdir()
    paths = (files / "ca.crt", files / "server.crt", files / "server.key")
    for path, data in zip(paths, (ca.cert_pem, server.cert_pem, server.key_pem), strict=True):
        path.write_bytes(data)
    paths[2].chmod(0o600)
    _chown_tree(files, run_as)
    return ca, *paths


def start_postgres(
    parent: Path | None = None, user: str = "kine", timeout: float = 60.0, tls: bool = False
) -> SqlServer:
    """initdb a private cluster and start it; the kine user is its password superuser.
    `tls`: network logins must use TLS with a certificate from a CA of its own."""
    bindir = _postgres_bin_dir()
    run_as = _service_user("postgres")
    base = _base_dir("mship-postgres-", parent)
    password = secrets.token_hex(12)
    (base / "run").mkdir()
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    _chown_tree(base, run_as)
    log = base / "postgres.log"
    init = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        check=False,
        **_run_as(run_as),
    )
    pwfile.unlink()
    if init.returncode != 0:
        raise ComponentFailed(f"initdb failed: {init.stdout}{init.stderr}")
    # Password logins from loopback and from pods of a real node (the host's, or one in a
    # machine, whose pods come from the machine's address), nothing else.
    host = "hostssl" if tls else "host"
    (base / "data" / "pg_hba.conf").write_text(
        "local all all trust\n"
        f"{host} all all {LOOPBACK}/32 scram-sha-256\n"
        f"{host} all all {REAL_BRIDGE_CIDR} scram-sha-256\n"
        f"{host} all all {REACHABLE_LAN_CIDR} scram-sha-256\n"
    )
    port = free_ports(["postgres"])["postgres"]
    server = SqlServer("postgres", base, port, user, password, log=log, run_as=run_as)
    tls_args: list[str] = []
    if tls:
        server.ca, _, crt, key = _server_tls(base, run_as)
        tls_args = ["-c", "ssl=on", "-c", f"ssl_cert_file={crt}", "-c", f"ssl_key_file={key}"]
    server.argv = [
        str(bindir / "postgres"),
        "-D",
        str(base / "data"),
        "-p",
        str(port),
        "-k",
        str(base / "run"),
        "-c",
        "listen_addresses=*",
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=32MB",
        # Test data: losing the last writes on power loss is fine, fsync waits are not (a
        # clean stop, SIGINT, still writes every committed transaction out).
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        *tls_args,
    ]
    server.launch(timeout)
    return server


def start_mariadb(
    parent: Path | None = None, user: str = "kine", timeout: float = 90.0, tls: bool = False
) -> SqlServer:
    """mariadb-install-db a private data dir and start mariadbd with its own socket and port.
    `tls`: network logins must use TLS with a certificate from a CA of its own."""
    mariadbd = _mariadb_server()
    run_as = _service_user("mysql")
    base = _base_dir("mship-mariadb-", parent)
    password = secrets.token_hex(12)
    (base / "run").mkdir()
    (base / "data").mkdir()
    (base / "tmp").mkdir()
    _chown_tree(base, run_as)
    log = base / "mariadb.log"
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if not install_db:
        raise SqlServerUnavailable(
            "mariadb-install-db is missing. Install it with "
            f"`apt-get install -y {DEBIAN_PACKAGES}` or run `bash scripts/setup-host`."
        )
    common = [
        "--no-defaults",
        f"--datadir={base / 'data'}",
        f"--tmpdir={base / 'tmp'}",
    ]
    if run_as:
        common.append(f"--user={run_as}")
    init = subprocess.run(
        [
            install_db,
            *common,
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if init.returncode != 0:
        raise ComponentFailed(f"mariadb-install-db failed: {init.stdout}{init.stderr}")
    port = free_ports(["mariadb"])["mariadb"]
    server = SqlServer("mysql", base, port, user, password, log=log)
    tls_args: list[str] = []
    if tls:
        server.ca, ca_file, crt, key = _server_tls(base, run_as)
        tls_args = [
            f"--ssl-ca={ca_file}",
            f"--ssl-cert={crt}",
            f"--ssl-key={key}",
            "--require-secure-transport=ON",
        ]
    # mariadbd drops to --user itself (in `common`), so it is started as root.
    server.argv = [
        mariadbd,
        *common,
        f"--socket={base / 'run' / 'mysqld.sock'}",
        f"--pid-file={base / 'run' / 'mysqld.pid'}",
        f"--port={port}",
        "--bind-address=0.0.0.0",
        "--skip-name-resolve",
        "--skip-log-bin",
        "--max-connections=300",
        "--innodb-buffer-pool-size=32M",
        # Test data: no fsync per commit.
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0",
        f"--log-error={log}",
        *tls_args,
    ]
    server.launch(timeout)
    # Password logins from loopback and from pods of a real node, nothing else (as above).
    pod_hosts = [cidr.rsplit(".", 1)[0] + ".%" for cidr in (REAL_BRIDGE_CIDR, REACHABLE_LAN_CIDR)]
    for host in (LOOPBACK, *pod_hosts):
        server.sql(
            f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}'; "
            f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'{host}'"
        )
    return server


def start(kind: Kind, parent: Path | None = None, tls: bool = False) -> SqlServer:
    if kind == "postgres":
        return start_postgres(parent, tls=tls)
    return start_mariadb(parent, tls=tls)


def remove(server: SqlServer) -> None:
    """Stop the server and delete its data dir."""
    server.stop()
    shutil.rmtree(server.base_dir, ignore_errors=True)
