"""The API-only local mothership behaves like a real cluster's control plane."""

from __future__ import annotations

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


def test_crd_and_custom_resource_crud(kc: Client) -> None:
    group = "widgets.mothership.test"
    crd = CustomResourceDefinition(
        metadata=ObjectMeta(name=f"widgets.{group}"),
        spec=CustomResourceDefinitionSpec(
            group=group,
            names=CustomResourceDefinitionNames(kind="Widget", plural="widgets", singular="widget"),
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
    kc.create(crd)

    def established() -> bool:
        conds = kc.get(CustomResourceDefinition, crd.metadata.name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conds)

    kube.wait_until("CRD established", established, 60)
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
