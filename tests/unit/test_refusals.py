"""Refused objects told in the Cluster's terms: the spec field behind the API server's words.

The messages are the API server's own (v1.35), as the operator receives them.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from lightkube.core.exceptions import ApiError

from mothership.controllers import refusals
from mothership.render import names


def _sts(component: str = "control-plane") -> dict[str, Any]:
    name = names.statefulset("c") if component == "control-plane" else names.etcd("c")
    return {
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": names.labels("c", component)},
    }


INVALID_RESTART = (
    'StatefulSet.apps "kmc-c" is invalid: spec.template.spec.restartPolicy: Unsupported value: '
    '"Never": supported values: "Always"'
)


def test_a_patch_aimed_at_the_refused_object_is_named_first() -> None:
    spec = {
        "patches": [
            {"target": {"kind": "Service", "component": "control-plane"}},
            {"target": {"kind": "StatefulSet", "component": "etcd"}},
            {"target": {"kind": "StatefulSet", "component": "control-plane"}},
        ]
    }
    found = refusals.refusal(_sts(), 422, "Invalid", INVALID_RESTART, spec)
    assert found.fields == ("spec.patches[2]",)
    assert str(found) == (
        f"the API server refused StatefulSet kmc-c (422 Invalid): {INVALID_RESTART}; "
        "it comes from spec.patches[2]"
    )


@pytest.mark.parametrize(
    ("component", "path", "field"),
    [
        ("control-plane", "spec.template.spec.containers[0].resources.limits", "spec.resources"),
        ("control-plane", "spec.template.spec.containers[0].image", "spec.image"),
        ("control-plane", "spec.template.spec.topologySpreadConstraints[0].maxSkew",
         "spec.topologySpreadConstraints"),
        ("control-plane", "spec.template.spec.containers[0].volumeMounts[3].mountPath",
         "spec.mounts"),
        ("control-plane", "spec.volumeClaimTemplates[0].spec.accessModes",
         "spec.persistence.persistentVolumeClaim"),
        ("etcd", "spec.template.spec.containers[0].resources.requests",
         "spec.storage.etcd.resources"),
        ("etcd", "spec.template.spec.containers[0].args[4]", "spec.storage.etcd.args"),
    ],
)  # fmt: skip
def test_the_path_in_the_message_names_the_field(component: str, path: str, field: str) -> None:
    message = f'StatefulSet.apps "x" is invalid: {path}: Invalid value: "y": something'
    assert refusals.spec_fields(_sts(component), message, {}) == [field]


def test_a_quantity_the_decoder_refuses_points_at_the_resources() -> None:
    message = (
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )
    assert refusals.spec_fields(_sts(), message, {}) == ["spec.resources"]
    assert refusals.spec_fields(_sts("etcd"), message, {}) == ["spec.storage.etcd.resources"]


def test_kinds_made_from_one_spec_section_name_it() -> None:
    service = {"kind": "Service", "metadata": {"name": "kmc-c"}}
    assert refusals.spec_fields(service, "anything", {}) == ["spec.service"]
    kubeconfig = {
        "kind": "Secret",
        "metadata": {"name": "c-kubeconfig", "labels": names.labels("c", "kubeconfig")},
    }
    invalid_label = 'Secret "c-kubeconfig" is invalid: metadata.labels: Invalid value: "a b"'
    assert refusals.spec_fields(kubeconfig, invalid_label, {}) == ["spec.kubeconfigSecretMetadata"]


def test_a_quota_names_no_field_and_keeps_the_api_servers_words() -> None:
    config_map = {
        "kind": "ConfigMap",
        "metadata": {"name": "kmc-c-config", "labels": names.labels("c", "control-plane")},
    }
    message = (
        'configmaps "kmc-c-config" is forbidden: exceeded quota: few, requested: configmaps=1, '
        "used: configmaps=1, limited: configmaps=1"
    )
    found = refusals.refusal(config_map, 403, "Forbidden", message, {})
    assert found.fields == ()
    assert str(found) == f"the API server refused ConfigMap kmc-c-config (403 Forbidden): {message}"


def test_a_long_message_is_shortened() -> None:
    found = refusals.refusal(_sts(), 422, "Invalid", "x" * 5000, {})
    assert len(found.message) == refusals.MESSAGE_LIMIT and found.message.endswith("...")


def _api_error(code: int, reason: str, message: str) -> ApiError:
    body = {"kind": "Status", "code": code, "reason": reason, "message": message}
    request = httpx.Request("PATCH", "https://x")
    return ApiError(response=httpx.Response(code, json=body, request=request))


def test_only_answers_that_mean_not_this_object_become_refusals() -> None:
    with pytest.raises(refusals.Refused) as refused, refusals.refused_as(_sts(), {}):
        raise _api_error(422, "Invalid", INVALID_RESTART)
    assert refused.value.refusal.code == 422
    for code, reason in ((409, "Conflict"), (500, "InternalError"), (429, "TooManyRequests")):
        with pytest.raises(ApiError), refusals.refused_as(_sts(), {}):
            raise _api_error(code, reason, "try again")
