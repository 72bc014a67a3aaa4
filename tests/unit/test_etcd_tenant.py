"""An etcd tenant's names, key range and certificate renewal, offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mothership.controllers.datastore_tenant import CERT_ANNOTATION, renewal_due
from mothership.datastores import etcd_admin
from mothership.datastores.sql_tenant import tenant_for
from mothership.pki import certs


def test_the_tenant_is_named_as_its_sql_database_and_owns_one_prefix() -> None:
    tenant = etcd_admin.etcd_tenant_for("team-a", "demo")
    assert tenant.user == tenant.role == tenant_for("team-a", "demo").database
    assert tenant.prefix == f"/{tenant.user}"
    start, end = tenant.key_range
    assert start == f"/{tenant.user}/".encode()
    assert end == f"/{tenant.user}0".encode()
    # Every key of the tenant is inside, the key of a Cluster whose name extends it is not.
    longer = etcd_admin.EtcdTenant(user=tenant.user + "x")
    assert start <= f"{tenant.prefix}/registry/pods/a".encode() < end
    assert not start <= f"{longer.prefix}/registry/pods/a".encode() < end


def test_the_tenant_certificate_names_the_user_and_is_for_clients() -> None:
    ca = certs.new_ca("etcd-datastore")
    admin = etcd_admin.EtcdAdmin((("etcd", 2379),), "root", "pw", ca.cert_pem, ca.key_pem)
    tenant = etcd_admin.etcd_tenant_for("team-a", "demo")
    cert = etcd_admin.client_cert(admin, tenant)
    assert cert.common_name == tenant.user
    assert certs.cert_signed_by(cert.cert_pem, ca.cert_pem)
    usage = cert.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert admin.urls == ["https://etcd:2379"]


def test_a_subject_of_organizations_only_for_the_gateway() -> None:
    ca = certs.new_ca("etcd-datastore")
    cert = certs.issue_cert(ca, "", organizations=["mothership-operator"], client=True)
    assert not cert.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        certs.issue_cert(ca, "", client=True)
    except ValueError as exc:
        assert "common_name must not be empty" in str(exc)
    else:
        raise AssertionError("a certificate with an empty subject was issued")


def test_renewal_is_due_a_month_before_expiry() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    at = {CERT_ANNOTATION: (now + timedelta(days=31)).isoformat()}
    assert not renewal_due(at, now)
    assert renewal_due({CERT_ANNOTATION: (now + timedelta(days=29)).isoformat()}, now)
    assert renewal_due({CERT_ANNOTATION: "garbage"}, now)
    assert not renewal_due({}, now)  # SQL tenants have no certificate


def test_a_tenant_secret_is_stale_only_when_written_from_an_older_datastore_spec() -> None:
    from mothership.controllers import datastore_tenant as dt

    dt.STORE_GENERATIONS["shared"] = 3
    try:
        at = {dt.GENERATION_ANNOTATION: "2"}
        assert dt.store_changed(at, "shared")
        assert not dt.store_changed({dt.GENERATION_ANNOTATION: "3"}, "shared")
        # Written from a fresher read than the watch has shown: not stale.
        assert not dt.store_changed({dt.GENERATION_ANNOTATION: "4"}, "shared")
        # Written by an operator before this annotation, or a DataStore not seen yet.
        assert not dt.store_changed({}, "shared")
        assert not dt.store_changed(at, "other")
    finally:
        del dt.STORE_GENERATIONS["shared"]


def test_the_revision_follows_every_key_and_value() -> None:
    from mothership.controllers.datastore_tenant import revision

    base = {"endpoints": "https://a:2379", "tls.crt": "one"}
    assert revision(base) == revision(dict(reversed(list(base.items()))))
    assert revision(base) != revision({**base, "tls.crt": "two"})
    assert revision(base) != revision({"endpoints": "https://a:2379tls.crt", "": "one"})
