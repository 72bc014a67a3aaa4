"""The pure parts of the browser login (`oidc-login --flow browser`): PKCE, the authorization
link, the redirect's judgement, the nonce, the loopback server, and the settings that write
it into a kubeconfig. The flow against a real provider is in tests/integration/test_identity.py."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
import yaml
from typer.testing import CliRunner

from mothership.cli.main import app
from mothership.cli.oidc_settings import oidc_settings
from mothership.errors import InvalidInput
from mothership.identity import browser_login, device_login
from mothership.identity.kubeconfig import oidc_kubeconfig, plugin_args

SETTINGS = device_login.Settings("https://idp.example.com", "kubectl", flow="browser")


def test_the_challenge_is_rfc_7636s_own_example() -> None:
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert browser_login.challenge_for(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_new_verifier_is_long_unreserved_and_never_the_same() -> None:
    first, second = browser_login.new_pkce(), browser_login.new_pkce()
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", first.verifier)
    assert first.challenge == browser_login.challenge_for(first.verifier)
    assert first.verifier != second.verifier


def test_the_link_asks_for_a_code_with_pkce_state_and_nonce() -> None:
    attempt = browser_login.new_attempt(43123)
    url = browser_login.authorize_url("https://idp.example.com/auth", SETTINGS, attempt)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "kubectl",
        "redirect_uri": "http://127.0.0.1:43123/callback",
        "scope": "openid email profile groups offline_access",
        "state": attempt.state,
        "nonce": attempt.nonce,
        "code_challenge": attempt.pkce.challenge,
        "code_challenge_method": "S256",
    }
    assert attempt.pkce.verifier not in url, "the verifier never leaves the process"
    kept = browser_login.authorize_url("https://idp.example.com/auth?tenant=a", SETTINGS, attempt)
    assert kept.startswith("https://idp.example.com/auth?tenant=a&response_type=code")


def test_the_redirect_gives_the_code_only_for_this_logins_state() -> None:
    attempt = browser_login.new_attempt(1)
    assert (
        browser_login.code_from_redirect(f"/callback?code=c1&state={attempt.state}", attempt)
        == "c1"
    )
    with pytest.raises(device_login.LoginError, match="another state"):
        browser_login.code_from_redirect("/callback?code=c1&state=forged", attempt)
    with pytest.raises(device_login.LoginError, match="another state"):
        browser_login.code_from_redirect("/callback?code=c1", attempt)
    with pytest.raises(device_login.LoginError, match=r"refused the login: access_denied \(no\)"):
        browser_login.code_from_redirect(
            f"/callback?error=access_denied&error_description=no&state={attempt.state}", attempt
        )
    with pytest.raises(device_login.LoginError, match="without a code"):
        browser_login.code_from_redirect(f"/callback?state={attempt.state}", attempt)


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


def test_the_id_token_must_carry_this_logins_nonce() -> None:
    attempt = browser_login.new_attempt(1)
    browser_login.check_nonce(_jwt({"nonce": attempt.nonce}), attempt)
    with pytest.raises(device_login.LoginError, match="nonce"):
        browser_login.check_nonce(_jwt({"nonce": "another"}), attempt)
    with pytest.raises(device_login.LoginError, match="nonce"):
        browser_login.check_nonce(_jwt({}), attempt)
    with pytest.raises(device_login.LoginError, match="not a JWT"):
        browser_login.check_nonce("opaque", attempt)


class _DiscoveryOnly(device_login.Client):
    """The provider's discovery document without a provider: the loopback part ends before
    the code is exchanged, so no other endpoint is asked."""

    def __init__(self, discovery: dict[str, Any]) -> None:
        super().__init__(SETTINGS)
        self._discovery = discovery


DISCOVERY = {"authorization_endpoint": "https://idp.example.com/auth",
             "token_endpoint": "https://idp.example.com/token"}  # fmt: skip


def _redirect_with(params: str) -> tuple[int, str]:
    """Run the login on a free port; the 'browser' follows the link's redirect_uri with
    ``params`` (``{state}`` replaced by the login's). Returns the page's status and the
    login's error."""
    client = _DiscoveryOnly(DISCOVERY)
    answers: list[httpx.Response] = []
    followers: list[threading.Thread] = []

    def browser(url: str) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        target = query["redirect_uri"] + "?" + params.format(state=query["state"])

        def follow() -> None:
            with httpx.Client(trust_env=False, timeout=5) as http:
                http.get(query["redirect_uri"].replace("/callback", "/favicon.ico"))
                answers.append(http.get(target))

        followers.append(threading.Thread(target=follow, daemon=True))
        followers[0].start()

    try:
        with pytest.raises(device_login.LoginError) as refused:
            browser_login.login(client, port=0, show_url=browser, timeout=10)
    finally:
        client.close()
    followers[0].join(timeout=10)
    (page,) = answers
    return page.status_code, str(refused.value)


def test_the_loopback_turns_away_a_redirect_of_another_login() -> None:
    status, error = _redirect_with("code=c1&state=forged")
    assert status == 400
    assert "another state" in error


def test_the_loopback_reports_the_providers_refusal() -> None:
    status, error = _redirect_with("error=access_denied&state={state}")
    assert status == 400
    assert "refused the login: access_denied" in error


def test_a_login_nobody_completes_ends_with_the_time_it_waited() -> None:
    client = _DiscoveryOnly(DISCOVERY)
    try:
        with pytest.raises(device_login.LoginError, match="not completed within 1s"):
            browser_login.login(client, port=0, show_url=lambda url: None, timeout=1)
    finally:
        client.close()


def test_a_port_in_use_is_named_with_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        client = _DiscoveryOnly(DISCOVERY)
        try:
            with pytest.raises(device_login.LoginError, match=f"127.0.0.1:{port}.*--listen-port"):
                browser_login.login(client, port=port, show_url=lambda url: None, timeout=1)
        finally:
            client.close()


def test_a_provider_without_s256_is_refused_before_the_person_is_sent_anywhere() -> None:
    client = _DiscoveryOnly({**DISCOVERY, "code_challenge_methods_supported": ["plain"]})
    shown: list[str] = []
    try:
        with pytest.raises(device_login.LoginError, match=r"S256.*device flow"):
            browser_login.login(client, port=0, show_url=shown.append, timeout=1)
    finally:
        client.close()
    assert shown == []


def test_the_kubeconfig_runs_the_browser_flow_on_the_port_given() -> None:
    settings = device_login.Settings("https://idp", "kubectl", flow="browser", listen_port=8000)
    assert plugin_args(settings) == [
        "oidc-login", "--issuer", "https://idp", "--client-id", "kubectl",
        "--flow", "browser", "--listen-port", "8000",
    ]  # fmt: skip
    device = device_login.Settings("https://idp", "kubernetes")
    assert "--flow" not in plugin_args(device), "the device flow is the plugin's default"
    admin = yaml.safe_dump(
        {"clusters": [{"name": "t", "cluster": {"server": "https://10.0.0.1:6443"}}]}
    )
    out = yaml.safe_load(oidc_kubeconfig(admin, "t", settings))
    assert out["users"][0]["user"]["exec"]["args"][-4:] == [
        "--flow", "browser", "--listen-port", "8000"
    ]  # fmt: skip


CLUSTER = {"metadata": {"name": "team"},
           "spec": {"kubernetes": {"authentication": {"jwt": [
               {"issuer": {"url": "https://a", "audiences": ["kubectl"]}}]}}}}  # fmt: skip


def test_settings_carry_the_flow_and_refuse_what_cannot_log_in() -> None:
    found = oidc_settings(CLUSTER, None, None, "", "browser", 8000)
    assert (found.flow, found.listen_port) == ("browser", 8000)
    with pytest.raises(InvalidInput, match="--oidc-flow web: use one of device, browser"):
        oidc_settings(CLUSTER, None, None, "", "web")
    with pytest.raises(InvalidInput, match="--oidc-listen-port 70000"):
        oidc_settings(CLUSTER, None, None, "", "browser", 70000)
    with pytest.raises(InvalidInput, match="add --oidc-flow browser"):
        oidc_settings(CLUSTER, None, None, "", "device", 8000)


def test_the_plugin_refuses_an_unknown_flow_with_the_choices() -> None:
    result = CliRunner().invoke(
        app, ["oidc-login", "--issuer", "https://idp", "--client-id", "k", "--flow", "web"]
    )
    assert result.exit_code != 0
    assert "--flow web: use one of device, browser" in result.output
