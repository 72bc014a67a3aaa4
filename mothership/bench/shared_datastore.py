"""A shared PostgreSQL DataStore for `bench fleet --shared-postgres`.

The fleet's Clusters then name one DataStore instead of running etcd: each one's reconcile
makes a database and a user on one real PostgreSQL (Debian's, a private data dir), which
is what a platform team with many tenants on one server pays. Measured beside the
operator's figures: the server's memory with all tenants' databases, as proportional set
size summed over its processes (RSS would count the shared buffers once per backend).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from mothership.controllers.datastore_tenant import DataStoreResource
from mothership.testenv import sqlservers

NAME = "bench-shared-postgres"
ADMIN_SECRET = "bench-datastore-admin"
TENANT_PREFIX = "k0s_"


@dataclass
class SharedPostgres:
    """The server and the DataStore naming it; `storage` is what each Cluster's spec gets."""

    server: sqlservers.SqlServer

    @property
    def storage(self) -> dict[str, Any]:
        return {"type": "kine", "kine": {"dataStoreRef": {"name": NAME}}}

    def tenant_databases(self) -> int:
        return sum(1 for d in self.server.databases() if d.startswith(TENANT_PREFIX))

    def memory_mib(self) -> tuple[float, int]:
        """(PSS summed over the server's processes in MiB, how many processes)."""
        assert self.server.pid is not None
        pids = {self.server.pid, *sqlservers.descendants(self.server.pid)}
        return sum(pss_mib(p) for p in pids), len(pids)


def pss_mib(pid: int) -> float:
    """Proportional set size: shared pages split between the processes that map them."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0  # gone meanwhile (a backend that ended)
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def shared_postgres(kc: Client, namespace: str) -> Iterator[SharedPostgres]:
    """Start the server, make an admin login, its Secret and the DataStore; remove all.

    The server's data dir is a temp dir of its own: PostgreSQL runs as its own user, who
    cannot enter the bench's state dir under the invoking user's home."""
    server = sqlservers.start("postgres")
    try:
        user, password = f"bench_admin_{secrets.token_hex(4)}", secrets.token_hex(16)
        server.create_admin(user, password)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": ADMIN_SECRET, "namespace": namespace},
            "stringData": {"username": user, "password": password},
        }
        kc.apply(from_dict(secret), field_manager="bench", force=True)
        store = DataStoreResource(
            metadata=ObjectMeta(name=NAME),
            spec={
                "driver": "postgresql",
                "endpoints": [f"127.0.0.1:{server.port}"],  # the operator runs on this host
                "adminSecretRef": {"name": ADMIN_SECRET, "namespace": namespace},
            },
        )
        kc.apply(store, field_manager="bench", force=True)
        yield SharedPostgres(server)
    finally:
        sqlservers.remove(server)


def ensure_namespace(kc: Client, namespace: str) -> None:
    try:
        kc.create(Namespace(metadata=ObjectMeta(name=namespace)))
    except ApiError as exc:
        if exc.status.code != 409:
            raise
