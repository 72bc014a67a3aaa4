"""Pure PKI helpers: CAs, leaf certificates, service account keys and kubeconfigs.

Nothing here touches disk or the network, so callers choose where material is stored and
tests can exercise it quickly.
"""

from mothership.pki.certs import (
    CertKey,
    cert_signed_by,
    issue_cert,
    key_matches_cert,
    needs_renewal,
    new_ca,
    new_service_account_key,
)
from mothership.pki.kubeconfig import kubeconfig

__all__ = [
    "CertKey",
    "cert_signed_by",
    "issue_cert",
    "key_matches_cert",
    "kubeconfig",
    "needs_renewal",
    "new_ca",
    "new_service_account_key",
]
