"""Unit tests for mothership.pki; chains are checked with cryptography's own verifier."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    ServerVerifier,
    Store,
    VerificationError,
)

from mothership.pki import (
    CertKey,
    cert_signed_by,
    issue_cert,
    key_matches_cert,
    kubeconfig,
    needs_renewal,
    new_ca,
    new_service_account_key,
)

KEY_TYPES = ["ecdsa", "rsa"]
E = TypeVar("E", bound=x509.ExtensionType)


@pytest.fixture(scope="module", params=KEY_TYPES)
def ca(request: pytest.FixtureRequest) -> CertKey:
    return new_ca("kubernetes-ca", key_type=request.param)


@pytest.fixture(scope="module")
def ecdsa_ca() -> CertKey:
    return new_ca("kubernetes-ca")


def ext(cert: CertKey, kind: type[E]) -> x509.Extension[E]:
    return cert.certificate.extensions.get_extension_for_class(kind)


def server_verifier(ca: CertKey, name: x509.DNSName | x509.IPAddress) -> ServerVerifier:
    return PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(name)


def client_verify(ca: CertKey, leaf: CertKey) -> list[x509.Certificate]:
    # Kubernetes client certs carry no SANs, which the WebPKI defaults would demand.
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store([ca.certificate]))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_client_verifier()
    )
    return verifier.verify(leaf.certificate, []).chain


# --- CA ---------------------------------------------------------------------------------------


def test_ca_is_self_signed_ca_with_expected_extensions(ca: CertKey) -> None:
    cert = ca.certificate
    assert cert.subject == cert.issuer
    assert ca.common_name == "kubernetes-ca"
    assert cert_signed_by(ca.cert_pem, ca.cert_pem)
    assert key_matches_cert(ca.cert_pem, ca.key_pem)

    constraints = ext(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is True
    usage = ext(ca, x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    ski = ext(ca, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def key_shape(key: object) -> tuple[str, int]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.name, key.key_size
    assert isinstance(key, rsa.RSAPublicKey)
    return "rsa", key.key_size


@pytest.mark.parametrize(
    ("key_type", "shape"), [("ecdsa", ("secp256r1", 256)), ("rsa", ("rsa", 2048))]
)
def test_key_types(key_type: str, shape: tuple[str, int], ecdsa_ca: CertKey) -> None:
    ca = new_ca("ca", key_type=key_type)
    leaf = issue_cert(ecdsa_ca, "leaf", client=True, key_type=key_type)
    assert key_shape(ca.certificate.public_key()) == shape
    assert key_shape(leaf.certificate.public_key()) == shape
    assert ca.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert leaf.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ca_validity() -> None:
    before = datetime.now(UTC)
    ca = new_ca("ca", validity_days=10)
    assert ca.not_after.tzinfo is not None
    assert abs(ca.not_after - (before + timedelta(days=10))) < timedelta(minutes=1)
    assert ca.certificate.not_valid_before_utc <= before - timedelta(minutes=4)


def test_certkey_is_frozen_and_parses_once(ecdsa_ca: CertKey) -> None:
    assert ecdsa_ca.certificate is ecdsa_ca.certificate
    with pytest.raises(dataclasses.FrozenInstanceError):
        ecdsa_ca.cert_pem = b""  # type: ignore[misc]


# --- leaves -----------------------------------------------------------------------------------


def test_server_cert_chain_verifies_for_its_names_only(ca: CertKey) -> None:
    leaf = issue_cert(
        ca,
        "kube-apiserver",
        dns_names=["kubernetes.default.svc", "localhost"],
        ip_addresses=["10.96.0.1", "::1"],
        server=True,
    )
    for name in (
        x509.DNSName("kubernetes.default.svc"),
        x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ):
        chain = server_verifier(ca, name).verify(leaf.certificate, [])
        assert chain[-1] == ca.certificate
    with pytest.raises(VerificationError):
        server_verifier(ca, x509.DNSName("evil.example")).verify(leaf.certificate, [])


def test_leaf_from_other_ca_does_not_verify(ecdsa_ca: CertKey) -> None:
    other = new_ca("kubernetes-ca")  # same name, different key
    leaf = issue_cert(other, "x", dns_names=["x"], server=True, client=True)
    with pytest.raises(VerificationError):
        server_verifier(ecdsa_ca, x509.DNSName("x")).verify(leaf.certificate, [])
    with pytest.raises(VerificationError):
        client_verify(ecdsa_ca, leaf)


def test_client_cert_subject_and_chain(ca: CertKey) -> None:
    leaf = issue_cert(ca, "admin", organizations=["system:masters", "devs"], client=True)
    assert client_verify(ca, leaf)[-1] == ca.certificate
    subject = leaf.certificate.subject
    assert leaf.common_name == "admin"
    orgs = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters", "devs"]
    with pytest.raises(x509.ExtensionNotFound):
        ext(leaf, x509.SubjectAlternativeName)


def test_san_contents(ecdsa_ca: CertKey) -> None:
    leaf = issue_cert(
        ecdsa_ca,
        "etcd",
        dns_names=["etcd-0", "etcd.local"],
        ip_addresses=["127.0.0.1", "fd00::1"],
        server=True,
    )
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["etcd-0", "etcd.local"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.IPv4Address("127.0.0.1"),
        ipaddress.IPv6Address("fd00::1"),
    ]


@pytest.mark.parametrize(
    ("server", "client", "expected"),
    [
        (True, False, [ExtendedKeyUsageOID.SERVER_AUTH]),
        (False, True, [ExtendedKeyUsageOID.CLIENT_AUTH]),
        (True, True, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
)
def test_extended_key_usage(
    ecdsa_ca: CertKey, server: bool, client: bool, expected: list[x509.ObjectIdentifier]
) -> None:
    leaf = issue_cert(ecdsa_ca, "x", dns_names=["x"], server=server, client=client)
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == expected


def test_server_only_cert_is_rejected_as_client(ecdsa_ca: CertKey) -> None:
    leaf = issue_cert(ecdsa_ca, "x", dns_names=["x"], server=True)
    with pytest.raises(VerificationError):
        client_verify(ecdsa_ca, leaf)


def test_leaf_extensions_link_to_ca(ca: CertKey) -> None:
    leaf = issue_cert(ca, "x", client=True)
    constraints = ext(leaf, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert leaf.certificate.issuer == ca.certificate.subject
    assert ext(leaf, x509.KeyUsage).value.digital_signature


def test_leaf_validity_skew_serial_and_ca_cap(ecdsa_ca: CertKey) -> None:
    before = datetime.now(UTC)
    a = issue_cert(ecdsa_ca, "x", client=True, validity_days=30)
    b = issue_cert(ecdsa_ca, "x", client=True, validity_days=30)
    assert a.certificate.serial_number != b.certificate.serial_number
    skew = before - a.certificate.not_valid_before_utc
    assert timedelta(minutes=4) < skew < timedelta(minutes=6)
    assert abs(a.not_after - (before + timedelta(days=30))) < timedelta(minutes=1)

    short_ca = new_ca("short", validity_days=1)
    capped = issue_cert(short_ca, "x", client=True, validity_days=365)
    assert capped.not_after == short_ca.not_after


# --- checks -----------------------------------------------------------------------------------


def test_cert_signed_by(ca: CertKey, ecdsa_ca: CertKey) -> None:
    leaf = issue_cert(ca, "x", client=True)
    impostor = new_ca("kubernetes-ca", key_type="rsa")  # same subject, wrong key
    assert cert_signed_by(leaf.cert_pem, ca.cert_pem)
    assert not cert_signed_by(leaf.cert_pem, impostor.cert_pem)
    assert not cert_signed_by(leaf.cert_pem, new_ca("other").cert_pem)
    assert not cert_signed_by(ca.cert_pem, leaf.cert_pem)
    with pytest.raises(ValueError):
        cert_signed_by(b"not a cert", ca.cert_pem)


def test_key_matches_cert(ecdsa_ca: CertKey) -> None:
    a = issue_cert(ecdsa_ca, "a", client=True)
    b = issue_cert(ecdsa_ca, "b", client=True)
    r = issue_cert(ecdsa_ca, "r", client=True, key_type="rsa")
    assert key_matches_cert(a.cert_pem, a.key_pem)
    assert key_matches_cert(r.cert_pem, r.key_pem)
    assert not key_matches_cert(a.cert_pem, b.key_pem)
    assert not key_matches_cert(a.cert_pem, r.key_pem)
    assert not key_matches_cert(r.cert_pem, a.key_pem)


def test_needs_renewal_window(ecdsa_ca: CertKey) -> None:
    leaf = issue_cert(ecdsa_ca, "x", client=True, validity_days=30)
    expiry = leaf.not_after
    assert not needs_renewal(leaf.cert_pem, within=timedelta(days=7))
    assert needs_renewal(leaf.cert_pem, within=timedelta(days=31))
    day = timedelta(days=1)
    assert not needs_renewal(leaf.cert_pem, within=day, now=expiry - day - timedelta(seconds=1))
    assert needs_renewal(leaf.cert_pem, within=day, now=expiry - day + timedelta(seconds=1))
    assert needs_renewal(leaf.cert_pem, within=timedelta(0), now=expiry + timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone"):
        needs_renewal(leaf.cert_pem, within=day, now=datetime(2030, 1, 1))


# --- bad input --------------------------------------------------------------------------------


def test_issue_cert_requires_a_usage(ecdsa_ca: CertKey) -> None:
    with pytest.raises(ValueError, match="server use, client use, or both"):
        issue_cert(ecdsa_ca, "x")


def test_issue_cert_rejects_bad_ip(ecdsa_ca: CertKey) -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.300'")):
        issue_cert(ecdsa_ca, "x", ip_addresses=["10.0.0.1", "10.0.0.300"], server=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"key_type": "dsa"}, "key_type"),
        ({"validity_days": 0}, "validity_days"),
        ({"common_name": ""}, "common_name"),
    ],
)
def test_bad_arguments(ecdsa_ca: CertKey, kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"common_name": "x", **kwargs}
    with pytest.raises(ValueError, match=match):
        new_ca(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        issue_cert(ecdsa_ca, client=True, **args)  # type: ignore[arg-type]


# --- service account keys ---------------------------------------------------------------------


def test_service_account_key_pair() -> None:
    private_pem, public_pem = new_service_account_key()
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    private = serialization.load_pem_private_key(private_pem, password=None)
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert private.curve.name == "secp256r1"  # ES256, what kube-apiserver signs tokens with
    assert public.public_numbers() == private.public_key().public_numbers()
    signature = private.sign(b"token", ec.ECDSA(hashes.SHA256()))
    public.verify(signature, b"token", ec.ECDSA(hashes.SHA256()))
    assert new_service_account_key()[1] != public_pem


# --- kubeconfig -------------------------------------------------------------------------------


def test_kubeconfig_with_client_cert_round_trips(ecdsa_ca: CertKey) -> None:
    admin = issue_cert(ecdsa_ca, "admin", organizations=["system:masters"], client=True)
    text = kubeconfig(
        cluster_name="tenant-a",
        server="https://10.0.0.1:6443",
        ca_pem=ecdsa_ca.cert_pem,
        user="admin",
        client_cert_pem=admin.cert_pem,
        client_key_pem=admin.key_pem,
    )
    config = yaml.safe_load(text)
    assert config["apiVersion"] == "v1" and config["kind"] == "Config"
    assert config["current-context"] == "admin@tenant-a"
    (cluster,) = config["clusters"]
    (user,) = config["users"]
    (context,) = config["contexts"]
    assert cluster["name"] == "tenant-a"
    assert cluster["cluster"]["server"] == "https://10.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ecdsa_ca.cert_pem
    assert user["name"] == "admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == admin.cert_pem
    assert base64.b64decode(user["user"]["client-key-data"]) == admin.key_pem
    assert "token" not in user["user"]
    assert context["name"] == "admin@tenant-a"
    assert context["context"] == {"cluster": "tenant-a", "user": "admin"}


def test_kubeconfig_with_token_context_and_namespace(ecdsa_ca: CertKey) -> None:
    config = yaml.safe_load(
        kubeconfig(
            cluster_name="c",
            server="https://c:6443",
            ca_pem=ecdsa_ca.cert_pem,
            user="robot",
            token="abc.def",
            context="ctx",
            namespace="ns",
        )
    )
    assert config["users"] == [{"name": "robot", "user": {"token": "abc.def"}}]
    assert config["current-context"] == "ctx"
    assert config["contexts"] == [
        {"name": "ctx", "context": {"cluster": "c", "user": "robot", "namespace": "ns"}}
    ]


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"token": "t", "client_cert_pem": b"c", "client_key_pem": b"k"},
        {"client_cert_pem": b"c"},
        {"client_key_pem": b"k"},
        {"token": ""},
    ],
)
def test_kubeconfig_requires_exactly_one_credential(credentials: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        kubeconfig(
            cluster_name="c",
            server="https://c",
            ca_pem=b"ca",
            user="u",
            **credentials,  # type: ignore[arg-type]
        )
