"""Rules for spec.kubernetes.authentication: what the tenant API server would refuse.

A JWT authenticator the API server cannot load makes it keep the previous file (an edit) or
fail to start (a new Cluster), and says why only in its log. The CRD schema checks shapes;
these rules check what it cannot: the issuer URL's form, duplicates, the CA's PEM, which of
claim and expression each mapping and rule takes, the syntax of the CEL expressions, and the
distribution that reads the field (the API server's own rules, apiserver/validation, restated).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from mothership.webhooks.cel_syntax import syntax_error
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
        if not isinstance(item, dict):
            continue
        rules = item.get("claimValidationRules")
        _claim_rules(check, f"{path}.claimValidationRules", rules)
        _claim_mappings(check, f"{path}.claimMappings", sub(item, "claimMappings"))
        _user_rules(check, f"{path}.userValidationRules", item.get("userValidationRules"))
        _email_verified(check, path, item)
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
    expressions: dict[str, str] = {}
    for j, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        here = f"{path}[{j}]"
        claim, expression = rule.get("claim"), rule.get("expression")
        if not _one_of(check, here, claim, expression, required=True):
            continue
        if isinstance(claim, str):
            if rule.get("message") is not None:
                check.error(
                    f"{here}.message",
                    "goes with expression only (a claim's rule says what it wants by "
                    "requiredValue); remove it",
                )
            if claim in seen:
                check.error(
                    f"{here}.claim",
                    f"{show(claim)} already has a rule ({path}[{seen[claim]}]); a claim has "
                    "one required value",
                )
            seen.setdefault(claim, j)
        else:
            if rule.get("requiredValue") is not None:
                check.error(
                    f"{here}.requiredValue",
                    "goes with claim only; compare in the expression instead, e.g. "
                    'claims.hd == "example.com"',
                )
            _expression(check, f"{here}.expression", expression, expressions)


def _claim_mappings(check: Check, path: str, mappings: Obj) -> None:
    _prefixed(check, f"{path}.username", mappings.get("username"), required=True)
    _prefixed(check, f"{path}.groups", mappings.get("groups"), required=False)
    uid = mappings.get("uid")
    if isinstance(uid, dict) and _one_of(
        check, f"{path}.uid", uid.get("claim"), uid.get("expression"), required=False
    ):
        _expression(check, f"{path}.uid.expression", uid.get("expression"))
    extra = mappings.get("extra")
    if isinstance(extra, list):
        keys: dict[str, int] = {}
        for j, mapping in enumerate(extra):
            if isinstance(mapping, dict):
                _extra(check, f"{path}.extra", j, mapping, keys)


def _prefixed(check: Check, path: str, mapping: Any, required: bool) -> None:
    if not isinstance(mapping, dict):
        return
    claim, expression = mapping.get("claim"), mapping.get("expression")
    if not _one_of(check, path, claim, expression, required=required):
        return
    prefix = mapping.get("prefix")
    if isinstance(expression, str):
        if prefix is not None:
            check.error(
                f"{path}.prefix",
                "goes with claim only; put the prefix in the expression, e.g. "
                '"oidc:" + claims.sub, and remove this field',
            )
        _expression(check, f"{path}.expression", expression)
    elif isinstance(claim, str) and prefix is None:
        check.error(
            f"{path}.prefix",
            'is required with claim, e.g. "oidc:", so these names cannot collide with the '
            'tenant\'s own; "" for none',
        )


def _one_of(check: Check, path: str, claim: Any, expression: Any, required: bool) -> bool:
    """Exactly one of claim and expression (or neither, when not required); False when
    the rest of the item cannot be judged."""
    if claim and expression:
        check.error(path, "sets both claim and expression; keep one")
        return False
    if not claim and not expression:
        if required:
            check.error(path, "needs claim or expression; set one")
        return False
    return True


# A Kubernetes "domain-prefixed path": a DNS subdomain, a slash, then a path.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_RESERVED = ("k8s.io", "kubernetes.io")
_KEY_PATH = re.compile(r"^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$")


def _extra(check: Check, path: str, j: int, mapping: Obj, keys: dict[str, int]) -> None:
    here = f"{path}[{j}]"
    key = mapping.get("key")
    if isinstance(key, str):
        domain, _, rest = key.partition("/")
        if key != key.lower():
            check.error(f"{here}.key", f"{show(key)} must be lowercase")
        elif not rest or len(domain) > 253 or not _SUBDOMAIN.match(domain):
            check.error(
                f"{here}.key",
                f"{show(key)} is not a domain-prefixed key; name it under a domain of yours, "
                "e.g. example.com/tenant",
            )
        elif not _KEY_PATH.match(rest):
            check.error(f"{here}.key", f"{show(key)} has characters a key path cannot hold")
        elif domain in _RESERVED or domain.endswith(tuple("." + d for d in _RESERVED)):
            check.error(
                f"{here}.key",
                f"{show(key)} is under {domain}, reserved for Kubernetes; use a domain of yours",
            )
        if key in keys:
            check.error(f"{here}.key", f"{show(key)} is already mapped by {path}[{keys[key]}]")
        keys.setdefault(key, j)
    _expression(check, f"{here}.valueExpression", mapping.get("valueExpression"))


def _user_rules(check: Check, path: str, rules: Any) -> None:
    if not isinstance(rules, list):
        return
    expressions: dict[str, str] = {}
    for j, rule in enumerate(rules):
        if isinstance(rule, dict):
            _expression(check, f"{path}[{j}].expression", rule.get("expression"), expressions)


def _expression(
    check: Check,
    path: str,
    expression: Any,
    seen: dict[str, str] | None = None,
) -> None:
    """`seen`: the rules of one list so far, expression -> the rule that has it."""
    if not isinstance(expression, str) or not expression.strip():
        return
    if seen is not None:
        if expression in seen:
            check.error(path, f"the same expression as {seen[expression]}; remove one")
            return
        seen[expression] = path.removesuffix(".expression")
    problem = syntax_error(expression)
    if problem:
        check.error(path, f"is not a CEL expression the API server can compile: {problem}")
        return
    ranged = _MACRO_OVER_CLAIM.search(expression)
    if ranged:
        member, macro = ranged.group(1), ranged.group(2)
        check.error(
            path,
            f"claims{member} has type any to the API server, and .{macro}() cannot range over "
            f"it (compilation fails); write dyn(claims{member}).{macro}(...)",
        )


# A macro straight on a member of claims (claims is map(string, any) in the API server's CEL
# environment): the one type error people meet first, e.g. claims.groups.map(g, "x:" + g).
_MACRO_OVER_CLAIM = re.compile(
    r"(?<![\w.])claims((?:\s*\.\s*\w+|\s*\[[^\[\]]*\])+)\s*\.\s*"
    r"(map|filter|all|exists_one|exists)\s*\("
)


_EMAIL = re.compile(r"\bclaims\s*\.\s*email\b")
_EMAIL_VERIFIED = re.compile(r"\bclaims\s*\.\s*email_verified\b")


def _email_verified(check: Check, path: str, item: Obj) -> None:
    """The API server's own rule: a user named from claims.email by an expression must come
    from a token whose email is verified, and the authenticator must say where it checks."""
    mappings = sub(item, "claimMappings")
    username = sub(mappings, "username").get("expression")
    if not isinstance(username, str) or not _EMAIL.search(username):
        return
    places: list[Any] = [username]
    places += [m.get("valueExpression") for m in mappings.get("extra") or [] if isinstance(m, dict)]
    rules = item.get("claimValidationRules") or []
    places += [r.get("expression") for r in rules if isinstance(r, dict)]
    if any(isinstance(p, str) and _EMAIL_VERIFIED.search(p) for p in places):
        return
    check.error(
        f"{path}.claimMappings.username.expression",
        "reads claims.email, so claims.email_verified must be checked too: add a "
        "claimValidationRules entry with expression claims.email_verified, or test it here",
    )
