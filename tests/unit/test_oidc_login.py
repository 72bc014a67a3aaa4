"""The pure parts of `mothership oidc-login` and `cluster kubeconfig --oidc`."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from mothership.cli.oidc_settings import oidc_settings
from mothership.errors import InvalidInput
from mothership.identity import device_login
from mothership.identity.kubeconfig import oidc_kubeconfig

SETTINGS = device_login.Settings("https://idp.example.com", "kubernetes", "s3cret", "PEM")


def jwt_with(exp: float) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'exp': exp, 'sub': 'alice'})}.signature"


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_a_cached_token_is_reused_until_shortly_before_it_expires() -> None:
    token = jwt_with(exp=1000.0)
    device_login.store_token(SETTINGS, device_login.Tokens(token))
    assert device_login.cached_token(SETTINGS, now=900.0) == token
    assert device_login.cached_token(SETTINGS, now=1000.0 - device_login.EXPIRY_MARGIN) is None
    other = device_login.Settings("https://idp.example.com", "another-client")
    assert device_login.cached_token(other, now=900.0) is None


def test_the_cache_is_private_to_the_user() -> None:
    device_login.store_token(SETTINGS, device_login.Tokens(jwt_with(exp=1000.0), "r1"))
    path = device_login.cache_file(SETTINGS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_broken_cache_means_a_new_login() -> None:
    path = device_login.cache_file(SETTINGS)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert device_login.cached_token(SETTINGS, now=0.0) is None


def test_the_refresh_token_outlives_the_id_token_and_is_dropped_with_the_entry() -> None:
    device_login.store_token(SETTINGS, device_login.Tokens(jwt_with(exp=1000.0), "r1"))
    assert device_login.cached_token(SETTINGS, now=2000.0) is None
    assert device_login.cached_refresh_token(SETTINGS) == "r1"
    device_login.store_token(SETTINGS, device_login.Tokens(jwt_with(exp=3000.0)))
    assert device_login.cached_refresh_token(SETTINGS) is None, "a login without one drops it"
    device_login.store_token(SETTINGS, device_login.Tokens(jwt_with(exp=3000.0), "r2"))
    device_login.forget(SETTINGS)
    assert device_login.cached_refresh_token(SETTINGS) is None
    assert device_login.cached_token(SETTINGS, now=0.0) is None


def test_offline_access_is_asked_for() -> None:
    assert "offline_access" in device_login.DEFAULT_SCOPES
    assert "openid" in device_login.DEFAULT_SCOPES


def test_exec_credential_carries_the_token_and_its_expiry() -> None:
    token = jwt_with(exp=1767225600.0)  # 2026-01-01T00:00:00Z
    assert device_login.exec_credential(token) == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": "2026-01-01T00:00:00Z"},
    }


def test_a_token_without_exp_is_named_as_such() -> None:
    with pytest.raises(device_login.LoginError, match="exp claim"):
        device_login.token_expiry("not-a-jwt")


ADMIN = """
apiVersion: v1
kind: Config
clusters:
- name: team
  cluster: {server: "https://10.96.0.10:6443", certificate-authority-data: Q0E=}
users:
- name: admin
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
contexts:
- name: team
  context: {cluster: team, user: admin}
current-context: team
"""


def test_the_oidc_kubeconfig_keeps_the_cluster_and_drops_every_credential() -> None:
    out = yaml.safe_load(oidc_kubeconfig(ADMIN, "mothership-ns-team", SETTINGS))
    assert out["clusters"] == [
        {"name": "mothership-ns-team",
         "cluster": {"server": "https://10.96.0.10:6443", "certificate-authority-data": "Q0E="}}
    ]  # fmt: skip
    (user,) = out["users"]
    assert set(user["user"]) == {"exec"}
    assert "client-key-data" not in json.dumps(out)
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "mothership"
    assert exec_["args"] == [
        "oidc-login", "--issuer", "https://idp.example.com", "--client-id", "kubernetes",
        "--client-secret", "s3cret", "--ca-data", base64.b64encode(b"PEM").decode(),
    ]  # fmt: skip
    assert out["current-context"] == "mothership-ns-team"


def cluster(*issuers: tuple[str, list[str]]) -> dict[str, Any]:
    jwt = [{"issuer": {"url": url, "audiences": aud, "certificateAuthority": "CA"}}
           for url, aud in issuers]  # fmt: skip
    return {"metadata": {"name": "team"},
            "spec": {"kubernetes": {"authentication": {"jwt": jwt}}}}  # fmt: skip


def test_settings_come_from_the_only_issuer() -> None:
    found = oidc_settings(cluster(("https://a", ["k8s", "cli"])), None, None, "")
    assert (found.issuer, found.client_id, found.ca_pem) == ("https://a", "k8s", "CA")
    assert oidc_settings(cluster(("https://a", ["k8s", "cli"])), None, "cli", "").client_id == "cli"


@pytest.mark.parametrize(
    ("obj", "issuer", "client", "words"),
    [
        ({"metadata": {"name": "team"}, "spec": {}}, None, None, "trusts no identity provider"),
        (cluster(("https://a", ["k"]), ("https://b", ["k"])), None, None, "--oidc-issuer"),
        (cluster(("https://a", ["k"])), "https://c", None, "does not trust it"),
        (cluster(("https://a", ["k"])), None, "other", "accepts tokens for k only"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_fix(
    obj: dict[str, Any], issuer: str | None, client: str | None, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        oidc_settings(obj, issuer, client, "")
