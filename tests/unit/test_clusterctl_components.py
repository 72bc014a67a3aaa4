"""mothership's clusterctl provider files: the install objects split three ways, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mothership.api.bootstrap.v1beta2 import GROUP as BOOTSTRAP_GROUP
from mothership.api.infrastructure.v1beta2 import GROUP as INFRA_GROUP
from mothership.install import clusterctl, manifests
from mothership.install.local import clusterctl_init_args as init_args
from mothership.testenv.localclusterctl import (
    CORE_IMAGE,
    RepositoryError,
    core_components_from,
)


def _key(obj: dict) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def test_every_install_object_is_in_exactly_one_provider_and_each_names_the_namespace() -> None:
    """All but the CRDs of mothership's own group (DataStore), which no provider carries:
    clusterctl cannot delete a provider with a cluster-scoped CRD of its own."""
    everything = [
        o
        for o in manifests.objects(manifests.Settings(cert_manager=True))
        if not (o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "mothership.io")
    ]
    split = {t: clusterctl.components(t) for t in clusterctl.TYPES}
    namespace = next(o for o in everything if o["kind"] == "Namespace")
    for objs in split.values():
        assert [o for o in objs if o["kind"] == "Namespace"] == [namespace]
    seen = [_key(o) for objs in split.values() for o in objs if o["kind"] != "Namespace"]
    assert len(seen) == len(set(seen))
    assert set(seen) == {_key(o) for o in everything if o["kind"] != "Namespace"}


def test_bootstrap_and_infrastructure_hold_only_their_crds_and_the_operator_is_control_plane() -> (
    None
):
    for provider_type, group in (("bootstrap", BOOTSTRAP_GROUP), ("infrastructure", INFRA_GROUP)):
        crds = [o for o in clusterctl.components(provider_type) if o["kind"] != "Namespace"]
        assert crds and all(o["kind"] == "CustomResourceDefinition" for o in crds)
        assert {o["spec"]["group"] for o in crds} == {group}
    kinds = {o["kind"] for o in clusterctl.components("control-plane")}
    # cert-manager issues the webhook certificate, as clusterctl expects of a provider.
    assert {"Deployment", "Certificate", "ValidatingWebhookConfiguration"} <= kinds


def test_provider_crds_keep_their_cluster_api_contract_labels() -> None:
    """Cluster API finds which version of a provider's kind to use from these labels; the
    install manifest once dropped them."""
    for provider_type in clusterctl.TYPES:
        for crd in clusterctl.components(provider_type):
            if crd["kind"] != "CustomResourceDefinition" or "x-k8s.io" not in crd["spec"]["group"]:
                continue
            labels = crd["metadata"]["labels"]
            assert labels.get("cluster.x-k8s.io/v1beta2") == "v1beta2", crd["metadata"]["name"]
            assert "cert-manager.io/inject-ca-from" in crd["metadata"]["annotations"]


def test_metadata_maps_the_release_series_to_contract_v1beta2() -> None:
    meta = clusterctl.metadata("v2.7.1")
    assert meta["kind"] == "Metadata"
    assert meta["releaseSeries"] == [{"major": 2, "minor": 7, "contract": "v1beta2"}]
    assert clusterctl.version().startswith("v")


def test_an_unknown_provider_type_is_refused_naming_the_types() -> None:
    with pytest.raises(ValueError, match="control-plane, bootstrap, infrastructure"):
        clusterctl.components("core")


def test_the_repository_is_laid_out_as_clusterctl_reads_it(tmp_path: Path) -> None:
    entries = clusterctl.write_repository(tmp_path)
    version = clusterctl.version()
    assert {e["type"] for e in entries} == set(clusterctl.TYPES.values())
    for entry, provider_type in zip(entries, clusterctl.TYPES, strict=True):
        d = tmp_path / f"{provider_type}-mothership" / version
        path = d / f"{provider_type}-components.yaml"
        assert entry == {"name": "mothership", "url": path.as_uri(), "type": entry["type"]}
        assert list(yaml.safe_load_all(path.read_text())) == clusterctl.components(provider_type)
        assert yaml.safe_load((d / "metadata.yaml").read_text()) == clusterctl.metadata()
    args = init_args(tmp_path / "clusterctl.yaml")
    assert args[args.index("--bootstrap") + 1] == f"mothership:{version}"


def test_the_core_provider_runs_the_local_manager_image_pulled_only_if_absent() -> None:
    docs = [
        {"kind": "Namespace", "metadata": {"name": "capi-system"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "capi-controller-manager"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "manager", "image": "gcr.io/x/cluster-api-controller:main",
                 "imagePullPolicy": "Always"},
            ]}}},
        },
    ]  # fmt: skip
    out = core_components_from(docs)
    container = out[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == CORE_IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent"
    with pytest.raises(RepositoryError, match="no Deployment with a manager"):
        core_components_from(docs[:1])
