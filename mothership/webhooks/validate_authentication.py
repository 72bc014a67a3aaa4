"""Rules for spec.kubernetes.authentication: what the tenant API server would refuse.

A JWT authenticator the API server cannot load makes it keep the previous file (an edit) or
fail to start (a new Cluster), and says why only in its log. The CRD schema checks shapes;
these rules check what it cannot: the issuer URL's form, duplicates, the CA's PEM, and the
distribution that reads the field.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from mothership.webhooks.findings import Check, Obj, show, sub

PATH = "spec.kubernetes.authentication"


def authentication(check: Check, spec: Obj) -> None:
    jwt = sub(spec, "kubernetes", "authentication").get("jwt")
    if not isinstance(jwt, list) or not jwt:
        return
    if spec.get("distribution") != "kubernetes":
        check.error(
            PATH,
            "read by spec.distribution kubernetes only; with k0s, give k0s's API server the "
            "flags in spec.k0sConfig.spec.api.extraArgs instead, or remove this field",
        )
        return
    domain = sub(spec, "k0sConfig", "spec", "network").get("clusterDomain") or "cluster.local"
    service_account_issuer = f"https://kubernetes.default.svc.{domain}"
    seen: dict[str, int] = {}
    for i, item in enumerate(jwt):
        path = f"{PATH}.jwt[{i}]"
        issuer = sub(item, "issuer") if isinstance(item, dict) else {}
        url = issuer.get("url")
        if isinstance(url, str):
            _issuer_url(check, f"{path}.issuer.url", url, service_account_issuer)
            if url in seen:
                check.error(
                    f"{path}.issuer.url",
                    f"{show(url)} is already trusted by {PATH}.jwt[{seen[url]}]; merge the two "
                    "(an issuer is listed once, with all its audiences)",
                )
            seen.setdefault(url, i)
        _audiences(check, f"{path}.issuer.audiences", issuer.get("audiences"))
        _certificate_authority(
            check, f"{path}.issuer.certificateAuthority", issuer.get("certificateAuthority")
        )
        rules = item.get("claimValidationRules") if isinstance(item, dict) else None
        _claim_rules(check, f"{path}.claimValidationRules", rules)
    _legacy_flags(check, spec.get("controlPlaneFlags"))


def _legacy_flags(check: Check, flags: Any) -> None:
    """kube-apiserver exits at start when --authentication-config and any --oidc-* flag are
    both given, and the operator sets --authentication-config from this field: the pod would
    crash-loop with the reason only in its log."""
    if not isinstance(flags, list):
        return
    for i, flag in enumerate(flags):
        if not isinstance(flag, str) or not flag.startswith("--"):
            continue
        name = flag[2:].split("=", 1)[0]
        path = f"spec.controlPlaneFlags[{i}]"
        if name.startswith("oidc-"):
            check.error(
                path,
                f"--{name} cannot be used with {PATH}: kube-apiserver refuses the two together; "
                f"describe the issuer in {PATH}.jwt instead and remove the flag",
            )
        elif name == "authentication-config":
            check.error(
                path,
                f"--{name} is set by the operator from {PATH}; remove the flag",
            )


def _issuer_url(check: Check, path: str, url: str, service_account_issuer: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        check.error(
            path,
            f"{show(url)} is not an https:// URL; the API server trusts only issuers it "
            "reaches over TLS, e.g. https://idp.example.com",
        )
        return
    if parts.username is not None or parts.password is not None:
        check.error(path, f"{show(url)} carries credentials; remove the user:password@ part")
    if parts.query or parts.fragment:
        check.error(path, f"{show(url)} has a query or fragment; an issuer URL has neither")
    if url.rstrip("/") == service_account_issuer:
        check.error(
            path,
            f"{show(url)} is the tenant's own service account issuer; name the identity "
            "provider's issuer",
        )


def _audiences(check: Check, path: str, audiences: Any) -> None:
    if not isinstance(audiences, list):
        return
    seen: set[str] = set()
    for j, audience in enumerate(audiences):
        if not isinstance(audience, str) or not audience.strip():
            check.error(f"{path}[{j}]", "an audience is the client ID tokens are issued to")
        elif audience in seen:
            check.error(f"{path}[{j}]", f"{show(audience)} is listed twice; remove one")
        else:
            seen.add(audience)


def _certificate_authority(check: Check, path: str, pem: Any) -> None:
    if not isinstance(pem, str) or not pem.strip():
        return
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        certificates = []
    if not certificates:
        check.error(
            path,
            "is not PEM certificates; paste the CA as -----BEGIN CERTIFICATE----- ... "
            "-----END CERTIFICATE-----, or leave it out to use the system roots",
        )


def _claim_rules(check: Check, path: str, rules: Any) -> None:
    if not isinstance(rules, list):
        return
    seen: dict[str, int] = {}
    for j, rule in enumerate(rules):
        claim = rule.get("claim") if isinstance(rule, dict) else None
        if isinstance(claim, str) and claim in seen:
            check.error(
                f"{path}[{j}].claim",
                f"{show(claim)} already has a rule ({path}[{seen[claim]}]); a claim has one "
                "required value",
            )
        elif isinstance(claim, str):
            seen[claim] = j
