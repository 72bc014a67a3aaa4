"""The admin kubeconfig Secret of a tenant cluster, signed directly with its CA.

k0smotron execs into the controller pod to get a kubeconfig; we sign a client
certificate with the CA from the `<cluster>-ca` Secret instead, so the kubeconfig exists
before any pod runs and no exec permission is needed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from mothership import pki
from mothership.render import names

NOT_AFTER_ANNOTATION = "mothership.io/client-cert-not-after"
SERVER_ANNOTATION = "mothership.io/server"
# What spec.kubeconfigSecretMetadata asked for when the Secret was written: a change to it
# must reach the Secret, and the watch keeps annotations, not labels.
METADATA_ANNOTATION = "mothership.io/secret-metadata"
DEFAULT_VALIDITY = timedelta(days=365)
# Rotate when less than this is left, so a kubeconfig fetched just before rotation
# still works for weeks.
RENEW_BEFORE = timedelta(days=30)


def metadata_digest(labels: dict[str, str] | None, annotations: dict[str, str] | None) -> str:
    """Short digest of the user's extra Secret metadata; empty when there is none, so
    Secrets written before this existed are not rewritten for it."""
    if not labels and not annotations:
        return ""
    text = json.dumps({"labels": labels or {}, "annotations": annotations or {}}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def needs_rotation(
    annotations: dict[str, str] | None,
    server: str,
    now: datetime | None = None,
    metadata: str = "",
) -> bool:
    """True when the Secret is missing, points at another server, expires soon, or carries
    other extra metadata than `metadata` (a :func:`metadata_digest`) asks for."""
    if not annotations or NOT_AFTER_ANNOTATION not in annotations:
        return True
    if annotations.get(SERVER_ANNOTATION) != server:
        return True
    if annotations.get(METADATA_ANNOTATION, "") != metadata:
        return True
    not_after = datetime.fromisoformat(annotations[NOT_AFTER_ANNOTATION])
    return (now or datetime.now(UTC)) + RENEW_BEFORE >= not_after


def kubeconfig_secret(
    cluster: str,
    namespace: str,
    *,
    server: str,
    ca: pki.CertKey,
    validity: timedelta = DEFAULT_VALIDITY,
    extra_labels: dict[str, str] | None = None,
    extra_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    client = pki.issue_cert(
        ca,
        "kubernetes-admin",
        organizations=("system:masters",),
        client=True,
        validity_days=max(1, validity.days),
    )
    text = pki.kubeconfig(
        cluster_name=cluster,
        server=server,
        ca_pem=ca.cert_pem,
        user=f"{cluster}-admin",
        client_cert_pem=client.cert_pem,
        client_key_pem=client.key_pem,
        context=f"{cluster}-admin@{cluster}",
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": names.CAPI_SECRET_TYPE,
        "metadata": {
            "name": names.kubeconfig_secret(cluster),
            "namespace": namespace,
            "labels": {
                **(extra_labels or {}),
                **names.labels(cluster, "kubeconfig"),
                names.CAPI_CLUSTER_NAME_LABEL: cluster,
            },
            "annotations": {
                **(extra_annotations or {}),
                NOT_AFTER_ANNOTATION: client.not_after.isoformat(),
                SERVER_ANNOTATION: server,
                **(
                    {METADATA_ANNOTATION: digest}
                    if (digest := metadata_digest(extra_labels, extra_annotations))
                    else {}
                ),
            },
        },
        "data": {"value": base64.b64encode(text.encode()).decode()},
    }
