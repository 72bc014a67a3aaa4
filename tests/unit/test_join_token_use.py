"""Single-use join tokens: which node used a token, read from the tenant's CSRs."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mothership.cli.errors import InvalidInput
from mothership.cli.token import _request
from mothership.controllers import join_token_use
from mothership.webhooks import validate


def _csr(common_name: str, username: str, created: str = "2026-12-05T10:00:00Z") -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    pem = request.public_bytes(serialization.Encoding.PEM)
    return {
        "metadata": {"name": f"csr-{common_name}", "creationTimestamp": created},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "username": username,
            "signerName": join_token_use.KUBELET_CLIENT_SIGNER,
        },
    }


def test_the_node_comes_from_the_csr_subject() -> None:
    assert join_token_use.node_of_csr(_csr("system:node:edge-1", "x")) == "edge-1"
    assert join_token_use.node_of_csr(_csr("alice", "x")) is None
    assert join_token_use.node_of_csr({"spec": {"request": "bm90IGEgY3Ny"}}) is None
    assert join_token_use.node_of_csr({"spec": {}}) is None


def test_only_csrs_made_with_the_token_count_oldest_first_once_each() -> None:
    csrs = [
        _csr("system:node:late", "system:bootstrap:abc123", "2026-12-05T10:05:00Z"),
        _csr("system:node:other", "system:bootstrap:zzz999"),
        _csr("system:node:first", "system:bootstrap:abc123", "2026-12-05T10:01:00Z"),
        _csr("system:node:first", "system:bootstrap:abc123", "2026-12-05T10:02:00Z"),
        _csr("system:node:renewed", "system:node:renewed"),
    ]
    assert join_token_use.nodes_asked_for(csrs, "abc123") == ["first", "late"]
    assert join_token_use.nodes_asked_for(csrs, "nope00") == []


def _jtr(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "JoinTokenRequest",
        "metadata": {"name": "t", "namespace": "default"},
        "spec": {"clusterName": "demo", **spec},
    }


def test_admission_refuses_single_use_controller_tokens_naming_the_field() -> None:
    assert validate.validate(_jtr({"singleUse": True})).errors == []
    result = validate.validate(_jtr({"singleUse": True, "role": "controller"}))
    assert [p.path for p in result.errors] == ["spec.singleUse"]
    assert "only worker tokens" in result.errors[0].message


def test_the_cli_asks_for_single_use_only_when_told() -> None:
    assert "singleUse" not in _request("demo", "worker", "1h", None)["spec"]
    assert _request("demo", "worker", "1h", None, single_use=True)["spec"]["singleUse"] is True
    with pytest.raises(InvalidInput, match="--single-use"):
        _request("demo", "controller", "1h", None, single_use=True)


def test_the_requester_is_recorded_at_creation_and_kept_on_update() -> None:
    from mothership.webhooks.defaults import apply, requester_ops

    key = "mothership.io/requested-by"
    new = _jtr({})
    created = apply(new, requester_ops(new, None, "alice"))
    assert created["metadata"]["annotations"] == {key: "alice"}
    forged = _jtr({})
    forged["metadata"]["annotations"] = {key: "mallory", "other": "x"}
    assert apply(forged, requester_ops(forged, None, "alice"))["metadata"]["annotations"] == {
        key: "alice",
        "other": "x",
    }
    # An update keeps what creation recorded, and an object from before keeps none.
    assert (
        apply(forged, requester_ops(forged, created, "mallory"))["metadata"]["annotations"][key]
        == "alice"
    )
    assert (
        key
        not in apply(forged, requester_ops(forged, _jtr({}), "mallory"))["metadata"]["annotations"]
    )
    assert requester_ops(created, created, "bob") == []
