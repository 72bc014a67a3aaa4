"""Names and URLs of tenant databases on the test SQL servers (pure)."""

from __future__ import annotations

import pytest

from mothership.testenv import sqlservers


def test_tenant_names_become_database_names() -> None:
    assert sqlservers.database_name("demo-1") == "demo_1"
    assert sqlservers.database_name("a.b") == "a_b"


def test_kine_urls_have_the_shapes_kine_parses() -> None:
    assert (
        sqlservers.postgres_url("u", "p", "10.244.0.1", 5432, "db")
        == "postgres://u:p@10.244.0.1:5432/db?sslmode=disable"
    )
    assert sqlservers.mysql_url("u", "p", "127.0.0.1", 3306, "db") == (
        "mysql://u:p@tcp(127.0.0.1:3306)/db"
    )


@pytest.mark.parametrize("name", ["Upper", "has space", "semi;colon", "x" * 64, "1starts"])
def test_unusable_database_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ValueError, match="lower-case letters, digits and underscores"):
        sqlservers.check_database_name(name)
