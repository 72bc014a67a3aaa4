"""The tenant API server's AuthenticationConfiguration, from spec.kubernetes.authentication.

The spec takes the shape of Kubernetes' own file so its documentation applies; this module
only fills in what the file needs and the spec leaves implicit (the audience match policy
that more than one audience requires). The file lives in the components' ConfigMap, mounted
as a directory: the kubelet replaces it when the ConfigMap changes and the API server
reloads it, so an edited issuer takes effect without restarting a pod.
"""

from __future__ import annotations

from typing import Any

import yaml

from mothership.api.k0smotron.v1beta2 import Cluster, JWTAuthenticator

FILE = "authentication.yaml"
API_VERSION = "apiserver.config.k8s.io/v1"


def authenticators(cluster: Cluster) -> list[JWTAuthenticator]:
    kubernetes = cluster.spec.kubernetes
    if kubernetes is None or kubernetes.authentication is None:
        return []
    return list(kubernetes.authentication.jwt or [])


def configuration(jwt: list[JWTAuthenticator]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AuthenticationConfiguration",
        "jwt": [_authenticator(item) for item in jwt],
    }


def _authenticator(item: JWTAuthenticator) -> dict[str, Any]:
    issuer: dict[str, Any] = {"url": item.issuer.url, "audiences": list(item.issuer.audiences)}
    if len(item.issuer.audiences) > 1:
        issuer["audienceMatchPolicy"] = "MatchAny"  # required by the API server with several
    if item.issuer.certificate_authority:
        issuer["certificateAuthority"] = item.issuer.certificate_authority
    out: dict[str, Any] = {"issuer": issuer}
    # Each part as the spec sets it (to_api: Kubernetes' names, unset fields left out): the
    # file's shape is the spec's, and an unset prefix must stay absent ("" is a choice).
    if item.claim_validation_rules:
        out["claimValidationRules"] = [rule.to_api() for rule in item.claim_validation_rules]
    mappings = item.claim_mappings
    claims: dict[str, Any] = {"username": mappings.username.to_api()}
    if mappings.groups is not None:
        claims["groups"] = mappings.groups.to_api()
    if mappings.uid is not None:
        claims["uid"] = mappings.uid.to_api()
    if mappings.extra:
        claims["extra"] = [extra.to_api() for extra in mappings.extra]
    out["claimMappings"] = claims
    if item.user_validation_rules:
        out["userValidationRules"] = [rule.to_api() for rule in item.user_validation_rules]
    return out


def file_text(cluster: Cluster) -> str | None:
    """The file's content, or None when the Cluster trusts no issuer (no file, no flag)."""
    jwt = authenticators(cluster)
    if not jwt:
        return None
    return yaml.safe_dump(configuration(jwt), sort_keys=False, default_flow_style=False)


def apiserver_flags(cluster: Cluster, config_dir: str) -> list[str]:
    return [f"--authentication-config={config_dir}/{FILE}"] if authenticators(cluster) else []
