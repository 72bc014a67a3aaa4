"""spec.patches: which objects a patch reaches, the three patch types, and how failures read."""

from __future__ import annotations

from typing import Any

import pytest

from mothership.api.k0smotron.v1beta2 import Cluster, ComponentPatch
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts
from mothership.render.patches import PatchError, merge_patch, patch_object, strategic_merge


def make(patches: list[dict[str, Any]], **spec: Any) -> Cluster:
    return Cluster.model_validate(
        {"metadata": {"name": "demo", "namespace": "ns"}, "spec": {**spec, "patches": patches}}
    )


def patch(kind: str, component: str, type_: str, content: str) -> dict[str, Any]:
    return {
        "target": {"kind": kind, "component": component},
        "patch": {"type": type_, "content": content},
    }


def by_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_a_patch_reaches_only_its_kind_and_component() -> None:
    add_label = '{"metadata": {"labels": {"patched": "yes"}}}'
    cluster = make([patch("StatefulSet", "etcd", "merge", add_label)])
    plain = by_name(render_cluster(make([]), Facts()))
    patched = by_name(render_cluster(cluster, Facts()))
    changed = [key for key in plain if plain[key] != patched[key]]
    assert changed == [("StatefulSet", "kmc-demo-etcd")]
    assert patched[("StatefulSet", "kmc-demo-etcd")]["metadata"]["labels"]["patched"] == "yes"


def test_a_patch_reaches_every_object_of_its_component() -> None:
    content = "metadata:\n  annotations:\n    seen: 'true'\n"
    objects = render_cluster(
        make([patch("ConfigMap", "control-plane", "merge", content)]), Facts("1.2.3.4")
    )
    hit = [
        o["metadata"]["name"] for o in objects if o["metadata"].get("annotations", {}).get("seen")
    ]
    assert hit == ["kmc-demo-endpoint"]


def test_patches_apply_in_order_each_on_the_previous_result() -> None:
    first = patch("Service", "control-plane", "merge", '{"metadata": {"annotations": {"a": "1"}}}')
    second = patch(
        "Service",
        "control-plane",
        "json",
        '[{"op": "replace", "path": "/metadata/annotations/a", "value": "2"}]',
    )
    service = by_name(render_cluster(make([first, second]), Facts()))[("Service", "kmc-demo")]
    assert service["metadata"]["annotations"] == {"a": "2"}


def test_json_patch() -> None:
    content = '[{"op": "replace", "path": "/spec/replicas", "value": 5}]'
    objects = by_name(
        render_cluster(make([patch("StatefulSet", "control-plane", "json", content)]), Facts())
    )
    assert objects[("StatefulSet", "kmc-demo")]["spec"]["replicas"] == 5


def test_merge_patch_null_removes() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": None}, "l": [3]}) == {
        "a": {"c": 2},
        "l": [3],
    }


def test_strategic_merge_merges_named_lists_and_replaces_others() -> None:
    target: dict[str, Any] = {
        "containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"},
        ],
        "volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}],
        "tolerations": [{"key": "old"}],
    }
    result = strategic_merge(
        target,
        {
            "containers": [
                {"name": "a", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "9"}]},
                {"name": "c", "image": "c:1"},
            ],
            "volumes": [{"name": "v1", "$patch": "delete"}],
            "tolerations": [{"key": "new"}],
        },
    )
    assert result["containers"] == [
        {
            "name": "a",
            "image": "a:1",
            "env": [{"name": "X", "value": "9"}, {"name": "Y", "value": "2"}],
        },
        {"name": "b", "image": "b:1"},
        {"name": "c", "image": "c:1"},
    ]
    assert result["volumes"] == [{"name": "v2", "emptyDir": {}}]
    assert result["tolerations"] == [{"key": "new"}]
    assert target["volumes"][0]["name"] == "v1"  # the input is not modified


def test_strategic_merge_list_replace_directive() -> None:
    target = {"volumes": [{"name": "a"}, {"name": "b"}]}
    result = strategic_merge(target, {"volumes": [{"$patch": "replace"}, {"name": "c"}]})
    assert result == {"volumes": [{"name": "c"}]}


def test_strategic_merge_in_a_render() -> None:
    content = """
spec:
  template:
    spec:
      containers:
        - name: controller
          resources: {limits: {memory: 2Gi}}
"""
    objects = by_name(
        render_cluster(make([patch("StatefulSet", "control-plane", "strategic", content)]), Facts())
    )
    containers = objects[("StatefulSet", "kmc-demo")]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    assert containers[0]["resources"] == {"limits": {"memory": "2Gi"}}
    assert containers[0]["image"].startswith("quay.io/k0sproject/k0s:")


@pytest.mark.parametrize(
    ("type_", "content", "reason"),
    [
        ("json", '[{"op": "remove", "path": "/spec/nothing"}]', "nothing"),
        ("json", '{"op": "add"}', "list of operations"),
        ("merge", "[1, 2]", "must be an object"),
        ("strategic", '{"spec": {"$retainKeys": ["a"]}}', "$retainKeys"),
        ("merge", "{unclosed", "not valid YAML"),
        ("merge", '{"metadata": {"name": "other"}}', "metadata.name"),
    ],
)
def test_a_failing_patch_names_its_index_target_and_reason(
    type_: str, content: str, reason: str
) -> None:
    harmless = patch("Service", "control-plane", "merge", "{}")
    cluster = make([harmless, patch("StatefulSet", "control-plane", type_, content)])
    with pytest.raises(PatchError) as caught:
        render_cluster(cluster, Facts())
    error = caught.value
    assert error.index == 1
    assert (error.kind, error.component) == ("StatefulSet", "control-plane")
    message = str(error)
    assert "spec.patches[1]" in message and "StatefulSet" in message and reason in message


def test_patch_object_does_not_modify_its_input() -> None:
    obj = {
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"app.kubernetes.io/component": "c"}},
    }
    patches = [
        ComponentPatch.model_validate(patch("ConfigMap", "c", "merge", '{"data": {"k": "v"}}'))
    ]
    assert patch_object(obj, patches)["data"] == {"k": "v"}
    assert "data" not in obj
