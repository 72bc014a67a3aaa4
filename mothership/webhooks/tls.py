"""The webhook's own serving certificate, kept in a directory and reused while it is good.

The API server only calls webhooks over TLS and checks the certificate against the
``caBundle`` registered with them. A private CA, made here and never shared, avoids a
dependency on cert-manager; reusing it across restarts keeps the ``caBundle`` stable, so a
restart never leaves a window in which the registered bundle and the served certificate
disagree (every admission request would fail meanwhile, with ``failurePolicy: Fail``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from mothership import pki

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

CA_VALIDITY_DAYS = 3650
CERT_VALIDITY_DAYS = 365
# Renew well before expiry: the operator may run for weeks between restarts, and only a
# restart (or another call) replaces the files.
CA_RENEW_BEFORE = timedelta(days=180)
CERT_RENEW_BEFORE = timedelta(days=60)

DEFAULT_DNS_NAMES = ("localhost",)
DEFAULT_IP_ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True)
class WebhookTLS:
    """Where the serving material lives, and the CA PEM to register as ``caBundle``."""

    ca_pem: bytes
    ca_path: Path
    cert_path: Path
    key_path: Path


def webhook_tls(
    tls_dir: Path,
    *,
    dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
) -> WebhookTLS:
    """Make sure ``tls_dir`` holds a CA and a serving certificate for these names.

    Existing files are kept while they are valid for long enough, belong together and
    cover every requested name; otherwise only what is wrong is replaced (a new leaf from
    the same CA where possible, so the ``caBundle`` does not change). Call it at every
    start, then register with the returned ``ca_pem``.
    """
    if not dns_names and not ip_addresses:
        raise ValueError("the serving certificate needs at least one DNS name or IP address")
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = {name: tls_dir / name for name in (CA_CERT_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)}
    ca = _load(paths[CA_CERT_FILE], paths[CA_KEY_FILE])
    if ca is None or pki.needs_renewal(ca.cert_pem, within=CA_RENEW_BEFORE):
        ca = pki.new_ca("mothership-webhook-ca", validity_days=CA_VALIDITY_DAYS)
        _write(paths[CA_KEY_FILE], ca.key_pem, private=True)
        _write(paths[CA_CERT_FILE], ca.cert_pem)
    leaf = _load(paths[CERT_FILE], paths[KEY_FILE])
    if leaf is None or not _leaf_ok(leaf, ca, dns_names, ip_addresses):
        leaf = pki.issue_cert(
            ca,
            "mothership-webhook",
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            server=True,
            validity_days=CERT_VALIDITY_DAYS,
        )
        _write(paths[KEY_FILE], leaf.key_pem, private=True)
        _write(paths[CERT_FILE], leaf.cert_pem)
    return WebhookTLS(ca.cert_pem, paths[CA_CERT_FILE], paths[CERT_FILE], paths[KEY_FILE])


def _load(cert_path: Path, key_path: Path) -> pki.CertKey | None:
    """The pair on disk, or None when either file is missing, unreadable or they differ."""
    try:
        pair = pki.CertKey(cert_path.read_bytes(), key_path.read_bytes())
        return pair if pki.key_matches_cert(pair.cert_pem, pair.key_pem) else None
    except (OSError, ValueError, TypeError):
        return None


def _leaf_ok(
    leaf: pki.CertKey,
    ca: pki.CertKey,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
) -> bool:
    if not pki.cert_signed_by(leaf.cert_pem, ca.cert_pem):
        return False
    if pki.needs_renewal(leaf.cert_pem, within=CERT_RENEW_BEFORE):
        return False
    try:
        san = leaf.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    have_dns = set(san.value.get_values_for_type(x509.DNSName))
    have_ips = set(san.value.get_values_for_type(x509.IPAddress))
    want_ips = {ipaddress.ip_address(ip) for ip in ip_addresses}
    return set(dns_names) <= have_dns and want_ips <= have_ips


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` atomically: a crash never leaves half a key behind."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
