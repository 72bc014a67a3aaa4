"""Tenant names, passwords, endpoints and kine URLs for shared SQL servers (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mothership.datastores import sql_tenant
from mothership.datastores.sql_tenant import Tenant, kine_url, parse_endpoint, tenant_for

NAME = re.compile(r"^k0s_[a-z0-9_]*[0-9a-f]{8}$")


def _assert_valid(tenant: Tenant) -> None:
    assert len(tenant.database) <= 63
    assert len(tenant.user) <= 32
    for name in (tenant.database, tenant.user):
        assert NAME.match(name), name
        assert name[0].isalpha()
        assert "__" not in name
    sql_tenant.check_tenant(tenant)


def test_short_names_are_readable_and_carry_a_hash() -> None:
    tenant = tenant_for("default", "demo")
    assert re.fullmatch(r"k0s_default_demo_[0-9a-f]{8}", tenant.database)
    assert tenant.user == tenant.database  # short enough for both limits
    _assert_valid(tenant)


def test_names_are_deterministic() -> None:
    assert tenant_for("team-a", "prod.eu-1") == tenant_for("team-a", "prod.eu-1")


@pytest.mark.parametrize(
    ("one", "two"),
    [
        (("a-b", "c"), ("a", "b-c")),
        (("a", "b.c"), ("a", "b-c")),
        (("ns", "x" * 80 + "1"), ("ns", "x" * 80 + "2")),
        (("n" * 63, "a"), ("n" * 63, "b")),
        (("Upper", "x"), ("upper", "x")),
    ],
)
def test_names_that_would_meet_after_shortening_stay_distinct(
    one: tuple[str, str], two: tuple[str, str]
) -> None:
    first, second = tenant_for(*one), tenant_for(*two)
    assert first.database != second.database
    assert first.user != second.user


def test_very_long_namespace_and_name_fit_both_limits() -> None:
    tenant = tenant_for("n" * 63, "c" * 253)
    _assert_valid(tenant)
    assert len(tenant.database) == 63
    assert len(tenant.user) == 32
    assert tenant.database.startswith("k0s_nnnn")


def test_cut_never_leaves_a_double_underscore_before_the_hash() -> None:
    # The user's 23-character readable part ends exactly on the separator here.
    tenant = tenant_for("a" * 18, "tail")
    _assert_valid(tenant)
    assert re.fullmatch("k0s_" + "a" * 18 + "_[0-9a-f]{8}", tenant.user)


@given(namespace=st.text(max_size=80), name=st.text(max_size=300))
def test_any_input_gives_valid_names(namespace: str, name: str) -> None:
    _assert_valid(tenant_for(namespace, name))


@pytest.mark.parametrize(
    "tenant",
    [
        Tenant("postgres", "postgres"),
        Tenant("mysql", "root"),
        Tenant("k0s_a_12345678", "k0s_a_1234567"),
        Tenant('k0s_a"; DROP_12345678', "k0s_a_12345678"),
        Tenant("k0s_a_12345678", "k0s_a`_12345678"),
        Tenant("k0s_" + "a" * 60 + "_12345678", "k0s_a_12345678"),
        Tenant("k0s_a_12345678", "k0s_" + "a" * 20 + "_12345678"),
    ],
)
def test_names_not_from_tenant_for_are_refused(tenant: Tenant) -> None:
    with pytest.raises(ValueError, match="not one tenant_for makes"):
        sql_tenant.check_tenant(tenant)


def test_passwords_are_long_random_letters_and_digits() -> None:
    passwords = {sql_tenant.new_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) >= 32
        assert re.fullmatch(r"[A-Za-z0-9]+", password)
        sql_tenant.check_password(password)


@pytest.mark.parametrize("password", ["", "short1", "a" * 31, "x" * 40 + "'", "a" * 129])
def test_other_passwords_are_refused_without_being_repeated(password: str) -> None:
    with pytest.raises(ValueError, match="letters and digits") as err:
        sql_tenant.check_password(password)
    if password:
        assert password not in str(err.value)


@pytest.mark.parametrize(
    ("endpoint", "driver", "expected"),
    [
        ("db.example.com", "postgresql", ("db.example.com", 5432)),
        ("db.example.com", "mysql", ("db.example.com", 3306)),
        ("10.0.0.5:6543", "postgresql", ("10.0.0.5", 6543)),
        ("  mysql-primary.db.svc:3307 ", "mysql", ("mysql-primary.db.svc", 3307)),
        ("[fd00::1]:5433", "postgresql", ("fd00::1", 5433)),
        ("[::1]", "mysql", ("::1", 3306)),
        ("fd00::1", "postgresql", ("fd00::1", 5432)),
        ("my_db", "mysql", ("my_db", 3306)),
    ],
)
def test_endpoints_parse(
    endpoint: str, driver: sql_tenant.Driver, expected: tuple[str, int]
) -> None:
    assert parse_endpoint(endpoint, driver) == expected


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("", "'' is empty"),
        ("   ", "is empty"),
        ("db:abc", "'db:abc' has port \"abc\", which is not a number"),
        ("db:-1", "which is not a number"),
        ("db:", "which is not a number"),
        ("db:0", "has port 0, outside 1-65535"),
        ("db:70000", "has port 70000, outside 1-65535"),
        (":5432", "has no host"),
        ("postgres://db:5432", "has a scheme"),
        ("[fd00::1:5432", "has an unclosed ["),
        ("[fd00::1]5432", "has text after ]"),
        ("[db.example.com]:5432", "something other than an IPv6 address"),
        ("fd00::1:zz", "is not a host:port"),
        ("[fe80::1%eth0]:5432", "has an IPv6 zone"),
        ("user@db:5432", "is not a bare address"),
        ("db/x:5432", "is not a bare address"),
        ("db..example:5432", "not a DNS name or an IP address"),
        ("-db:5432", "not a DNS name or an IP address"),
    ],
)
def test_bad_endpoints_are_refused_naming_the_bad_part(endpoint: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_endpoint(endpoint, "postgresql")
    assert "use host:port, e.g. db.example.com:5432" in str(caught.value)


def test_unknown_driver_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SQL driver 'sqlite'"):
        parse_endpoint("db", "sqlite")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown SQL driver None: use one of postgresql, mysql"):
        sql_tenant.as_driver(None)
    assert sql_tenant.as_driver("mysql") == "mysql"
    assert sql_tenant.as_driver("postgresql") == "postgresql"


def test_kine_urls_for_both_drivers() -> None:
    tenant = tenant_for("default", "demo")
    password = sql_tenant.new_password()
    db, user = tenant.database, tenant.user
    assert kine_url("postgresql", "10.0.0.5", 5432, tenant, password) == (
        f"postgres://{user}:{password}@10.0.0.5:5432/{db}?sslmode=disable"
    )
    assert kine_url("mysql", "db.example.com", 3306, tenant, password) == (
        f"mysql://{user}:{password}@tcp(db.example.com:3306)/{db}"
    )
    ca = "/etc/mothership/datastore/ca.crt"
    assert kine_url("postgresql", "10.0.0.5", 5432, tenant, password, ca) == (
        f"postgres://{user}:{password}@10.0.0.5:5432/{db}?sslmode=verify-full&sslrootcert={ca}"
    )
    # The MySQL DSN cannot name a CA file: kine's --ca-file does (see the render).
    assert kine_url("mysql", "db.example.com", 3306, tenant, password, ca) == (
        f"mysql://{user}:{password}@tcp(db.example.com:3306)/{db}"
    )


def test_kine_urls_bracket_ipv6_hosts() -> None:
    tenant = tenant_for("default", "demo")
    password = sql_tenant.new_password()
    host, port = parse_endpoint("[fd00::1]:5433", "postgresql")
    pg = kine_url("postgresql", host, port, tenant, password)
    assert f"@[fd00::1]:5433/{tenant.database}?" in pg
    my = kine_url("mysql", "fd00::1", 3306, tenant, password)
    assert f"@tcp([fd00::1]:3306)/{tenant.database}" in my


@pytest.mark.parametrize(
    ("host", "tenant", "password", "message"),
    [
        ("db", Tenant("postgres", "postgres"), "a" * 40, "not one tenant_for makes"),
        ("db", tenant_for("a", "b"), "p@ss/word" * 5, "letters and digits"),
        ("db/x", tenant_for("a", "b"), "a" * 40, "not a host name"),
        ("fd00::zz", tenant_for("a", "b"), "a" * 40, "not an IPv6 address"),
    ],
)
def test_kine_url_refuses_what_it_cannot_put_in_a_url_unescaped(
    host: str, tenant: Tenant, password: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        kine_url("postgresql", host, 5432, tenant, password)


def test_the_scram_verifier_checks_rfc_7677s_exchange_as_a_server_would() -> None:
    """RFC 7677's example login (user "user", password "pencil"): the verifier we send to
    PostgreSQL must accept the client's proof and produce the server signature printed in
    the RFC, exactly as the server checks a login against what it stored."""
    import base64
    import hashlib
    import hmac

    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = sql_tenant.scram_verifier("pencil", salt)
    method, rest = verifier.split("$", 1)
    params, keys = rest.split("$")
    assert method == "SCRAM-SHA-256" and params == f"4096:{base64.b64encode(salt).decode()}"
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    auth_message = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_signature = hmac.new(stored_key, auth_message, "sha256").digest()
    client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    server_signature = hmac.new(server_key, auth_message, "sha256").digest()
    assert base64.b64encode(server_signature) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    # A fresh salt each time: two verifiers of one password differ.
    assert sql_tenant.scram_verifier("pencil") != sql_tenant.scram_verifier("pencil")
