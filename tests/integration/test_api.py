"""The API-only local mothership behaves like a real cluster's control plane."""

from __future__ import annotations

import base64
import uuid

import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apiextensions_v1 import (
    CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec,
    CustomResourceDefinitionVersion,
    CustomResourceValidation,
    JSONSchemaProps,
)
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.types import PatchType

from mothership.controllers import crd_deletion
from mothership.testenv import health, kube, pins
from mothership.testenv.local import LocalMothership


@pytest.fixture(scope="module")
def kc(mothership_api: LocalMothership) -> Client:
    return kube.client(mothership_api.cfg.kubeconfig)


def _gone(fn: object) -> bool:
    assert callable(fn)
    try:
        fn()
    except ApiError as exc:
        if exc.status.code == 404:
            return True
        raise
    return False


def test_version_is_the_pinned_one(mothership_api: LocalMothership) -> None:
    p = mothership_api.cfg.pki_dir
    ctx = health.tls_context(p / "ca.crt", p / "admin.crt", p / "admin.key")
    status, body = health.http_get(f"{mothership_api.cfg.api_url}/version", ctx)
    assert status == 200
    assert f'"gitVersion": "{pins.KUBERNETES_VERSION}"' in body


def test_anonymous_and_untrusted_clients_are_refused(mothership_api: LocalMothership) -> None:
    ctx = health.tls_context(mothership_api.cfg.pki_dir / "ca.crt")
    status, _ = health.http_get(f"{mothership_api.cfg.api_url}/api/v1/namespaces", ctx)
    assert status in (401, 403)


def test_namespace_crud(kc: Client) -> None:
    name = f"crud-{uuid.uuid4().hex[:8]}"
    kc.create(Namespace(metadata=ObjectMeta(name=name, labels={"purpose": "test"})))
    got = kc.get(Namespace, name)
    assert got.metadata.labels["purpose"] == "test"
    got.metadata.labels["purpose"] = "updated"
    kc.replace(got)
    assert kc.get(Namespace, name).metadata.labels["purpose"] == "updated"
    kc.delete(Namespace, name)
    # The namespace controller (in kube-controller-manager) finalizes the deletion.
    kube.wait_until(f"namespace {name} deleted", lambda: _gone(lambda: kc.get(Namespace, name)), 60)


def _crd(group: str, kind: str) -> CustomResourceDefinition:
    """A namespaced CRD with one version whose spec has an integer `size`."""
    plural = f"{kind.lower()}s"
    return CustomResourceDefinition(
        metadata=ObjectMeta(name=f"{plural}.{group}"),
        spec=CustomResourceDefinitionSpec(
            group=group,
            names=CustomResourceDefinitionNames(kind=kind, plural=plural, singular=kind.lower()),
            scope="Namespaced",
            versions=[
                CustomResourceDefinitionVersion(
                    name="v1",
                    served=True,
                    storage=True,
                    schema=CustomResourceValidation(
                        openAPIV3Schema=JSONSchemaProps(
                            type="object",
                            properties={
                                "spec": JSONSchemaProps(
                                    type="object",
                                    properties={"size": JSONSchemaProps(type="integer")},
                                )
                            },
                        )
                    ),
                )
            ],
        ),
    )


def _established(kc: Client, name: str) -> bool:
    conds = kc.get(CustomResourceDefinition, name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conds)


def test_crd_and_custom_resource_crud(kc: Client) -> None:
    group = "widgets.mothership.test"
    crd = _crd(group, "Widget")
    kc.create(crd)
    kube.wait_until("CRD established", lambda: _established(kc, crd.metadata.name), 60)
    widget = create_namespaced_resource(group, "v1", "Widget", "widgets")
    kc.create(widget(metadata=ObjectMeta(name="w1", namespace="default"), spec={"size": 3}))
    assert kc.get(widget, "w1", namespace="default").spec["size"] == 3
    # Structural schema is enforced by the real API server: a string is not an integer.
    with pytest.raises(ApiError) as bad:
        kc.create(widget(metadata=ObjectMeta(name="w2", namespace="default"), spec={"size": "x"}))
    assert bad.value.status.code == 422
    kc.delete(widget, "w1", namespace="default")
    kc.delete(CustomResourceDefinition, crd.metadata.name)
    kube.wait_until(
        "CRD deleted",
        lambda: _gone(lambda: kc.get(CustomResourceDefinition, crd.metadata.name)),
        60,
    )


def test_a_crd_held_in_deletion_takes_the_nudge_and_goes_once_freed(kc: Client) -> None:
    """What an uninstall does to a CRD that lingers in deletion (crd_deletion): the API
    server takes the annotation on a terminating CRD, once per interval, and the CRD still
    goes when what held it lets go."""
    group = "gadgets.mothership.test"
    crd = _crd(group, "Gadget")
    name = crd.metadata.name
    kc.create(crd)
    kube.wait_until("CRD established", lambda: _established(kc, name), 60)
    gadget = create_namespaced_resource(group, "v1", "Gadget", "gadgets")
    held = ObjectMeta(name="g1", namespace="default", finalizers=["mothership.test/hold"])
    kc.create(gadget(metadata=held, spec={"size": 1}))
    kc.delete(CustomResourceDefinition, name)
    # deletionTimestamp has whole seconds, so a CRD just deleted can look up to a second older
    # than it is; the interval leaves room for that and for a busy API server's latency.
    nudge = crd_deletion.Nudger(kc, [name], linger=5.0)
    assert nudge() == []  # just deleted: on its normal way out
    kube.wait_until("the held CRD nudged", lambda: nudge() == [name], 30)
    assert nudge.still_there(name) is True  # what the wait reads instead of a GET of its own
    assert nudge() == []  # not again within the interval
    assert nudge.still_there(name) is None  # and not looked at
    annotations = kc.get(CustomResourceDefinition, name).metadata.annotations or {}
    assert crd_deletion.NUDGE_ANNOTATION in annotations
    assert kc.get(CustomResourceDefinition, name).metadata.deletionTimestamp is not None
    unhold = {"metadata": {"finalizers": None}}
    kc.patch(gadget, "g1", unhold, namespace="default", patch_type=PatchType.MERGE)
    kube.wait_until(
        "CRD deleted", lambda: _gone(lambda: kc.get(CustomResourceDefinition, name)), 90
    )
    assert nudge() == []  # gone: nothing to nudge
    # Once the interval since its nudge is over, the nudger looks, finds it gone, and keeps that.
    kube.wait_until(
        "the nudger seeing it gone", lambda: nudge() == [] and nudge.still_there(name) is False, 30
    )
    assert name in nudge.gone and nudge() == [] and nudge.still_there(name) is False


def test_deleting_an_owner_garbage_collects_dependents(kc: Client) -> None:
    suffix = uuid.uuid4().hex[:8]
    owner = kc.create(ConfigMap(metadata=ObjectMeta(name=f"owner-{suffix}", namespace="default")))
    ref = OwnerReference(
        apiVersion="v1", kind="ConfigMap", name=owner.metadata.name, uid=owner.metadata.uid
    )
    dependent = f"dependent-{suffix}"
    kc.create(
        ConfigMap(metadata=ObjectMeta(name=dependent, namespace="default", ownerReferences=[ref]))
    )
    kc.delete(ConfigMap, owner.metadata.name, namespace="default")
    kube.wait_until(
        "dependent garbage-collected",
        lambda: _gone(lambda: kc.get(ConfigMap, dependent, namespace="default")),
        90,
    )


def test_approved_csr_is_signed_by_the_controller_manager(kc: Client) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from lightkube.models.certificates_v1 import (
        CertificateSigningRequestCondition,
        CertificateSigningRequestSpec,
        CertificateSigningRequestStatus,
    )
    from lightkube.resources.certificates_v1 import (
        CertificateSigningRequest,
        CertificateSigningRequestApproval,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "csr-test-user")])
    csr_pem = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    name = f"csr-{uuid.uuid4().hex[:8]}"
    kc.create(
        CertificateSigningRequest(
            metadata=ObjectMeta(name=name),
            spec=CertificateSigningRequestSpec(
                request=base64.b64encode(csr_pem).decode(),
                signerName="kubernetes.io/kube-apiserver-client",
                usages=["client auth", "digital signature"],
                expirationSeconds=3600,
            ),
        )
    )
    csr = kc.get(CertificateSigningRequest, name)
    csr.status = CertificateSigningRequestStatus(
        conditions=[
            CertificateSigningRequestCondition(
                type="Approved", status="True", reason="Test", message="approved by the test"
            )
        ]
    )
    kc.replace(CertificateSigningRequestApproval.from_dict(csr.to_dict()))

    def signed() -> bool:
        return bool(kc.get(CertificateSigningRequest, name).status.certificate)

    kube.wait_until("CSR signed", signed, 60)
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(kc.get(CertificateSigningRequest, name).status.certificate)
    )
    assert cert.subject == subject
    kc.delete(CertificateSigningRequest, name)


def test_bootstrap_signer_signs_cluster_info(kc: Client) -> None:
    from lightkube.resources.core_v1 import Secret

    token_id = uuid.uuid4().hex[:6]
    kc.create(
        ConfigMap(
            metadata=ObjectMeta(name="cluster-info", namespace="kube-public"),
            data={"kubeconfig": "apiVersion: v1\nkind: Config\nclusters: []\n"},
        )
    )
    kc.create(
        Secret(
            metadata=ObjectMeta(name=f"bootstrap-token-{token_id}", namespace="kube-system"),
            type="bootstrap.kubernetes.io/token",
            stringData={
                "token-id": token_id,
                "token-secret": uuid.uuid4().hex[:16],
                "usage-bootstrap-signing": "true",
            },
        )
    )

    def signed() -> bool:
        data = kc.get(ConfigMap, "cluster-info", namespace="kube-public").data or {}
        return f"jws-kubeconfig-{token_id}" in data

    try:
        kube.wait_until("cluster-info signed for the token", signed, 60)
    finally:
        kc.delete(Secret, f"bootstrap-token-{token_id}", namespace="kube-system")
        kc.delete(ConfigMap, "cluster-info", namespace="kube-public")
