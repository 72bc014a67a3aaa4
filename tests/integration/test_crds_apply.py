"""The checked-in CRDs install on a real API server and enforce what the models say.

Unit tests can only check that the schemas look structural; the API server is the judge:
it refuses non-structural v1 schemas, applies the `default:`s, and validates enums. Reading
server-defaulted objects back through the models also proves that the CRD defaults and the
pydantic defaults agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import (
    GenericNamespacedResource,
    create_global_resource,
    create_namespaced_resource,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from mothership.api import generate
from mothership.api.k0smotron import v1beta1, v1beta2
from mothership.controllers import crd_deletion, crd_ready
from mothership.testenv import kube
from mothership.testenv.local import LocalMothership

GROUP = "k0smotron.io"
NAMESPACE = "default"
TIMEOUT = 60
DELETE_TIMEOUT = 180


def _resource(version: str, kind: str, plural: str) -> type[GenericNamespacedResource]:
    return create_namespaced_resource(GROUP, version, kind, plural)


ClusterV2 = _resource("v1beta2", "Cluster", "clusters")
ClusterV1 = _resource("v1beta1", "Cluster", "clusters")
JoinTokenRequestV2 = _resource("v1beta2", "JoinTokenRequest", "jointokenrequests")
JoinTokenRequestV1 = _resource("v1beta1", "JoinTokenRequest", "jointokenrequests")
SERVED = {
    "v1beta2 Cluster": ClusterV2,
    "v1beta1 Cluster": ClusterV1,
    "v1beta2 JoinTokenRequest": JoinTokenRequestV2,
    "v1beta1 JoinTokenRequest": JoinTokenRequestV1,
}


def _crd_docs() -> list[dict[str, Any]]:
    files = sorted(generate.DEFAULT_OUT.glob("*.yaml"))
    assert files, f"no CRDs in {generate.DEFAULT_OUT}: run `python -m mothership.api.generate`"
    return [doc for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]


def _gone(kc: Client, name: str) -> bool:
    try:
        kc.get(CustomResourceDefinition, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return True
        raise
    return False


def _delete(kc: Client, name: str) -> None:
    try:
        kc.delete(CustomResourceDefinition, name)
    except ApiError as exc:
        if exc.status.code not in (404, 409):  # already gone, or being deleted meanwhile
            raise


def _conditions(kc: Client, name: str) -> dict[str, str]:
    crd = kc.get(CustomResourceDefinition, name)
    return {c.type: c.status for c in (crd.status.conditions if crd.status else None) or []}


@pytest.fixture(scope="module")
def kc(mothership_api: LocalMothership) -> Client:
    return kube.client(mothership_api.cfg.kubeconfig, field_manager="mothership-crd-test")


@pytest.fixture(scope="module")
def crd_names(kc: Client) -> Iterator[list[str]]:
    """Install every generated CRD (server-side apply, so a re-run or another installer is
    fine) and remove them afterwards."""
    names = []
    for doc in _crd_docs():
        crd = codecs.from_dict(doc)
        # lightkube's model must carry every keyword we generate, or the test would apply
        # something other than the checked-in file.
        assert crd.to_dict() == doc
        name = doc["metadata"]["name"]
        crd_obj = kc.get(CustomResourceDefinition, name) if not _gone(kc, name) else None
        if crd_obj is not None and crd_obj.metadata.deletionTimestamp:
            kube.wait_until(f"{name} finished deleting", lambda n=name: _gone(kc, n), TIMEOUT)
        kc.apply(crd, force=True)
        names.append(name)
    for name in names:
        kube.wait_until(
            f"{name} Established",
            lambda n=name: _conditions(kc, n).get("Established") == "True",
            TIMEOUT,
        )
    # Discovery of the new kinds lags Established a little, and a kind's watch cache fills
    # after that: a CRD deleted before it answers a LIST can linger in deletion (see
    # crd_deletion), so every kind is listed once here.
    for label, res in SERVED.items():
        kube.wait_until(
            f"{label} served",
            lambda r=res: list(kc.list(r, namespace=NAMESPACE)) is not None,
            TIMEOUT,
        )
    kube.wait_until("every CRD listable", lambda: not crd_ready.not_ready(kc, names), TIMEOUT)
    yield names
    for name in names:
        _delete(kc, name)
    # The API server deletes every instance before the CRD goes, one CRD after another
    # through one finalizer queue; a busy shared server took over a minute once. Wait for
    # all together, nudging those that linger, and on a timeout say what holds each one up.
    nudge = crd_deletion.Nudger(kc, names)

    def all_gone() -> bool:
        nudge()
        return all(_gone(kc, n) for n in names)

    try:
        kube.wait_until("every CRD deleted", all_gone, DELETE_TIMEOUT)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; {_deletion_blockers(kc, names)}") from exc


def _deletion_blockers(kc: Client, names: list[str]) -> str:
    """The CRDs still present, with their conditions and the instances (and finalizers)
    left, so a stuck teardown names its cause."""
    found = []
    for name in names:
        if _gone(kc, name):
            continue
        crd = kc.get(CustomResourceDefinition, name)
        left = []
        for version in crd.spec.versions:
            if not version.storage:
                continue
            spec = crd.spec
            namespaced = spec.scope == "Namespaced"
            make = create_namespaced_resource if namespaced else create_global_resource
            res = make(spec.group, version.name, spec.names.kind, spec.names.plural)
            try:
                for obj in kc.list(res, **({"namespace": "*"} if namespaced else {})):
                    meta = obj.metadata
                    left.append(f"{meta.namespace}/{meta.name} finalizers={meta.finalizers}")
            except ApiError as exc:
                left.append(f"list failed: {exc.status.message}")
        found.append(f"{name}: conditions={_conditions(kc, name)} instances={left}")
    return "; ".join(found) or "all gone by now"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(kc: Client, res: type[GenericNamespacedResource], name: str, **body: Any) -> Any:
    return kc.create(res(metadata={"name": name, "namespace": NAMESPACE}, **body))


INFRA_PLURALS = (
    "pooledremotemachines",
    "remoteclusters",
    "remoteclustertemplates",
    "remotemachines",
    "remotemachinetemplates",
)


def test_crds_are_established_and_structural(kc: Client, crd_names: list[str]) -> None:
    assert sorted(crd_names) == sorted(
        [
            f"clusters.{GROUP}",
            f"jointokenrequests.{GROUP}",
            "datastores.mothership.io",
            "k0sworkerconfigs.bootstrap.cluster.x-k8s.io",
            "k0sworkerconfigtemplates.bootstrap.cluster.x-k8s.io",
            "k0smotroncontrolplanes.controlplane.cluster.x-k8s.io",
            "k0smotroncontrolplanetemplates.controlplane.cluster.x-k8s.io",
            *(f"{p}.infrastructure.cluster.x-k8s.io" for p in INFRA_PLURALS),
        ]
    )
    for name in crd_names:
        conditions = _conditions(kc, name)
        assert conditions.get("Established") == "True"
        assert conditions.get("NamesAccepted") == "True"
        assert "NonStructuralSchema" not in conditions, conditions
        served = kc.get(CustomResourceDefinition, name).spec.versions
        if name.endswith(".mothership.io"):
            # mothership's own kinds have one version so far.
            assert [(v.name, v.storage) for v in served] == [("v1alpha1", True)]
            continue
        assert [(v.name, v.storage) for v in served] == [("v1beta2", True), ("v1beta1", False)]
        if "cluster.x-k8s.io" in name:
            # Cluster API finds the version serving each of its contracts in these labels.
            labels = kc.get(CustomResourceDefinition, name).metadata.labels
            assert labels["cluster.x-k8s.io/v1beta2"] == "v1beta2"
            assert labels["cluster.x-k8s.io/v1beta1"] == "v1beta1"


def test_v1beta2_cluster_gets_the_model_defaults(kc: Client, crd_names: list[str]) -> None:
    name = _name("v2")
    _create(kc, ClusterV2, name)  # no spec at all: everything defaulted
    got = kc.get(ClusterV2, name, namespace=NAMESPACE)
    assert got["spec"]["replicas"] == 1
    assert got["spec"]["service"]["apiPort"] == 30443
    assert got["spec"]["service"]["type"] == "ClusterIP"
    assert got["spec"]["storage"]["etcd"]["persistence"]["size"] == "1Gi"
    # What the server stored parses, and its defaults are the models' defaults.
    parsed = v1beta2.Cluster.model_validate(got.to_dict())
    assert parsed.spec == v1beta2.ClusterSpec()
    kc.delete(ClusterV2, name, namespace=NAMESPACE)


def test_v1beta1_cluster_gets_the_model_defaults(kc: Client, crd_names: list[str]) -> None:
    # The version is read back as written: with conversion strategy None the server only
    # rewrites apiVersion, so reading across versions needs the conversion webhook.
    # `spec: null` is how k0smotron's docs ask for "all defaults": the server prunes the
    # null (spec is not nullable) and then defaults it.
    name = _name("v1")
    _create(kc, ClusterV1, name, spec=None)
    got = kc.get(ClusterV1, name, namespace=NAMESPACE)
    assert got.apiVersion == f"{GROUP}/v1beta1"
    assert got["spec"]["replicas"] == 1
    assert got["spec"]["service"]["apiPort"] == 30443
    assert got["spec"]["persistence"]["type"] == "emptyDir"
    parsed = v1beta1.Cluster.model_validate(got.to_dict())
    assert parsed.spec == v1beta1.ClusterSpec()
    kc.delete(ClusterV1, name, namespace=NAMESPACE)


def test_join_token_requests_of_both_versions(kc: Client, crd_names: list[str]) -> None:
    name = _name("jtr")
    _create(kc, JoinTokenRequestV2, name, spec={"clusterName": "c1"})
    got = kc.get(JoinTokenRequestV2, name, namespace=NAMESPACE)
    assert got["spec"] == {"clusterName": "c1", "expiry": "0s", "role": "worker"}
    kc.delete(JoinTokenRequestV2, name, namespace=NAMESPACE)

    ref = {"name": "c1", "namespace": NAMESPACE}
    _create(kc, JoinTokenRequestV1, name, spec={"clusterRef": ref, "role": "controller"})
    got = kc.get(JoinTokenRequestV1, name, namespace=NAMESPACE)
    assert got["spec"] == {"clusterRef": ref, "expiry": "0s", "role": "controller"}
    kc.delete(JoinTokenRequestV1, name, namespace=NAMESPACE)


def test_scale_subresource(kc: Client, crd_names: list[str]) -> None:
    name = _name("scale")
    _create(kc, ClusterV2, name, spec={"replicas": 3})
    scale = kc.get(ClusterV2.Scale, name, namespace=NAMESPACE)
    assert scale.spec.replicas == 3
    scale.spec.replicas = 5
    kc.replace(scale)
    assert kc.get(ClusterV2, name, namespace=NAMESPACE)["spec"]["replicas"] == 5
    kc.delete(ClusterV2, name, namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("res", "spec", "field"),
    [
        (ClusterV2, {"service": {"type": "Bogus"}}, "spec.service.type"),
        (ClusterV2, {"storage": {"type": "sqlite"}}, "spec.storage.type"),
        (ClusterV1, {"persistence": {"type": "nfs"}}, "spec.persistence.type"),
        (JoinTokenRequestV2, {"clusterName": "c1", "role": "admin"}, "spec.role"),
    ],
)
def test_invalid_enum_value_is_rejected(
    kc: Client,
    crd_names: list[str],
    res: type[GenericNamespacedResource],
    spec: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(ApiError) as info:
        _create(kc, res, _name("bad"), spec=spec)
    assert info.value.status.code == 422
    assert f"{field}: Unsupported value" in info.value.status.message
