"""OpenID Connect login for kubectl: the device authorization flow (RFC 8628) and a token cache.

kubectl runs `mothership oidc-login` as a client-go credential plugin. The device flow suits
it: the plugin needs no local web server or redirect URI, works over SSH and on machines
without a browser, and the person logs in at the identity provider's own page. The ID token
is cached per issuer and client (mode 0600) and reused until shortly before it expires, so
only the first kubectl command of a session asks for a login.
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
DEFAULT_SCOPES = ("openid", "email", "profile", "groups")


class LoginError(Exception):
    """The login could not complete; the message says what the provider answered."""


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str = ""
    ca_pem: str = ""
    scopes: tuple[str, ...] = DEFAULT_SCOPES


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


def cached_token(settings: Settings, now: float | None = None) -> str | None:
    path = cache_file(settings)
    try:
        token = str(json.loads(path.read_text())["id_token"])
        expiry = token_expiry(token)
    except (OSError, ValueError, KeyError, TypeError, LoginError):
        return None
    if expiry - EXPIRY_MARGIN <= (time.time() if now is None else now):
        return None
    return token


def store_token(settings: Settings, token: str) -> None:
    path = cache_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600, exist_ok=True)
    tmp.chmod(0o600)
    tmp.write_text(json.dumps({"issuer": settings.issuer, "id_token": token}))
    tmp.replace(path)


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
            if "device_authorization_endpoint" not in self._discovery:
                raise LoginError(
                    f"{self.settings.issuer} offers no device authorization endpoint; "
                    "enable the device flow for this client at the provider"
                )
        return self._discovery

    def _form(self, url: str, data: dict[str, str]) -> httpx.Response:
        if self.auth is None:
            data = {**data, "client_id": self.settings.client_id}
        try:
            if self.auth is None:
                return self.http.post(url, data=data)
            return self.http.post(url, data=data, auth=self.auth)
        except httpx.HTTPError as exc:
            raise LoginError(f"{url}: {exc}") from None

    def start(self) -> DeviceCode:
        url = self.discovery()["device_authorization_endpoint"]
        answer = self._form(url, {"scope": " ".join(self.settings.scopes)})
        body = _json(answer)
        if answer.status_code != 200 or "device_code" not in body:
            raise LoginError(f"device authorization refused: {_oauth_error(answer, body)}")
        return DeviceCode(
            device_code=body["device_code"],
            user_code=body["user_code"],
            verification_uri=body["verification_uri"],
            verification_uri_complete=body.get("verification_uri_complete")
            or body["verification_uri"],
            interval=float(body.get("interval") or 5),
            expires_in=float(body.get("expires_in") or 300),
        )

    def wait_for_token(self, code: DeviceCode, sleep: Callable[[float], None] = time.sleep) -> str:
        """Poll the token endpoint as RFC 8628 says (slow_down adds 5 s) until the person
        allows or denies, or the code expires; the ID token."""
        url = self.discovery()["token_endpoint"]
        interval = code.interval
        deadline = time.monotonic() + code.expires_in
        while time.monotonic() < deadline:
            sleep(interval)
            answer = self._form(url, {"grant_type": DEVICE_GRANT, "device_code": code.device_code})
            body = _json(answer)
            if answer.status_code == 200:
                token = body.get("id_token")
                if not token:
                    raise LoginError("the provider sent no ID token; ask for the openid scope")
                return str(token)
            error = body.get("error")
            if error == "authorization_pending":
                continue
            if error == "slow_down":
                interval += 5
                continue
            raise LoginError(f"login failed: {_oauth_error(answer, body)}")
        raise LoginError(f"the login was not completed within {code.expires_in:.0f}s")


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _oauth_error(answer: httpx.Response, body: dict[str, Any]) -> str:
    error = body.get("error")
    if error:
        description = body.get("error_description")
        return f"{error}" + (f" ({description})" if description else "")
    return f"HTTP {answer.status_code}: {answer.text[:200]}"
