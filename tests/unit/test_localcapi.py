"""Cluster API's own config turned into objects for a manager at a URL (testenv/localcapi)."""

from __future__ import annotations

import base64
import re

import pytest

from mothership.testenv import localcapi

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
URL = "https://127.0.0.1:9443"
MANIFESTS = """
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- name: default.cluster.cluster.x-k8s.io
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate-cluster}
  rules: [{apiGroups: [cluster.x-k8s.io], resources: [clusters]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- name: validation.cluster.cluster.x-k8s.io
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /validate-cluster}
- name: validation.machine.cluster.x-k8s.io
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /validate-machine}
"""


def test_webhooks_point_at_the_url_with_the_ca_and_names_of_ours() -> None:
    mutating, validating = localcapi.webhook_configurations(MANIFESTS, URL + "/", CA)
    assert mutating["metadata"] == {"name": "mothership-capi-mutating"}
    assert validating["metadata"] == {"name": "mothership-capi-validating"}
    bundle = base64.b64encode(CA).decode()
    assert [h["clientConfig"] for h in validating["webhooks"]] == [
        {"url": URL + "/validate-cluster", "caBundle": bundle},
        {"url": URL + "/validate-machine", "caBundle": bundle},
    ]
    # Everything else of upstream's hook is kept as it is.
    assert mutating["webhooks"][0]["rules"] == [
        {"apiGroups": ["cluster.x-k8s.io"], "resources": ["clusters"]}
    ]


def test_a_webhook_without_a_service_path_or_an_unknown_kind_is_refused() -> None:
    no_path = MANIFESTS.replace("path: /mutate-cluster", "port: 443")
    with pytest.raises(localcapi.CapiError, match=re.escape("default.cluster.cluster.x-k8s.io")):
        localcapi.webhook_configurations(no_path, URL, CA)
    with pytest.raises(localcapi.CapiError, match="ConfigMap"):
        localcapi.webhook_configurations("kind: ConfigMap\n", URL, CA)


def test_crds_convert_through_the_manager_and_are_otherwise_unchanged() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusters.cluster.x-k8s.io"},
        "spec": {
            "group": "cluster.x-k8s.io",
            "versions": [{"name": "v1beta1"}, {"name": "v1beta2"}],
        },
    }
    out = localcapi.with_conversion(crd, URL, CA)
    assert out["spec"]["conversion"] == {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"url": URL + "/convert", "caBundle": base64.b64encode(CA).decode()},
        },
    }
    assert "conversion" not in crd["spec"], "the input is not changed"
    assert {k: v for k, v in out["spec"].items() if k != "conversion"} == crd["spec"]
