"""spec.kubernetes.authentication: the file the tenant API server loads, and admission."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import yaml

from mothership.api.k0smotron.v1beta2 import Cluster
from mothership.pki import certs
from mothership.render import authentication
from mothership.render.cluster import render_cluster
from mothership.render.facts import Facts
from mothership.webhooks import cel_syntax
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
    obj = {
        "apiVersion": "k0smotron.io/v1beta2",
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": body,
    }
    return {e.path: e.message for e in validate(obj).errors}


def rendered(body: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = Cluster.model_validate({"metadata": {"name": "c", "namespace": "ns"}, "spec": body})
    return render_cluster(cluster, Facts(external_address="192.0.2.10"))


def apiserver_args(objs: list[dict[str, Any]]) -> list[str]:
    sts = next(o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "kmc-c")
    containers = sts["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "kube-apiserver")["args"]


def config_data(objs: list[dict[str, Any]]) -> dict[str, str]:
    return next(
        o for o in objs if o["kind"] == "ConfigMap" and "egress-selector.yaml" in o.get("data", {})
    )["data"]


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
    item = {
        **jwt(certificateAuthority=ca),
        "claimValidationRules": [{"claim": "hd", "requiredValue": "example.com"}],
    }
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


def with_mappings(**mappings: Any) -> dict[str, Any]:
    """An authenticator whose claimMappings are `mappings` (username, groups, uid, extra) and
    whose other fields are given by keyword too (claimValidationRules, userValidationRules)."""
    rules = {
        k: mappings.pop(k) for k in ("claimValidationRules", "userValidationRules") if k in mappings
    }
    return {**jwt(), "claimMappings": mappings, **rules}


EXPRESSIONS = with_mappings(
    username={"expression": '"corp:" + claims.email'},
    groups={"expression": 'dyn(claims.groups).map(g, "corp:" + g)'},
    uid={"claim": "sub"},
    extra=[{"key": "example.com/tenant", "valueExpression": '"team"'}],
    claimValidationRules=[
        {"claim": "hd", "requiredValue": "example.com"},
        {"expression": "claims.email_verified", "message": "verify your email first"},
    ],
    userValidationRules=[{"expression": '!user.username.startsWith("system:")'}],
)


def test_expressions_reach_the_file_as_written_and_a_claims_prefix_stays_absent() -> None:
    loaded = yaml.safe_load(config_data(rendered(spec(EXPRESSIONS)))[authentication.FILE])
    (item,) = loaded["jwt"]
    assert item["claimMappings"] == {
        "username": {"expression": '"corp:" + claims.email'},
        "groups": {"expression": 'dyn(claims.groups).map(g, "corp:" + g)'},
        "uid": {"claim": "sub"},
        "extra": [{"key": "example.com/tenant", "valueExpression": '"team"'}],
    }
    assert item["claimValidationRules"] == [
        {"claim": "hd", "requiredValue": "example.com"},
        {"expression": "claims.email_verified", "message": "verify your email first"},
    ]
    assert item["userValidationRules"] == [{"expression": '!user.username.startsWith("system:")'}]
    # An empty prefix is a choice the API server tells from an absent one: it stays.
    plain = with_mappings(username={"claim": "sub", "prefix": ""})
    loaded = yaml.safe_load(config_data(rendered(spec(plain)))[authentication.FILE])
    assert loaded["jwt"][0]["claimMappings"] == {"username": {"claim": "sub", "prefix": ""}}


def test_expressions_that_compile_are_accepted() -> None:
    assert errors(spec(EXPRESSIONS)) == {}
    # Kubernetes' optional syntax is unknown to the parser here: let through, not refused.
    optional = with_mappings(username={"expression": 'claims.?preferred_username.orValue("x")'})
    assert errors(spec(optional)) == {}


M = "jwt[0].claimMappings"


@pytest.mark.parametrize(
    ("item", "path", "words"),
    [
        (with_mappings(username={"claim": "sub"}), f"{M}.username.prefix", "required with claim"),
        (with_mappings(username={}), f"{M}.username", "needs claim or expression"),
        (
            with_mappings(username={"claim": "sub", "prefix": "", "expression": "claims.sub"}),
            f"{M}.username",
            "both claim and expression",
        ),
        (
            with_mappings(username={"expression": "claims.sub", "prefix": "oidc:"}),
            f"{M}.username.prefix",
            "put the prefix in the expression",
        ),
        (
            with_mappings(username={"expression": '"oidc:" + claims.sub +'}),
            f"{M}.username.expression",
            "mismatched input '<EOF>' at column 23",
        ),
        (
            with_mappings(username={"claim": "sub", "prefix": ""}, groups={"claim": "groups"}),
            f"{M}.groups.prefix",
            "required with claim",
        ),
        (
            with_mappings(username={"claim": "sub", "prefix": ""}, groups={"expression": "has(x)"}),
            f"{M}.groups.expression",
            "has() macro",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                uid={"claim": "sub", "expression": "claims.sub"},
            ),
            f"{M}.uid",
            "both claim and expression",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                extra=[{"key": "tenant", "valueExpression": '"a"'}],
            ),
            f"{M}.extra[0].key",
            "example.com/tenant",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                extra=[{"key": "Example.com/t", "valueExpression": '"a"'}],
            ),
            f"{M}.extra[0].key",
            "lowercase",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                extra=[{"key": "authn.k8s.io/t", "valueExpression": '"a"'}],
            ),
            f"{M}.extra[0].key",
            "reserved for Kubernetes",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                extra=[
                    {"key": "example.com/t", "valueExpression": '"a"'},
                    {"key": "example.com/t", "valueExpression": '"b"'},
                ],
            ),
            f"{M}.extra[1].key",
            "already mapped by",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                groups={"expression": 'claims.groups.map(g, "corp:" + g)'},
            ),
            f"{M}.groups.expression",
            "write dyn(claims.groups).map(...)",
        ),
        (
            with_mappings(username={"expression": "claims.email"}),
            f"{M}.username.expression",
            "claims.email_verified must be checked",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                claimValidationRules=[{"claim": "hd", "message": "m"}],
            ),
            "jwt[0].claimValidationRules[0].message",
            "goes with expression only",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                claimValidationRules=[{"expression": "true", "requiredValue": "x"}],
            ),
            "jwt[0].claimValidationRules[0].requiredValue",
            "goes with claim only",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""}, claimValidationRules=[{"message": "m"}]
            ),
            "jwt[0].claimValidationRules[0]",
            "needs claim or expression",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                userValidationRules=[
                    {"expression": "user.uid != ''"},
                    {"expression": "user.uid != ''"},
                ],
            ),
            "jwt[0].userValidationRules[1].expression",
            "the same expression as spec.kubernetes.authentication.jwt[0].userValidationRules[0];",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                claimValidationRules=[
                    {"claim": "hd", "requiredValue": "example.com"},
                    {"expression": "claims.a == 1"},
                    {"expression": "claims.a == 1"},
                ],
            ),
            "jwt[0].claimValidationRules[2].expression",
            "the same expression as spec.kubernetes.authentication.jwt[0].claimValidationRules[1];",
        ),
        (
            with_mappings(
                username={"claim": "sub", "prefix": ""},
                userValidationRules=[{"expression": "user.username ="}],
            ),
            "jwt[0].userValidationRules[0].expression",
            "not a CEL expression the API server can compile",
        ),
    ],
)
def test_mappings_and_rules_the_api_server_would_refuse_are_refused_naming_the_field(
    item: dict[str, Any], path: str, words: str
) -> None:
    found = errors(spec(item))
    full = f"spec.kubernetes.authentication.{path}"
    assert full in found, found
    assert words in found[full], found[full]


def test_email_verified_may_be_checked_in_an_extra_mapping_or_the_username_itself() -> None:
    in_extra = with_mappings(
        username={"expression": "claims.email"},
        extra=[{"key": "example.com/verified", "valueExpression": "string(claims.email_verified)"}],
    )
    inline = with_mappings(username={"expression": 'claims.email_verified ? claims.email : ""'})
    assert errors(spec(in_extra)) == {}
    assert errors(spec(inline)) == {}


def test_an_expression_too_long_to_parse_safely_is_refused_not_parsed() -> None:
    # A member chain this long overflows the native parser's stack (the process would die).
    chain = "claims" + ".b" * 20_000
    found = errors(spec(with_mappings(username={"expression": chain})))
    assert (
        "longer than 4096 characters"
        in found[f"spec.kubernetes.authentication.{M}.username.expression"]
    )
    # The worst shapes at the bound parse on a small thread stack (the webhook's threads').
    at_bound = "claims" + ".b" * ((cel_syntax.MAX_EXPRESSION - 6) // 2)
    answers: list[str | None] = []
    threading.stack_size(1024 * 1024)
    try:
        worker = threading.Thread(target=lambda: answers.append(cel_syntax.syntax_error(at_bound)))
        worker.start()
        worker.join(timeout=60)
    finally:
        threading.stack_size(0)
    assert answers == [None]
