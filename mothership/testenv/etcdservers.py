"""A private etcd with TLS, client-certificate auth and auth enabled, as a shared DataStore.

What a platform team runs for many tenants: clients must present a certificate from the
cluster's CA, auth is on with a root user holding a password, and etcd compacts itself
(tenants may not). Each server is a fresh data dir in a temp dir on free ports, started as a
child process of the pinned etcd binary, and removed with its data. It binds the wildcard
address so that pods on the real node reach it at the bridge address, like
:mod:`.sqlservers`' servers; only holders of a certificate from its CA get a connection.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mothership.pki import certs
from mothership.testenv.config import REAL_HOST_IP
from mothership.testenv.paths import bin_dir
from mothership.testenv.ports import free_ports
from mothership.testenv.procs import ComponentFailed, log_tail

ROOT_USER = "root"
LOOPBACK = "127.0.0.1"


class EtcdctlError(RuntimeError):
    """etcdctl failed; the message carries what etcd said (e.g. permission denied)."""


@dataclass
class EtcdServer:
    """A running private etcd: where it listens, its CA (with key), the root password."""

    base_dir: Path
    port: int
    ca: certs.CertKey
    root_password: str = field(repr=False)
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    def endpoint(self, host: str = LOOPBACK) -> str:
        return f"{host}:{self.port}"

    def files(self, name: str, cert: certs.CertKey) -> list[str]:
        """etcdctl's TLS flags for `cert` (written under the server's dir)."""
        crt, key = self.base_dir / f"{name}.crt", self.base_dir / f"{name}.key"
        crt.write_bytes(cert.cert_pem)
        key.write_bytes(cert.key_pem)
        key.chmod(0o600)
        return [f"--cacert={self.base_dir / 'ca.crt'}", f"--cert={crt}", f"--key={key}"]

    def etcdctl(self, cert: certs.CertKey, *args: str, user: str | None = None) -> str:
        """Run etcdctl against this server as the holder of `cert` (with the root password
        when `user` is root); EtcdctlError carries etcd's refusal."""
        argv = [str(bin_dir() / "etcdctl"), f"--endpoints=https://{self.endpoint()}"]
        argv += self.files(f"client-{secrets.token_hex(4)}", cert)
        if user is not None:
            argv.append(f"--user={user}:{self.root_password}")
        done = subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode != 0:
            raise EtcdctlError(f"etcdctl {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout

    def root(self, *args: str) -> str:
        """etcdctl as root."""
        cert = certs.issue_cert(self.ca, ROOT_USER, client=True, validity_days=1)
        return self.etcdctl(cert, *args, user=ROOT_USER)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start(timeout: float = 30.0, host_ips: tuple[str, ...] = ()) -> EtcdServer:
    """A fresh etcd with auth enabled; call :func:`remove` when done. `host_ips`: more
    addresses its certificate must name (a local mothership's host_ip, as pods dial it)."""
    base = Path(tempfile.mkdtemp(prefix="mothership-etcd-ds-"))
    ports = free_ports(["client", "peer"], host="0.0.0.0")
    ca = certs.new_ca("mothership-test-etcd-datastore")
    # Client use too: etcd's JSON gateway dials etcd itself with this certificate.
    server = certs.issue_cert(
        ca,
        "etcd",
        dns_names=["localhost"],
        ip_addresses=sorted({LOOPBACK, REAL_HOST_IP, *host_ips}),
        server=True,
        client=True,
    )
    for name, pair in (("ca", ca), ("server", server)):
        (base / f"{name}.crt").write_bytes(pair.cert_pem)
        (base / f"{name}.key").write_bytes(pair.key_pem)
        (base / f"{name}.key").chmod(0o600)
    peer = f"http://{LOOPBACK}:{ports['peer']}"
    argv = [
        str(bin_dir() / "etcd"),
        "--name=datastore",
        f"--data-dir={base / 'data'}",
        f"--listen-client-urls=https://0.0.0.0:{ports['client']}",
        f"--advertise-client-urls=https://{LOOPBACK}:{ports['client']}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=datastore={peer}",
        f"--cert-file={base / 'server.crt'}",
        f"--key-file={base / 'server.key'}",
        f"--trusted-ca-file={base / 'ca.crt'}",
        "--client-cert-auth",
        # Tenants may not compact (root only): the server does it.
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=5m",
    ]
    log = base / "etcd.log"
    server_proc = EtcdServer(base, ports["client"], ca, secrets.token_urlsafe(18), log=log)
    with log.open("wb") as out:
        server_proc.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _enable_auth(server_proc, timeout)
    except BaseException:
        remove(server_proc)
        raise
    return server_proc


def _enable_auth(server: EtcdServer, timeout: float) -> None:
    cert = certs.issue_cert(server.ca, ROOT_USER, client=True, validity_days=1)
    deadline = time.monotonic() + timeout
    while True:
        if server.proc is not None and server.proc.poll() is not None:
            raise ComponentFailed(f"etcd exited:\n{log_tail(server.log)}")
        try:
            server.etcdctl(cert, "endpoint", "health")
            break
        except EtcdctlError as exc:
            if time.monotonic() > deadline:
                raise ComponentFailed(
                    f"etcd not healthy in {timeout:.0f} s: {exc}\n{log_tail(server.log)}"
                ) from None
            time.sleep(0.2)
    server.etcdctl(cert, "user", "add", f"{ROOT_USER}:{server.root_password}")
    server.etcdctl(cert, "user", "grant-role", ROOT_USER, "root")
    server.etcdctl(cert, "auth", "enable")


def remove(server: EtcdServer) -> None:
    server.stop()
    shutil.rmtree(server.base_dir, ignore_errors=True)
