"""OpenID Connect login for kubectl: the device authorization flow (RFC 8628) and a token cache.

kubectl runs `mothership oidc-login` as a client-go credential plugin. The device flow suits
it: the plugin needs no local web server or redirect URI, works over SSH and on machines
without a browser, and the person logs in at the identity provider's own page. The ID token
is cached per issuer and client (mode 0600) and reused until shortly before it expires, so
only the first kubectl command of a session asks for a login. When the provider also hands
out a refresh token (scope offline_access, a client allowed the refresh grant), an expired ID
token is renewed with it silently; the person is asked again only when the provider refuses
the refresh (the session ended, the token was revoked). Clients that may not use the device
flow log in through the browser instead (:mod:`.browser_login`); the cache and the renewal
are the same.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
EXEC_API_VERSION = "client.authentication.k8s.io/v1"
# A token this close to its expiry is not handed to kubectl: the request would outlive it.
EXPIRY_MARGIN = 30.0
REFRESH_GRANT = "refresh_token"
# offline_access asks for a refresh token; a provider that does not offer one ignores it.
DEFAULT_SCOPES = ("openid", "email", "profile", "groups", "offline_access")
# How a new login happens: a link and a code, or the browser back to a loopback redirect.
FLOWS = ("device", "browser")


class LoginError(Exception):
    """The login could not complete; the message says what the provider answered."""


class RefreshRefused(LoginError):
    """The provider would not renew the session: a new login is needed, not a failure."""


@dataclass(frozen=True)
class Tokens:
    id_token: str
    refresh_token: str = ""


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str = ""
    ca_pem: str = ""
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    # How a new login happens: "device" (a link and a code) or "browser" (the code flow with
    # PKCE on a loopback redirect, at listen_port; 0 is any free port). Not part of the cache
    # key: either flow's tokens serve the same issuer and client.
    flow: str = "device"
    listen_port: int = 0


@dataclass(frozen=True)
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    interval: float
    expires_in: float


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mothership" / "oidc"


def cache_file(settings: Settings) -> Path:
    key = hashlib.sha256(f"{settings.issuer}\n{settings.client_id}".encode()).hexdigest()[:24]
    return cache_dir() / f"{key}.json"


def token_expiry(token: str) -> float:
    """The exp claim of a JWT (unverified: the API server verifies; this only decides when to
    log in again)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise LoginError(f"the provider's ID token is not a JWT with an exp claim: {exc}") from None


def _cached(settings: Settings) -> dict[str, Any]:
    try:
        found = json.loads(cache_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def cached_token(settings: Settings, now: float | None = None) -> str | None:
    try:
        token = str(_cached(settings)["id_token"])
        expiry = token_expiry(token)
    except (KeyError, LoginError):
        return None
    if expiry - EXPIRY_MARGIN <= (time.time() if now is None else now):
        return None
    return token


def cached_refresh_token(settings: Settings) -> str | None:
    token = _cached(settings).get("refresh_token")
    return token if isinstance(token, str) and token else None


def store_token(settings: Settings, tokens: Tokens) -> None:
    """Replace the cache entry at once (a rename), readable by its owner only: it holds a
    refresh token, which is a login."""
    path = cache_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600, exist_ok=True)
    tmp.chmod(0o600)
    entry = {"issuer": settings.issuer, "id_token": tokens.id_token}
    if tokens.refresh_token:
        entry["refresh_token"] = tokens.refresh_token
    tmp.write_text(json.dumps(entry))
    tmp.replace(path)


def forget(settings: Settings) -> None:
    cache_file(settings).unlink(missing_ok=True)


def exec_credential(token: str) -> dict[str, Any]:
    """What kubectl reads from the plugin's stdout."""
    expiry = datetime.fromtimestamp(token_expiry(token), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": EXEC_API_VERSION,
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": expiry},
    }


class Client:
    """The provider's endpoints, as its discovery document names them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        verify: ssl.SSLContext | bool = True
        if settings.ca_pem:
            verify = ssl.create_default_context(cadata=settings.ca_pem)
        self.http = httpx.Client(verify=verify, timeout=15)
        self.auth: tuple[str, str] | None = (
            (settings.client_id, settings.client_secret) if settings.client_secret else None
        )
        self._discovery: dict[str, Any] | None = None

    def close(self) -> None:
        self.http.close()

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                answer = self.http.get(url)
            except httpx.HTTPError as exc:
                raise LoginError(f"cannot reach the identity provider at {url}: {exc}") from None
            if answer.status_code != 200:
                raise LoginError(f"{url} answered {answer.status_code}; is the issuer right?")
            self._discovery = answer.json()
        return self._discovery

    def form(self, url: str, data: dict[str, str]) -> httpx.Response:
        if self.auth is None:
            data = {**data, "client_id": self.settings.client_id}
        try:
            if self.auth is None:
                return self.http.post(url, data=data)
            return self.http.post(url, data=data, auth=self.auth)
        except httpx.HTTPError as exc:
            raise LoginError(f"{url}: {exc}") from None

    def start(self) -> DeviceCode:
        url = self.discovery().get("device_authorization_endpoint")
        if not url:
            raise LoginError(
                f"{self.settings.issuer} offers no device authorization endpoint; "
                "enable the device flow for this client at the provider, or log in with "
                "--flow browser"
            )
        answer = self.form(url, {"scope": " ".join(self.settings.scopes)})
        body = json_body(answer)
        if answer.status_code != 200 or "device_code" not in body:
            raise LoginError(f"device authorization refused: {oauth_error(answer, body)}")
        return DeviceCode(
            device_code=body["device_code"],
            user_code=body["user_code"],
            verification_uri=body["verification_uri"],
            verification_uri_complete=body.get("verification_uri_complete")
            or body["verification_uri"],
            interval=float(body.get("interval") or 5),
            expires_in=float(body.get("expires_in") or 300),
        )

    def wait_for_token(
        self, code: DeviceCode, sleep: Callable[[float], None] = time.sleep
    ) -> Tokens:
        """Poll the token endpoint as RFC 8628 says (slow_down adds 5 s) until the person
        allows or denies, or the code expires; the ID token (and a refresh token if given)."""
        url = self.discovery()["token_endpoint"]
        interval = code.interval
        deadline = time.monotonic() + code.expires_in
        while time.monotonic() < deadline:
            sleep(interval)
            answer = self.form(url, {"grant_type": DEVICE_GRANT, "device_code": code.device_code})
            body = json_body(answer)
            if answer.status_code == 200:
                token = body.get("id_token")
                if not token:
                    raise LoginError("the provider sent no ID token; ask for the openid scope")
                return Tokens(str(token), str(body.get("refresh_token") or ""))
            error = body.get("error")
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5
                continue
            raise LoginError(f"login failed: {oauth_error(answer, body)}")
        raise LoginError(f"the login was not completed within {code.expires_in:.0f}s")

    def refresh(self, refresh_token: str) -> Tokens:
        """A new ID token for the session the refresh token stands for. Providers that rotate
        refresh tokens send a new one; the old one is kept when none comes."""
        url = self.discovery()["token_endpoint"]
        answer = self.form(url, {"grant_type": REFRESH_GRANT, "refresh_token": refresh_token})
        body = json_body(answer)
        if answer.status_code != 200:
            raise RefreshRefused(oauth_error(answer, body))
        token = body.get("id_token")
        if not token:
            raise RefreshRefused("the provider renewed the session without an ID token")
        return Tokens(str(token), str(body.get("refresh_token") or refresh_token))


def device_flow(show_code: Callable[[DeviceCode], None]) -> Callable[[Client], Tokens]:
    """A new login by the device flow, ``show_code`` telling the person where to go."""

    def login(client: Client) -> Tokens:
        code = client.start()
        show_code(code)
        return client.wait_for_token(code)

    return login


def obtain(
    settings: Settings,
    *,
    use_cache: bool,
    login: Callable[[Client], Tokens],
    notice: Callable[[str], None],
) -> str:
    """The ID token kubectl gets: the cached one while it is fresh, else one renewed with the
    cached refresh token, else one from a new ``login``. Whatever was obtained is cached."""
    token = cached_token(settings) if use_cache else None
    if token is not None:
        return token
    refresh_token = cached_refresh_token(settings) if use_cache else None
    client = Client(settings)
    try:
        tokens = None
        if refresh_token:
            try:
                tokens = client.refresh(refresh_token)
            except RefreshRefused as exc:
                forget(settings)
                notice(f"{settings.issuer} did not renew the session ({exc}); log in again")
        if tokens is None:
            tokens = login(client)
    finally:
        client.close()
    store_token(settings, tokens)
    return tokens.id_token


def json_body(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def oauth_error(answer: httpx.Response, body: dict[str, Any]) -> str:
    error = body.get("error")
    if error:
        description = body.get("error_description")
        return f"{error}" + (f" ({description})" if description else "")
    return f"HTTP {answer.status_code}: {answer.text[:200]}"
