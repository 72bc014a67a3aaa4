"""spec.kubernetes.authentication: the file the tenant API server loads, and admission."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.pki import certs
from mothership.render import authentication
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts
from mothership.webhooks.validate import validate

ISSUER = "https://idp.example.com:8443"


def jwt(**issuer: Any) -> dict[str, Any]:
    return {
        "issuer": {"url": ISSUER, "audiences": ["kubernetes"], **issuer},
        "claimMappings": {
            "username": {"claim": "email", "prefix": "oidc:"},
            "groups": {"claim": "groups", "prefix": "oidc:"},
        },
    }


def spec(*items: dict[str, Any], distribution: str = "kubernetes") -> dict[str, Any]:
    return {
        "distribution": distribution,
        "version": "v1.35.4",
        "storage": {"type": "kine"},
        "kubernetes": {"authentication": {"jwt": list(items)}},
    }


def errors(body: dict[str, Any]) -> dict[str, str]:
    obj = {"apiVersion": "k0smotron.io/v1beta2", "kind": "Cluster",
           "metadata": {"name": "c", "namespace": "ns"}, "spec": body}  # fmt: skip
    return {e.path: e.message for e in validate(obj).errors}


def rendered(body: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = Cluster.model_validate({"metadata": {"name": "c", "namespace": "ns"}, "spec": body})
    return render_cluster(cluster, Facts(external_address="192.0.2.10"))


def apiserver_args(objs: list[dict[str, Any]]) -> list[str]:
    sts = next(o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "kmc-c")
    containers = sts["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "kube-apiserver")["args"]


def config_data(objs: list[dict[str, Any]]) -> dict[str, str]:
    return next(o for o in objs if o["kind"] == "ConfigMap" and "egress-selector.yaml" in
                o.get("data", {}))["data"]  # fmt: skip


def test_the_file_is_kubernetes_own_configuration_and_the_flag_names_it() -> None:
    objs = rendered(spec(jwt(audiences=["kubernetes", "cli"])))
    text = config_data(objs)[authentication.FILE]
    assert yaml.safe_load(text) == {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [
            {
                "issuer": {
                    "url": ISSUER,
                    "audiences": ["kubernetes", "cli"],
                    "audienceMatchPolicy": "MatchAny",
                },
                "claimMappings": {
                    "username": {"claim": "email", "prefix": "oidc:"},
                    "groups": {"claim": "groups", "prefix": "oidc:"},
                },
            }
        ],
    }
    assert "--authentication-config=/etc/kubernetes/config/authentication.yaml" in apiserver_args(
        objs
    )


def test_without_issuers_there_is_no_file_and_no_flag() -> None:
    objs = rendered(
        {"distribution": "kubernetes", "version": "v1.35.4", "storage": {"type": "kine"}}
    )
    assert authentication.FILE not in config_data(objs)
    assert not [a for a in apiserver_args(objs) if a.startswith("--authentication-config")]


def test_one_audience_needs_no_match_policy_and_rules_and_ca_are_passed_on() -> None:
    ca = certs.new_ca("idp").cert_pem.decode()
    item = {**jwt(certificateAuthority=ca),
            "claimValidationRules": [{"claim": "hd", "requiredValue": "example.com"}]}  # fmt: skip
    loaded = yaml.safe_load(config_data(rendered(spec(item)))[authentication.FILE])["jwt"][0]
    assert "audienceMatchPolicy" not in loaded["issuer"]
    assert loaded["issuer"]["certificateAuthority"] == ca
    assert loaded["claimValidationRules"] == [{"claim": "hd", "requiredValue": "example.com"}]


def test_a_good_spec_is_accepted() -> None:
    assert errors(spec(jwt(certificateAuthority=certs.new_ca("idp").cert_pem.decode()))) == {}


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        (spec(jwt(url="http://idp.example.com")), "jwt[0].issuer.url", "not an https:// URL"),
        (spec(jwt(url="idp.example.com")), "jwt[0].issuer.url", "not an https:// URL"),
        (spec(jwt(url="https://u:p@idp.example.com")), "jwt[0].issuer.url", "credentials"),
        (spec(jwt(url="https://idp.example.com/?a=b")), "jwt[0].issuer.url", "query or fragment"),
        (
            spec(jwt(url="https://kubernetes.default.svc.cluster.local")),
            "jwt[0].issuer.url",
            "service account issuer",
        ),
        (spec(jwt(), jwt()), "jwt[1].issuer.url", "already trusted by"),
        (spec(jwt(audiences=["a", "a"])), "jwt[0].issuer.audiences[1]", "listed twice"),
        (spec(jwt(audiences=[" "])), "jwt[0].issuer.audiences[0]", "client ID"),
        (
            spec(jwt(certificateAuthority="not a certificate")),
            "jwt[0].issuer.certificateAuthority",
            "is not PEM certificates",
        ),
        (
            spec(
                {
                    **jwt(),
                    "claimValidationRules": [
                        {"claim": "hd", "requiredValue": "a"},
                        {"claim": "hd", "requiredValue": "b"},
                    ],
                }
            ),
            "jwt[0].claimValidationRules[1].claim",
            "already has a rule",
        ),
    ],
)
def test_bad_issuers_are_refused_naming_the_field(
    body: dict[str, Any], path: str, words: str
) -> None:
    found = errors(body)
    full = f"spec.kubernetes.authentication.{path}"
    assert full in found, found
    assert words in found[full]


def test_the_k0s_distribution_is_told_where_its_flags_go() -> None:
    found = errors(spec(jwt(), distribution="k0s"))
    assert "spec.k0sConfig.spec.api.extraArgs" in found["spec.kubernetes.authentication"]


def test_legacy_oidc_flags_beside_the_field_are_refused() -> None:
    body = {
        **spec(jwt()),
        "controlPlaneFlags": [
            "--v=2",
            "--oidc-issuer-url=https://other.example.com",
            "--authentication-config=/etc/auth.yaml",
        ],
    }
    found = errors(body)
    assert "spec.controlPlaneFlags[0]" not in found
    assert "refuses the two together" in found["spec.controlPlaneFlags[1]"]
    assert "--oidc-issuer-url" in found["spec.controlPlaneFlags[1]"]
    assert "set by the operator" in found["spec.controlPlaneFlags[2]"]


def test_legacy_oidc_flags_alone_are_still_the_users_choice() -> None:
    body = {
        "distribution": "kubernetes",
        "version": "v1.35.4",
        "storage": {"type": "kine"},
        "controlPlaneFlags": ["--oidc-issuer-url=https://idp.example.com"],
    }
    assert errors(body) == {}
