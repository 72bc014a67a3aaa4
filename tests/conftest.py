"""Local motherships for the test session, built by the same code as `mothership dev up`.

Four flavours, each started at most once per session and only when a test asks:
`mothership_api` (etcd + apiserver + controller-manager + scheduler), `mothership_kwok`
(plus simulated nodes), `mothership_real` (plus containerd, kubelet and kube-proxy) and
`mothership_capi` (API only, plus Cluster API's controller manager).
Tests that use the last two are marked `kwok` / `realnode` automatically, so
`pytest -m "not realnode"` skips the ones that need root and containerd.

Real SQL servers for kine-backed tenants, also started once per session on demand:
`postgres_server` and `mariadb_server` (or `sql_server`, parametrized over both).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mothership.testenv import sqlservers
from mothership.testenv.config import NodeMode
from mothership.testenv.local import LocalMothership
from tests.leftovers import drop_node_images, processes_mentioning

# `kc` and `operator` for modules on the real-node mothership that need nothing special.
from tests.real_operator import kc, operator  # noqa: F401

MARKERS = {"mothership_kwok": "kwok", "mothership_real": "realnode"}

# Property-based tests (hypothesis): `ci` is the default, small and repeatable;
# MOTHERSHIP_FUZZ=nightly runs 10,000 examples per property from random seeds.
settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("MOTHERSHIP_FUZZ") or "ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, marker))


def _mothership(
    tmp: Path, nodes: NodeMode, name: str = "", **kw: object
) -> Iterator[LocalMothership]:
    name = name or f"test-{nodes}"
    ms = LocalMothership.configure(name, state_dir=tmp, nodes=nodes, **kw)  # type: ignore[arg-type]
    ms.up(timeout=240)
    try:
        yield ms
    finally:
        ms.down()
        left = processes_mentioning(tmp)
        assert not left, f"processes left behind by `down`: {left}"
        drop_node_images(tmp)


@pytest.fixture(scope="session")
def mothership_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMothership]:
    yield from _mothership(tmp_path_factory.mktemp("api"), "none")


@pytest.fixture(scope="session")
def mothership_kwok(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMothership]:
    yield from _mothership(tmp_path_factory.mktemp("kwok"), "kwok", kwok_nodes=3)


@pytest.fixture(scope="session")
def mothership_real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMothership]:
    """The tests' real-node mothership. When the user's local mothership holds the host's
    network (README's command 1, then command 2), this one runs beside it with its node in
    a machine (mothership/testenv/node_host.py); tests reach it only through its config
    (addresses, network namespace), so they pass either way."""
    yield from _mothership(tmp_path_factory.mktemp("real"), "real")


@pytest.fixture(scope="session")
def mothership_capi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMothership]:
    """An API-only mothership running real Cluster API (`mothership dev up --nodes none
    --capi`): the manager, its CRDs with conversion, its webhooks."""
    yield from _mothership(tmp_path_factory.mktemp("capi"), "none", "test-capi", capi=True)


def _sql_server(kind: sqlservers.Kind) -> Iterator[sqlservers.SqlServer]:
    server = sqlservers.start(kind)
    try:
        yield server
    finally:
        sqlservers.remove(server)
        left = processes_mentioning(server.base_dir) + [
            f"{pid}: {kind} worker" for pid in server.leftover_workers()
        ]
        assert not left, f"processes left behind by the {kind} server: {left}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[sqlservers.SqlServer]:
    """A private PostgreSQL (Debian's) for the session; `.create_database(name)` per tenant."""
    yield from _sql_server("postgres")


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[sqlservers.SqlServer]:
    """A private MariaDB (Debian's) for the session; `.create_database(name)` per tenant."""
    yield from _sql_server("mysql")


@pytest.fixture(params=["postgres", "mysql"])
def sql_server(request: pytest.FixtureRequest) -> sqlservers.SqlServer:
    """Each SQL server in turn, for tests that must hold on both."""
    name = "postgres_server" if request.param == "postgres" else "mariadb_server"
    server: sqlservers.SqlServer = request.getfixturevalue(name)
    return server
