"""Certificates and keys for hosted control planes, kept in memory as PEM bytes.

Everything here is pure: callers decide where PEM ends up (Secrets, files in a state dir),
so the same code serves the operator and the local test cluster.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Components on other hosts may run slightly behind; a certificate that is "not yet valid"
# for them would fail handshakes right after issuance.
CLOCK_SKEW = timedelta(minutes=5)

KEY_TYPES = ("ecdsa", "rsa")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertKey:
    """A certificate with its private key, both PEM, ready to store as-is."""

    cert_pem: bytes
    key_pem: bytes

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @cached_property
    def private_key(self) -> PrivateKey:
        """The key, loaded once, and without OpenSSL's consistency check of an RSA key (40-120
        ms of CPU on this host, a tenth of the operator's CPU in `bench fleet`): our keys
        come from Secrets the operator wrote itself, and whoever can rewrite those owns the
        Cluster already; the check guards against corrupt keys from untrusted sources."""
        key = serialization.load_pem_private_key(
            self.key_pem, password=None, unsafe_skip_rsa_key_validation=True
        )
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the key must be ECDSA or RSA")
        return key

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def common_name(self) -> str:
        return _common_name(self.certificate)


def new_ca(common_name: str, *, validity_days: int = 3650, key_type: str = "ecdsa") -> CertKey:
    """A self-signed CA; each trust domain (cluster, front proxy, etcd) gets its own."""
    _check_validity(validity_days)
    key = _new_key(key_type)
    name = _name(common_name, ())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return CertKey(_cert_pem(builder.sign(key, hashes.SHA256())), _key_pem(key))


def issue_cert(
    ca: CertKey,
    common_name: str,
    *,
    organizations: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    server: bool = False,
    client: bool = False,
    validity_days: int = 365,
    key_type: str = "ecdsa",
) -> CertKey:
    """A leaf signed by `ca`.

    Kubernetes maps the common name to the user and organizations to groups for client certs,
    and TLS clients match SANs (never the CN) for server certs. The leaf never outlives its CA,
    since a chain is only as valid as its shortest-lived link.
    """
    if not (server or client):
        raise ValueError(f"certificate {common_name!r} must be for server use, client use, or both")
    _check_validity(validity_days)
    ips = [_parse_ip(value) for value in ip_addresses]
    usages: list[x509.ObjectIdentifier] = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_cert = ca.certificate
    try:
        ca_key = ca.private_key
    except ValueError as exc:
        raise ValueError(f"CA key: {exc}") from exc
    key = _new_key(key_type)
    now = datetime.now(UTC)
    not_after = min(now + timedelta(days=validity_days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organizations))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # Key encipherment only means something for RSA key transport.
        .add_extension(
            _key_usage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey)),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in dns_names]
    names += [x509.IPAddress(ip) for ip in ips]
    if names:  # An empty SAN extension is invalid per RFC 5280.
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return CertKey(_cert_pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key))


def new_service_account_key() -> tuple[bytes, bytes]:
    """(private_pem, public_pem) for signing and verifying service account tokens.

    ECDSA P-256 (ES256 tokens), which kube-apiserver and the controller manager have taken
    since service-account keys could be other than RSA, and which takes well under a
    millisecond to make where RSA 2048 takes 50-150 ms; the public half is what kube-apiserver
    verifies with, the private half what it and the controller manager sign with.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _key_pem(key), public_pem


def cert_signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether `ca_pem` issued `cert_pem`; unparseable PEM raises ValueError rather than False."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        # ValueError: issuer name mismatch; TypeError: key types that cannot have signed it.
        return False
    return True


def key_matches_cert(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether the key is the cert's own; stored pairs can drift apart when rotated halfway."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    return _spki(cert.public_key()) == _spki(key.public_key())


def needs_renewal(cert_pem: bytes, *, within: timedelta, now: datetime | None = None) -> bool:
    """Whether the cert expires within `within` of `now`, so rotation happens before outages."""
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    cert = x509.load_pem_x509_certificate(cert_pem)
    return now + within >= cert.not_valid_after_utc


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key_type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


def _check_validity(validity_days: int) -> None:
    if validity_days <= 0:
        raise ValueError(f"validity_days must be positive, got {validity_days}")


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None


def _name(common_name: str, organizations: Sequence[str]) -> x509.Name:
    # A subject of organizations alone is allowed: etcd's JSON gateway refuses a client
    # certificate with a common name (it would not be the user), so the operator's has none.
    if not common_name and not organizations:
        raise ValueError("common_name must not be empty")
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = values[0].value if values else ""
    return value.decode() if isinstance(value, bytes) else value


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # Prefer the CA's own SKI so chains still link up for CAs made elsewhere with other methods.
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_ca_public_key(ca_cert))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _ca_public_key(ca_cert: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    public_key = ca_cert.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError("CA key must be ECDSA or RSA")
    return public_key


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
