"""k0smotron manifests must parse into our models, get k0smotron's defaults, and survive dumping.

The examples under data/k0smotron are written from the field names in k0smotron's docs; if
one of them stops parsing, a k0smotron user's manifest would stop applying.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mothership.api.base import TopLevel
from mothership.api.k0smotron import v1beta1, v1beta2

DATA = Path(__file__).parent / "data" / "k0smotron"
EXAMPLES = sorted(DATA.glob("*.yaml"))

MODELS: dict[tuple[str, str], type[TopLevel]] = {
    ("k0smotron.io/v1beta2", "Cluster"): v1beta2.Cluster,
    ("k0smotron.io/v1beta2", "JoinTokenRequest"): v1beta2.JoinTokenRequest,
    ("k0smotron.io/v1beta1", "Cluster"): v1beta1.Cluster,
    ("k0smotron.io/v1beta1", "JoinTokenRequest"): v1beta1.JoinTokenRequest,
}


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def model_for(doc: dict[str, Any]) -> type[TopLevel]:
    return MODELS[doc["apiVersion"], doc["kind"]]


def assert_kept(given: Any, dumped: Any, where: str = "") -> None:
    """Everything the manifest said is still in the dump (defaults may be added)."""
    if isinstance(given, dict):
        assert isinstance(dumped, dict), where
        for key, value in given.items():
            if value is None:
                continue  # null means unset; to_api leaves unset fields out
            assert key in dumped, f"{where}.{key} dropped"
            assert_kept(value, dumped[key], f"{where}.{key}")
    elif isinstance(given, list):
        assert isinstance(dumped, list) and len(dumped) == len(given), where
        for i, (a, b) in enumerate(zip(given, dumped, strict=True)):
            assert_kept(a, b, f"{where}[{i}]")
    else:
        assert given == dumped and type(given) is type(dumped), where


def cluster(spec: Any = None, version: str = "v1beta2", **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": f"k0smotron.io/{version}",
        "kind": "Cluster",
        "metadata": {"name": "t"},
        **top,
    }
    if spec is not None:
        doc["spec"] = spec
    return doc


def test_there_are_examples_of_every_kind_and_version() -> None:
    seen = {(load(p)["apiVersion"], load(p)["kind"]) for p in EXAMPLES}
    assert seen == set(MODELS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_parses_and_round_trips(path: Path) -> None:
    doc = load(path)
    obj = model_for(doc).model_validate(doc)
    dumped = obj.to_api()
    assert_kept(doc, dumped, path.stem)
    assert type(obj).model_validate(dumped) == obj
    assert json.loads(json.dumps(dumped)) == dumped
    assert type(obj).model_validate_json(obj.model_dump_json()) == obj


def test_defaults_are_k0smotrons() -> None:
    spec = v1beta2.Cluster.model_validate(cluster()).spec
    assert spec.replicas == 1
    assert spec.image == "quay.io/k0sproject/k0s"
    assert spec.version is None
    assert (spec.service.type, spec.service.api_port, spec.service.konnectivity_port) == (
        "ClusterIP",
        30443,
        30132,
    )
    assert spec.persistence.type == "emptyDir"
    assert spec.persistence.auto_delete_pvcs is False
    assert spec.storage.type == "etcd"
    # The one deliberate difference: the admission webhook defaults the etcd image (to the
    # operator's setting), so the model and the CRD leave it unset.
    assert spec.storage.etcd.image is None
    assert spec.storage.etcd.persistence.size == "1Gi"
    defrag = spec.storage.etcd.defrag_job
    assert (defrag.enabled, defrag.schedule) == (False, "0 12 * * *")
    assert defrag.rule == "dbQuotaUsage > 0.8 || dbSize - dbSizeInUse > 200*1024*1024"
    assert defrag.image == "ghcr.io/ahrtr/etcd-defrag:v0.16.0"
    assert spec.storage.nats.persistence.size == "1Gi"
    assert spec.monitoring.enabled is False
    assert spec.monitoring.prometheus_image == "quay.io/k0sproject/prometheus:v2.44.0"
    assert spec.monitoring.proxy_image == "nginx:1.19.10"
    assert spec.ingress is None and spec.patches is None and spec.k0s_config is None


def test_nested_defaults_fill_partial_objects() -> None:
    spec = v1beta2.Cluster.model_validate(
        cluster(
            {
                "service": {"type": "NodePort"},
                "ingress": {"apiHost": "a.example", "konnectivityHost": "k.example"},
                "storage": {"etcd": {"persistence": {"storageClass": "fast"}}},
            }
        )
    ).spec
    assert spec.service.api_port == 30443
    assert spec.ingress is not None
    assert (spec.ingress.deploy, spec.ingress.port) == (True, 443)
    assert spec.storage.etcd.persistence.size == "1Gi"
    assert spec.storage.etcd.image is None


def test_spec_null_means_all_defaults() -> None:
    for version, model in (("v1beta2", v1beta2.Cluster), ("v1beta1", v1beta1.Cluster)):
        doc = cluster(version=version)
        doc["spec"] = None
        assert model.model_validate(doc).spec == model.model_validate(cluster(version=version)).spec


def test_v1beta1_defaults() -> None:
    spec = v1beta1.Cluster.model_validate(cluster(version="v1beta1")).spec
    assert spec.replicas == 1
    assert spec.service.type == "ClusterIP"
    assert spec.persistence.type == "emptyDir"
    assert spec.etcd.image is None
    assert spec.kine_data_source_url is None and spec.kubeconfig_ref is None


def test_join_token_request_defaults() -> None:
    doc = {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "JoinTokenRequest",
        "metadata": {"name": "t", "namespace": "ns"},
        "spec": {"clusterName": "c"},
    }
    jtr = v1beta2.JoinTokenRequest.model_validate(doc)
    assert (jtr.spec.expiry, jtr.spec.role) == ("0s", "worker")
    old = v1beta1.JoinTokenRequest.model_validate(
        {
            **doc,
            "apiVersion": "k0smotron.io/v1beta1",
            "spec": {"clusterRef": {"name": "c", "namespace": "n"}},
        }
    )
    assert (old.spec.expiry, old.spec.role) == ("0s", "worker")


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"service": {"type": "ExternalName"}}, "spec.service.type"),
        (
            {"service": {"externalTrafficPolicy": "Everywhere"}},
            "spec.service.externalTrafficPolicy",
        ),
        ({"persistence": {"type": "nfs"}}, "spec.persistence.type"),
        ({"storage": {"type": "mysql"}}, "spec.storage.type"),
        ({"certificateRefs": [{"type": "kubelet"}]}, "spec.certificateRefs.0.type"),
        (
            {
                "patches": [
                    {
                        "target": {"kind": "Service", "component": "x"},
                        "patch": {"type": "yaml", "content": "{}"},
                    }
                ]
            },
            "spec.patches.0.patch.type",
        ),
    ],
)
def test_bad_enum_is_rejected_naming_the_field(spec: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as err:
        v1beta2.Cluster.model_validate(cluster(spec))
    assert where in str(err.value)


def test_bad_enums_are_rejected_in_v1beta1_too() -> None:
    with pytest.raises(ValidationError) as err:
        v1beta1.Cluster.model_validate(cluster({"persistence": {"type": "nfs"}}, version="v1beta1"))
    assert "spec.persistence.type" in str(err.value)


def test_bad_join_token_role_is_rejected() -> None:
    doc = {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "JoinTokenRequest",
        "spec": {"clusterName": "c", "role": "admin"},
    }
    with pytest.raises(ValidationError) as err:
        v1beta2.JoinTokenRequest.model_validate(doc)
    assert "spec.role" in str(err.value)


def test_join_token_request_must_name_a_cluster() -> None:
    doc = {"apiVersion": "k0smotron.io/v1beta2", "kind": "JoinTokenRequest", "spec": {}}
    with pytest.raises(ValidationError, match="clusterName or clusterRef"):
        v1beta2.JoinTokenRequest.model_validate(doc)
    with pytest.raises(ValidationError, match=re.escape("spec.clusterName")):
        v1beta2.JoinTokenRequest.model_validate({**doc, "spec": {"clusterName": "x" * 64}})


def test_required_fields_are_required() -> None:
    with pytest.raises(ValidationError, match=re.escape("spec.ingress.apiHost")):
        v1beta2.Cluster.model_validate(cluster({"ingress": {"konnectivityHost": "k"}}))
    with pytest.raises(ValidationError, match=re.escape("spec.mounts.0.path")):
        v1beta2.Cluster.model_validate(cluster({"mounts": [{"configMap": {"name": "x"}}]}))
    with pytest.raises(ValidationError, match=re.escape("spec.clusterRef.namespace")):
        v1beta1.JoinTokenRequest.model_validate(
            {
                "apiVersion": "k0smotron.io/v1beta1",
                "kind": "JoinTokenRequest",
                "spec": {"clusterRef": {"name": "c"}},
            }
        )


def test_wrong_api_version_or_kind_is_rejected() -> None:
    with pytest.raises(ValidationError, match="apiVersion"):
        v1beta2.Cluster.model_validate(cluster(version="v1beta1"))
    with pytest.raises(ValidationError, match="kind"):
        v1beta2.Cluster.model_validate({**cluster(), "kind": "JoinTokenRequest"})


def test_mount_keeps_its_inline_volume_source() -> None:
    mount = v1beta2.Mount.model_validate(
        {"path": "/etc/x", "secret": {"secretName": "s", "items": [{"key": "a", "path": "b"}]}}
    )
    assert mount.read_only is False
    assert mount.to_api() == {
        "path": "/etc/x",
        "readOnly": False,
        "secret": {"secretName": "s", "items": [{"key": "a", "path": "b"}]},
    }


def test_python_names_populate_too() -> None:
    spec = v1beta2.ClusterSpec.model_validate(
        {"control_plane_flags": ["--x"], "k0s_config": {"spec": {}}}
    )
    assert spec.to_api()["controlPlaneFlags"] == ["--x"]
    assert spec.to_api()["k0sConfig"] == {"spec": {}}
    assert "patches" not in spec.to_api()


def test_kine_secret_key_is_k0smotrons() -> None:
    assert v1beta2.KINE_DATASOURCE_SECRET_KEY == "K0SMOTRON_KINE_DATASOURCE_URL"


@pytest.mark.parametrize(
    ("image", "version", "expected"),
    [
        (None, "v1.30.1+k0s.0", "quay.io/k0sproject/k0s:v1.30.1-k0s.0"),
        (None, "v1.30.1-k0s.2", "quay.io/k0sproject/k0s:v1.30.1-k0s.2"),
        (None, "v1.30.1", "quay.io/k0sproject/k0s:v1.30.1-k0s.0"),
        ("registry.local/k0s", "v1.31.0+k0s.1", "registry.local/k0s:v1.31.0-k0s.1"),
        (None, None, "quay.io/k0sproject/k0s:v1.29.0-k0s.0"),
    ],
)
def test_image_ref_derives_tag_from_version(
    image: str | None, version: str | None, expected: str
) -> None:
    spec: dict[str, Any] = {}
    if image:
        spec["image"] = image
    if version:
        spec["version"] = version
    parsed = v1beta2.Cluster.model_validate(cluster(spec)).spec
    assert parsed.image_ref("v1.29.0+k0s.0") == expected


def test_join_token_request_target_cluster() -> None:
    def target(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> Any:
        meta: dict[str, Any] = {"name": "t", "namespace": "own"}
        if annotations:
            meta["annotations"] = annotations
        doc = {"apiVersion": "k0smotron.io/v1beta2", "kind": "JoinTokenRequest", "metadata": meta}
        return v1beta2.JoinTokenRequest.model_validate({**doc, "spec": spec}).target_cluster()

    ns_note = {v1beta2.CLUSTER_REF_NAMESPACE_ANNOTATION: "other"}
    assert target({"clusterName": "c"}) == ("own", "c")
    assert target({"clusterName": "c"}, ns_note) == ("other", "c")
    assert target({"clusterRef": {"name": "c", "namespace": "theirs"}}) == ("theirs", "c")
    assert target({"clusterRef": {"name": "c"}}) == ("own", "c")
    assert target({"clusterName": "n", "clusterRef": {"name": "c", "namespace": "x"}}) == (
        "own",
        "n",
    )


# --- what the CRD generator will see -----------------------------------------------------------


def _defs(model: type[TopLevel]) -> dict[str, Any]:
    return model.model_json_schema()["$defs"]


def test_schema_marks_free_form_fields() -> None:
    props = _defs(v1beta2.Cluster)["ClusterSpec"]["properties"]
    preserve = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert preserve in props["k0sConfig"]["anyOf"]
    assert preserve in props["resources"]["anyOf"]
    arrays = [s for s in props["manifests"]["anyOf"] if s.get("type") == "array"]
    assert arrays[0]["items"] == preserve
    arrays = [s for s in props["topologySpreadConstraints"]["anyOf"] if s.get("type") == "array"]
    assert arrays[0]["items"] == preserve
    etcd = _defs(v1beta2.Cluster)["EtcdSpec"]["properties"]
    assert preserve in etcd["resources"]["anyOf"]
    pvc = _defs(v1beta2.Cluster)["PersistentVolumeClaimTemplate"]["properties"]
    assert preserve in pvc["spec"]["anyOf"]


def test_schema_of_mount_preserves_unknown_fields_structurally() -> None:
    mount = _defs(v1beta2.Cluster)["Mount"]
    assert mount["x-kubernetes-preserve-unknown-fields"] is True
    assert "additionalProperties" not in mount
    assert mount["required"] == ["path"]


def test_schema_carries_int_or_string_quantities() -> None:
    size = _defs(v1beta2.Cluster)["StoragePersistenceSpec"]["properties"]["size"]
    assert size["x-kubernetes-int-or-string"] is True
    assert size["default"] == "1Gi"


def test_schema_carries_defaults_and_enums() -> None:
    defs = _defs(v1beta2.Cluster)
    spec = defs["ClusterSpec"]["properties"]
    assert spec["replicas"]["default"] == 1
    assert spec["image"]["default"] == "quay.io/k0sproject/k0s"
    assert spec["service"]["default"] == {
        "type": "ClusterIP",
        "apiPort": 30443,
        "konnectivityPort": 30132,
    }
    assert defs["StorageSpec"]["properties"]["etcd"]["default"] == {"persistence": {}}
    assert defs["EtcdSpec"]["properties"]["image"].get("default") is None
    persistence = defs["PersistenceSpec"]["properties"]["type"]
    assert persistence["enum"] == ["emptyDir", "hostPath", "pvc"]
    assert persistence["default"] == "emptyDir"
    assert defs["StorageSpec"]["properties"]["type"]["enum"] == ["etcd", "kine", "nats"]
    assert defs["ServiceSpec"]["properties"]["type"]["enum"] == [
        "ClusterIP",
        "NodePort",
        "LoadBalancer",
    ]
    old = _defs(v1beta1.Cluster)["ClusterSpec"]["properties"]
    assert old["persistence"]["default"] == {"type": "emptyDir"}
    assert "controllerPlaneFlags" in old and "kineDataSourceURL" in old


def _walk(schema: Any) -> Any:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _walk(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _walk(value)


@pytest.mark.parametrize("model", sorted(set(MODELS.values()), key=str), ids=str)
def test_every_field_has_a_description(model: type[TopLevel]) -> None:
    schema = model.model_json_schema()
    for node in _walk(schema):
        for name, prop in (node.get("properties") or {}).items():
            assert prop.get("description"), f"{model.__name__}: {name} has no description"


@pytest.mark.parametrize("model", sorted(set(MODELS.values()), key=str), ids=str)
def test_schema_is_not_recursive(model: type[TopLevel]) -> None:
    defs = model.model_json_schema().get("$defs", {})
    for name, schema in defs.items():
        refs = {n["$ref"] for n in _walk(schema) if "$ref" in n}
        assert f"#/$defs/{name}" not in refs, name


# --- CRD facts ---------------------------------------------------------------------------------


def test_one_crd_two_versions() -> None:
    assert v1beta1.Cluster.CRD is v1beta2.Cluster.CRD
    assert v1beta1.JoinTokenRequest.CRD is v1beta2.JoinTokenRequest.CRD
    crd = v1beta2.Cluster.CRD
    assert (crd.group, crd.kind, crd.plural, crd.singular) == (
        "k0smotron.io",
        "Cluster",
        "clusters",
        "cluster",
    )
    assert crd.short_names == ("kmc",)
    assert crd.scale == (".spec.replicas", ".status.replicas", ".status.selector")
    assert [c.name for c in v1beta2.Cluster.VERSION.extra_printer_columns] == [
        "Replicas",
        "Ready",
        "Version",
        "Endpoint",
        "Available",
        "Age",
    ]
    jtr = v1beta2.JoinTokenRequest.CRD
    assert (jtr.plural, jtr.short_names) == ("jointokenrequests", ("jtr",))


def test_version_info() -> None:
    for kind in ("Cluster", "JoinTokenRequest"):
        new, old = getattr(v1beta2, kind).VERSION, getattr(v1beta1, kind).VERSION
        assert (new.name, new.storage, new.deprecated) == ("v1beta2", True, False)
        assert (old.name, old.storage, old.deprecated) == ("v1beta1", False, True)
        assert f"k0smotron.io/v1beta1 {kind} is deprecated" in old.deprecation_warning
    assert v1beta1.Cluster.VERSION.deprecation_warning == (
        "k0smotron.io/v1beta1 Cluster is deprecated; use k0smotron.io/v1beta2"
    )
    for model, path in (
        (v1beta2.JoinTokenRequest, ".spec.clusterName"),
        (v1beta1.JoinTokenRequest, ".spec.clusterRef.name"),
    ):
        columns = model.VERSION.extra_printer_columns
        assert [c.name for c in columns] == ["Cluster", "Role", "Expiry", "TokenID", "Age"]
        assert columns[0].json_path == path
