"""OpenID Connect login in the browser: the authorization-code flow with PKCE (RFC 7636) on a
loopback redirect (RFC 8252).

For providers, or clients, that do not offer the device flow: many companies register kubectl
as a "native" or "public" client with a loopback redirect URI and nothing else. The plugin
listens on 127.0.0.1 only, sends the person to the provider's authorization page (printing the
link, and opening the desktop's browser when there is one), and the provider sends the browser
back to the loopback address with a code. The code alone is worth nothing: only the holder of
the PKCE verifier, this process, can exchange it, so another program on the machine that sees
the redirect cannot use it. The state ties the redirect to this login; the nonce ties the ID
token to it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mothership.identity.device_login import (
    Client,
    LoginError,
    Settings,
    Tokens,
    json_body,
    oauth_error,
)

REDIRECT_PATH = "/callback"
LOOPBACK = "127.0.0.1"
CODE_GRANT = "authorization_code"
# How long the person has to log in before the plugin gives up (as the device flow's codes).
LOGIN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def challenge_for(verifier: str) -> str:
    """S256: base64url of the verifier's sha256, without padding (RFC 7636, 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> Pkce:
    # 64 characters of the unreserved set: inside RFC 7636's 43-128, 384 bits of entropy.
    verifier = secrets.token_urlsafe(48)
    return Pkce(verifier, challenge_for(verifier))


@dataclass(frozen=True)
class Attempt:
    """What one login asked the provider for; the redirect and the ID token must match it."""

    redirect_uri: str
    state: str
    nonce: str
    pkce: Pkce


def new_attempt(port: int) -> Attempt:
    return Attempt(
        redirect_uri=f"http://{LOOPBACK}:{port}{REDIRECT_PATH}",
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        pkce=new_pkce(),
    )


def authorize_url(endpoint: str, settings: Settings, attempt: Attempt) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.client_id,
            "redirect_uri": attempt.redirect_uri,
            "scope": " ".join(settings.scopes),
            "state": attempt.state,
            "nonce": attempt.nonce,
            "code_challenge": attempt.pkce.challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def code_from_redirect(target: str, attempt: Attempt) -> str:
    """The code in the provider's redirect (``target`` is the request's path and query), or
    the provider's refusal in words. A redirect with another state is not this login's."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
    if params.get("state") != attempt.state:
        raise LoginError(
            "the redirect to the plugin carries another state than this login sent; "
            "log in again from the link this command printed last"
        )
    if "error" in params:
        description = params.get("error_description")
        raise LoginError(
            f"the provider refused the login: {params['error']}"
            + (f" ({description})" if description else "")
        )
    code = params.get("code")
    if not code:
        raise LoginError("the provider redirected back without a code")
    return code


def check_nonce(id_token: str, attempt: Attempt) -> None:
    """The ID token must answer this login (its nonce): the API server verifies the rest."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise LoginError(f"the provider's ID token is not a JWT: {exc}") from None
    if not isinstance(claims, dict) or claims.get("nonce") != attempt.nonce:
        raise LoginError("the provider's ID token does not carry this login's nonce")


class _Redirects(HTTPServer):
    """Serves the loopback redirect: the first request to the callback path settles the
    login, anything else (a favicon) gets a 404. The attempt is made once the socket is
    bound, so that with port 0 its redirect URI names the port the system gave."""

    def __init__(self, port: int, issuer: str) -> None:
        super().__init__((LOOPBACK, port), _Handler)
        self.attempt = new_attempt(self.port)
        self.issuer = issuer
        self.code: str | None = None
        self.error: LoginError | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Redirects

    def do_GET(self) -> None:
        server = self.server
        if urlsplit(self.path).path != REDIRECT_PATH or server.code or server.error:
            self._answer(404, "Not found.")
            return
        try:
            server.code = code_from_redirect(self.path, server.attempt)
        except LoginError as exc:
            server.error = exc
            self._answer(400, f"Login failed: {exc}.")
            return
        self._answer(
            200, f"Logged in at {server.issuer}. Close this tab and go back to the terminal."
        )

    def _answer(self, status: int, text: str) -> None:
        body = (
            f"<!doctype html><title>mothership oidc-login</title><p>{html.escape(text)}</p>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: stderr is the person's, and the URL holds the code."""


def login(
    client: Client,
    *,
    port: int,
    show_url: Callable[[str], None],
    timeout: float = LOGIN_TIMEOUT,
) -> Tokens:
    """Listen on the loopback, hand the person the authorization link, wait for the
    provider's redirect, and exchange its code (with the verifier) for tokens."""
    discovery = client.discovery()
    endpoint = discovery.get("authorization_endpoint")
    if not endpoint:
        raise LoginError(f"{client.settings.issuer} names no authorization endpoint")
    methods = discovery.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise LoginError(
            f"{client.settings.issuer} does not take PKCE with S256 "
            f"(it offers {', '.join(methods) or 'none'}); use the device flow"
        )
    try:
        server = _Redirects(port, client.settings.issuer)
    except OSError as exc:
        raise LoginError(
            f"cannot listen on {LOOPBACK}:{port} for the provider's redirect ({exc.strerror}); "
            "choose another --listen-port, or 0 for any"
        ) from None
    try:
        attempt = server.attempt
        show_url(authorize_url(str(endpoint), client.settings, attempt))
        deadline = time.monotonic() + timeout
        while server.code is None and server.error is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LoginError(f"the login was not completed within {timeout:.0f}s")
            server.timeout = min(left, 1.0)
            server.handle_request()
        if server.error is not None:
            raise server.error
        code = server.code
    finally:
        server.server_close()
    answer = client.form(
        str(discovery["token_endpoint"]),
        {
            "grant_type": CODE_GRANT,
            "code": str(code),
            "redirect_uri": attempt.redirect_uri,
            "code_verifier": attempt.pkce.verifier,
        },
    )
    body = json_body(answer)
    if answer.status_code != 200:
        raise LoginError(f"the provider would not exchange the code: {oauth_error(answer, body)}")
    token = body.get("id_token")
    if not token:
        raise LoginError("the provider sent no ID token; ask for the openid scope")
    check_nonce(str(token), attempt)
    return Tokens(str(token), str(body.get("refresh_token") or ""))
