"""CRD generation: pydantic schemas become structural Kubernetes schemas, and stay in sync.

The conversion rules are pinned on small models here, so a failure names the rule; the
drift test ties the checked-in YAML to the real models.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml
from pydantic import ConfigDict, Field

from mothership.api import crdgen, generate
from mothership.api.base import CRDInfo, KubeModel, PrinterColumn, TopLevel, VersionInfo
from mothership.api.crdgen import SchemaError, lint_structural, structural_schema
from mothership.api.schema_markers import FreeForm, Quantity, preserve_unknown_object

INT_OR_STRING = {
    "x-kubernetes-int-or-string": True,
    "anyOf": [{"type": "integer"}, {"type": "string"}],
}


class Port(KubeModel):
    """A port of the widget."""

    number: int = Field(default=443, ge=1, le=65535)
    protocol: Literal["TCP", "UDP"] = "TCP"


class Inner(KubeModel):
    """Inner docs."""

    port: Port = Field(default_factory=Port, description="Field docs win.")
    note: str | None = None


class Extras(KubeModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=preserve_unknown_object)

    path: str


class Everything(KubeModel):
    optional: str | None = None
    required_nullable: int | None
    nullable_default: int | None = 5
    nullable_enum: Literal["a", "b"] | None = "a"
    single: Literal["only"] = "only"
    mode: Literal["fast", "slow"] = "slow"
    inner: Inner = Field(default_factory=Inner)
    maybe_inner: Inner | None = None
    inners: list[Inner] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    anything: dict[str, Any] | None = None
    raw: Any = None
    free: FreeForm | None = None
    size: Quantity = "1Gi"
    port_or_name: int | str | None = None
    extras: Extras | None = None
    positive: int = Field(default=1, gt=0)
    tags: set[str] = Field(default_factory=set)
    camel_case: str = Field(default="x", alias="camelCase", pattern="^[a-z]+$", min_length=1)


def test_optional_fields_are_neither_required_nor_nullable() -> None:
    s = structural_schema(Everything)
    assert s["properties"]["optional"] == {"type": "string"}
    assert "optional" not in s["required"]


def test_null_is_kept_only_where_it_differs_from_absent() -> None:
    props = structural_schema(Everything)["properties"]
    assert props["required_nullable"] == {"type": "integer", "nullable": True}
    assert props["nullable_default"] == {"type": "integer", "default": 5, "nullable": True}
    assert structural_schema(Everything)["required"] == ["required_nullable"]


def test_nullable_enum_is_checked_under_all_of() -> None:
    # The API server refuses null against a node's own enum even when nullable.
    node = structural_schema(Everything)["properties"]["nullable_enum"]
    assert node == {
        "type": "string",
        "default": "a",
        "nullable": True,
        "allOf": [{"enum": ["a", "b"]}],
    }


def test_literals_become_typed_enums() -> None:
    props = structural_schema(Everything)["properties"]
    assert props["single"] == {"type": "string", "enum": ["only"], "default": "only"}
    assert props["mode"] == {"type": "string", "enum": ["fast", "slow"], "default": "slow"}


def test_nested_models_are_inlined_with_field_descriptions() -> None:
    s = structural_schema(Everything)
    inner = s["properties"]["inner"]
    assert inner["description"] == "Inner docs."
    port = inner["properties"]["port"]
    assert port["description"] == "Field docs win."
    assert port["properties"]["number"] == {
        "type": "integer",
        "default": 443,
        "minimum": 1,
        "maximum": 65535,
    }
    assert s["properties"]["maybe_inner"]["properties"] == inner["properties"]
    assert s["properties"]["inners"]["items"]["properties"] == inner["properties"]


def test_nested_defaults_are_reduced_to_what_the_server_cannot_fill_in() -> None:
    props = structural_schema(Everything)["properties"]
    # {} suffices: the API server applies the defaults inside a defaulted object.
    assert props["inner"]["default"] == {}
    assert props["inner"]["properties"]["port"]["default"] == {}

    class Custom(KubeModel):
        port: Port = Port(protocol="UDP")

    assert structural_schema(Custom)["properties"]["port"]["default"] == {"protocol": "UDP"}


def test_empty_and_null_defaults_are_dropped() -> None:
    props = structural_schema(Everything)["properties"]
    for name in ("optional", "inners", "labels", "tags", "maybe_inner"):
        assert "default" not in props[name], name


def test_maps_and_free_form_objects() -> None:
    props = structural_schema(Everything)["properties"]
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    preserve = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["anything"] == preserve
    assert props["free"] == preserve
    assert props["raw"] == {"x-kubernetes-preserve-unknown-fields": True}
    extras = props["extras"]
    assert extras["x-kubernetes-preserve-unknown-fields"] is True
    assert extras["properties"] == {"path": {"type": "string"}}
    assert "additionalProperties" not in extras


def test_int_or_string_has_no_type_and_only_the_allowed_any_of() -> None:
    props = structural_schema(Everything)["properties"]
    assert props["size"] == {**INT_OR_STRING, "default": "1Gi"}
    assert props["port_or_name"] == INT_OR_STRING  # a plain int | str is the same thing


def test_openapi_3_0_spellings() -> None:
    props = structural_schema(Everything)["properties"]
    assert props["positive"] == {
        "type": "integer",
        "default": 1,
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    # uniqueItems is forbidden; a set-typed list says the same.
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "x-kubernetes-list-type": "set",
    }
    assert props["camelCase"] == {
        "type": "string",
        "default": "x",
        "minLength": 1,
        "pattern": "^[a-z]+$",
    }


def test_null_items_and_kubernetes_extensions_pass_through() -> None:
    rule = {"rule": "has(self.a) || has(self.b)", "message": "set a or b"}

    class OneOf(KubeModel):
        model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [rule]})

        a: str | None = None
        b: str | None = None
        values: list[int | None] = Field(default_factory=list)
        quantity: Quantity | None = None

    s = structural_schema(OneOf)
    assert s["x-kubernetes-validations"] == [rule]
    assert s["properties"]["values"] == {
        "type": "array",
        "items": {"type": "integer", "nullable": True},  # a null item is a value
    }
    assert s["properties"]["quantity"] == INT_OR_STRING
    assert lint_structural(s) == []


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_no_keyword_kubernetes_rejects_is_left() -> None:
    s = structural_schema(Everything)
    keys = {key for key, _ in _walk(s)}
    assert not keys & {"$ref", "$defs", "title", "const", "examples", "uniqueItems"}
    assert all(v is not True for k, v in _walk(s) if k == "additionalProperties")


def test_lint_accepts_the_output_and_flags_violations() -> None:
    assert lint_structural(structural_schema(Everything)) == []
    bad = {
        "type": "object",
        "properties": {
            "a": {"description": "no type"},
            "b": {"$ref": "#/$defs/B"},
            "c": {"type": "integer", "anyOf": [{"type": "integer"}]},
            "d": {"type": "object", "additionalProperties": True},
            "e": {"x-kubernetes-int-or-string": True, "type": "string"},
            "f": {"type": "string", "title": "F", "const": "x"},
            "g": {"type": "integer", "exclusiveMinimum": 3},
            "h": {"type": "string", "nullable": True, "enum": ["x"]},
        },
    }
    problems = "\n".join(lint_structural(bad))
    for expected in (
        "<root>.a: missing type",
        "<root>.b: keyword '$ref'",
        "<root>.c: anyOf",
        "<root>.d: additionalProperties must be a schema",
        "<root>.e: int-or-string must not have a type",
        "<root>.f: keyword 'title'",
        "<root>.f: keyword 'const'",
        "<root>.g: exclusiveMinimum must be a boolean",
        "<root>.h: the API server refuses null against an enum",
    ):
        assert expected in problems


def test_unrepresentable_models_are_refused_with_the_field_path() -> None:
    class A(KubeModel):
        x: int

    class B(KubeModel):
        y: str

    class Union(KubeModel):
        choice: A | B

    with pytest.raises(SchemaError, match=r"Union\.choice: union"):
        structural_schema(Union)

    class Node(KubeModel):
        children: list[Node] | None = None

    with pytest.raises(SchemaError, match="recursive"):
        structural_schema(Node)

    class Pair(KubeModel):
        pair: tuple[int, int]

    with pytest.raises(SchemaError, match="tuple"):
        structural_schema(Pair)


# --- whole CRDs ---------------------------------------------------------------------------


class GadgetSpec(KubeModel):
    replicas: int = 1
    mode: Literal["fast", "slow"] = "slow"


class GadgetStatus(KubeModel):
    replicas: int | None = None
    selector: str | None = None


GADGET = CRDInfo(
    group="example.test",
    kind="Gadget",
    plural="gadgets",
    singular="gadget",
    short_names=("gd",),
    categories=("all",),
    scale=(".spec.replicas", ".status.replicas", ".status.selector"),
    printer_columns=(PrinterColumn("Replicas", ".spec.replicas", "integer", "Desired."),),
)


class GadgetV1(TopLevel):
    """A gadget."""

    CRD: ClassVar[CRDInfo] = GADGET
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1", storage=True)

    api_version: Literal["example.test/v1"] = Field("example.test/v1", alias="apiVersion")
    kind: Literal["Gadget"] = "Gadget"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: GadgetSpec = Field(default_factory=GadgetSpec)
    status: GadgetStatus | None = None


class GadgetV1alpha1(GadgetV1):
    VERSION: ClassVar[VersionInfo] = VersionInfo(
        name="v1alpha1",
        storage=False,
        deprecated=True,
        deprecation_warning="use v1",
        extra_printer_columns=(PrinterColumn("Mode", ".spec.mode"),),
    )


class GadgetV1beta1(GadgetV1):
    VERSION: ClassVar[VersionInfo] = VersionInfo(name="v1beta1", storage=False)


def test_top_level_fields_belong_to_the_api_server() -> None:
    s = structural_schema(GadgetV1)
    assert list(s["properties"])[:3] == ["apiVersion", "kind", "metadata"]
    assert s["properties"]["apiVersion"] == {"type": "string"}
    assert s["properties"]["kind"] == {"type": "string"}
    assert s["properties"]["metadata"] == {"type": "object"}
    assert "required" not in s


def test_crd_assembles_names_versions_and_subresources() -> None:
    doc = crdgen.crd([GadgetV1alpha1, GadgetV1, GadgetV1beta1])
    assert doc["metadata"]["name"] == "gadgets.example.test"
    spec = doc["spec"]
    assert spec["names"] == {
        "kind": "Gadget",
        "listKind": "GadgetList",
        "plural": "gadgets",
        "singular": "gadget",
        "shortNames": ["gd"],
        "categories": ["all"],
    }
    assert spec["scope"] == "Namespaced"
    assert spec["conversion"] == {"strategy": "None"}
    assert [(v["name"], v["storage"]) for v in spec["versions"]] == [
        ("v1", True),
        ("v1beta1", False),
        ("v1alpha1", False),
    ]
    v1, _, alpha = spec["versions"]
    assert "deprecated" not in v1
    assert alpha["deprecated"] is True
    assert alpha["deprecationWarning"] == "use v1"
    assert v1["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    assert [c["name"] for c in v1["additionalPrinterColumns"]] == ["Replicas", "Age"]
    assert [c["name"] for c in alpha["additionalPrinterColumns"]] == ["Replicas", "Mode", "Age"]
    assert v1["additionalPrinterColumns"][-1] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
    }
    assert v1["schema"]["openAPIV3Schema"] == structural_schema(GadgetV1)


def test_crd_with_conversion_webhook() -> None:
    client_config = {"service": {"namespace": "ms", "name": "webhook"}, "caBundle": "Q0E="}
    doc = crdgen.crd([GadgetV1, GadgetV1beta1], conversion_webhook=client_config)
    assert doc["spec"]["conversion"] == {
        "strategy": "Webhook",
        "webhook": {"clientConfig": client_config, "conversionReviewVersions": ["v1"]},
    }
    # One version has nothing to convert: the API server refuses a webhook for it.
    single = crdgen.crd([GadgetV1], conversion_webhook=client_config)
    assert single["spec"]["conversion"] == {"strategy": "None"}


def test_crd_refuses_inconsistent_versions() -> None:
    class Second(GadgetV1):
        VERSION: ClassVar[VersionInfo] = VersionInfo(name="v2", storage=True)

    with pytest.raises(SchemaError, match="one storage version"):
        crdgen.crd([GadgetV1, Second])

    class NoSelector(GadgetV1):
        CRD: ClassVar[CRDInfo] = CRDInfo(
            group="example.test",
            kind="Gadget",
            plural="gadgets",
            singular="gadget",
            scale=(".spec.replicas", ".status.replicas", ".status.labelSelector"),
        )

    with pytest.raises(SchemaError, match=r"\.status\.labelSelector"):
        crdgen.crd([NoSelector])


def test_render_yaml_is_deterministic_and_marked_generated() -> None:
    doc = crdgen.crd([GadgetV1, GadgetV1alpha1])
    text = crdgen.render_yaml(doc)
    assert text == crdgen.render_yaml(crdgen.crd([GadgetV1alpha1, GadgetV1]))
    assert text.startswith("# Generated by mothership from mothership/api — do not edit;")
    assert yaml.safe_load(text) == doc
    assert "&" not in text and "*id" not in text  # no YAML anchors


# --- the real models ----------------------------------------------------------------------


def test_all_crds_cover_every_kind_and_version() -> None:
    docs = {doc["metadata"]["name"]: doc for doc in crdgen.all_crds()}
    assert {"clusters.k0smotron.io", "jointokenrequests.k0smotron.io"} <= set(docs)
    for doc in docs.values():
        versions = doc["spec"]["versions"]
        assert sum(v["storage"] for v in versions) == 1
        for v in versions:
            assert lint_structural(v["schema"]["openAPIV3Schema"]) == []
    names = [v["name"] for v in docs["clusters.k0smotron.io"]["spec"]["versions"]]
    assert names == ["v1beta2", "v1beta1"]


def test_checked_in_crds_match_the_models() -> None:
    out = generate.DEFAULT_OUT
    for doc in crdgen.all_crds():
        path = out / crdgen.file_name(doc)
        assert path.exists(), f"{path} is missing: run `python -m mothership.api.generate`"
        assert path.read_text(encoding="utf-8") == crdgen.render_yaml(doc), (
            f"{path} is out of date with the models: run `python -m mothership.api.generate`"
        )
    assert generate.plan(out).clean, "deploy/crds has extra files: run the generator"


def test_generate_check_reports_and_write_fixes(tmp_path: Path) -> None:
    out = tmp_path / "crds"
    assert generate.main(["--check", "--out", str(out)]) == 1
    assert not out.exists()  # --check writes nothing
    assert generate.main(["--out", str(out)]) == 0
    assert generate.main(["--check", "--out", str(out)]) == 0

    first = sorted(out.iterdir())[0]
    first.write_text(first.read_text() + "# edited\n")
    (out / "old.yaml").write_text(crdgen.HEADER + "kind: Stale\n")
    assert generate.main(["--check", "--out", str(out)]) == 1
    assert generate.main(["--out", str(out)]) == 0
    assert not (out / "old.yaml").exists()
    assert generate.main(["--check", "--out", str(out)]) == 0


def test_checked_in_api_reference_matches_the_models() -> None:
    from mothership.api.docgen import reference
    from mothership.api.generate import REFERENCE

    assert REFERENCE.read_text(encoding="utf-8") == reference(), (
        "docs/reference/api.md drifted from the models; run: python -m mothership.api.generate"
    )
