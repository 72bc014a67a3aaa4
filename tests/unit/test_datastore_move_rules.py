"""Which DataStore changes the operator turns into a move, and what it says to the others."""

from __future__ import annotations

from mothership.controllers.datastore_tenant import _cannot_move
from mothership.datastores.sql_admin import Admin


def admin(driver: str = "postgresql", host: str = "db-a", port: int = 5432) -> Admin:
    return Admin(driver, host, port, "adm", "secret-password")  # type: ignore[arg-type]


def test_two_servers_of_one_driver_make_a_move() -> None:
    assert _cannot_move(admin(), admin(host="db-b"), "a", "b") is None
    assert _cannot_move(admin("mysql"), admin("mysql", host="db-b"), "a", "b") is None
    assert _cannot_move(admin(), admin(port=5433), "a", "b") is None


def test_what_is_not_moved_is_said_with_the_way_back() -> None:
    assert _cannot_move(admin(), admin("mysql", port=3306), "a", "b") == (
        "cannot move this tenant from DataStore a (postgresql) to b (mysql): only between "
        "SQL DataStores of one driver; restore spec.storage.kine.dataStoreRef.name to a"
    )
    assert _cannot_move(admin(), admin(), "a", "b") == (
        "DataStores a and b name the same server (db-a:5432): there is nothing to move; "
        "restore spec.storage.kine.dataStoreRef.name to a"
    )
