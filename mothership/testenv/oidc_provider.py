"""A real OpenID Connect provider for the identity tests, run on the host.

zitadel/oidc's example provider (built by `mothership tools install` from a main of ours,
see :mod:`.oidc_provider_main`) with users and groups from a config file, over TLS with a CA
made here, so a tenant's API server in a pod can trust it as it would a company's identity
provider. :func:`approve_device` is the person at the browser: it opens the verification page,
logs in with the user's password and allows the request, through the provider's own forms;
:func:`log_in_at` does the same for the browser login's link.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

from mothership.pki import certs
from mothership.testenv import kube, paths, ports
from mothership.testenv.pins import oidc_provider_family


@dataclass(frozen=True)
class User:
    username: str
    password: str
    email: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class OidcClient:
    """A client of the provider: the device flow, or with redirect URIs the code flow with
    PKCE and no secret (a native client: any port on a loopback redirect); the refresh grant
    and the ID tokens' lifetime (0: the library's hour) as given."""

    id: str
    secret: str
    refresh: bool = True
    id_token_seconds: int = 0
    redirect_uris: tuple[str, ...] = ()


@dataclass
class Provider:
    issuer: str
    ca_pem: str
    clients: tuple[OidcClient, ...]
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def client_id(self) -> str:
        return self.clients[0].id

    @property
    def client_secret(self) -> str:
        return self.clients[0].secret

    def http(self) -> httpx.Client:
        """A client that trusts the provider's CA and keeps cookies, as a browser would."""
        trust = ssl.create_default_context(cadata=self.ca_pem)
        return httpx.Client(verify=trust, timeout=10, follow_redirects=True, trust_env=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _account(user: User) -> dict[str, object]:
    # The provider names the user by its ID in the device flow: the two are the same here.
    return {"id": user.username, "username": user.username, "password": user.password,
            "email": user.email, "groups": list(user.groups)}  # fmt: skip


def binary() -> Path:
    return paths.tool_bin_dir(oidc_provider_family()) / "oidc-provider"


def start(
    base_dir: Path,
    host: str,
    users: list[User],
    clients: tuple[OidcClient, ...] = (OidcClient("kubernetes", "kubernetes-secret"),),
) -> Provider:
    """Start the provider on ``host`` (an address pods can reach) and wait for discovery."""
    base_dir.mkdir(parents=True, exist_ok=True)
    port = ports.free_ports(["oidc"], host)["oidc"]
    issuer = f"https://{host}:{port}"
    ca = certs.new_ca("mothership-test-oidc")
    leaf = certs.issue_cert(ca, "oidc-provider", ip_addresses=[host], server=True)
    (base_dir / "tls.crt").write_bytes(leaf.cert_pem)
    (base_dir / "tls.key").write_bytes(leaf.key_pem)
    config = {
        "issuer": issuer,
        "listen": f"{host}:{port}",
        "cert": str(base_dir / "tls.crt"),
        "key": str(base_dir / "tls.key"),
        "clients": [
            {
                "id": c.id,
                "secret": c.secret,
                "refresh": c.refresh,
                "idTokenSeconds": c.id_token_seconds,
                "redirectURIs": list(c.redirect_uris),
            }
            for c in clients
        ],
        "users": [_account(u) for u in users],
    }
    (base_dir / "config.json").write_text(json.dumps(config, indent=2))
    log = base_dir / "oidc-provider.log"
    process = subprocess.Popen(
        [str(binary()), "-config", str(base_dir / "config.json")],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    provider = Provider(issuer, ca.cert_pem.decode(), clients, log, process)

    def serving() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"oidc-provider exited: {log.read_text()[-2000:]}")
        with provider.http() as client:
            found = client.get(f"{issuer}/.well-known/openid-configuration").json()
        return bool(found.get("issuer") == issuer)

    try:
        kube.wait_until("the OpenID provider serving its discovery document", serving, 30)
    except BaseException:
        provider.stop()
        raise
    return provider


def approve_device(provider: Provider, verification_uri: str, user_code: str, user: User) -> None:
    """What the user does in the browser: the login form of the verification page, then
    "allow". Raises with the page's words when the provider refuses."""
    with provider.http() as browser:
        page = browser.get(verification_uri, params={"user_code": user_code})
        page.raise_for_status()
        login = browser.post(
            f"{provider.issuer}/device/login",
            data={"user_code": user_code, "username": user.username, "password": user.password},
        )
        login.raise_for_status()
        if "confirm?action=allowed" not in login.text:
            raise RuntimeError(f"login refused: {_words(login.text)}")
        allowed = browser.get(f"{provider.issuer}/device/confirm", params={"action": "allowed"})
        allowed.raise_for_status()
        if "allowed" not in allowed.text.lower():
            raise RuntimeError(f"not allowed: {_words(allowed.text)}")


def log_in_at(provider: Provider, url: str, user: User) -> str:
    """What the user does with the browser login's link: the provider's login form, whose
    answer sends the browser back to the plugin's loopback address with the code. Returns
    the plugin's page; raises with the provider's words when it refuses."""
    with provider.http() as browser:
        page = browser.get(url)
        page.raise_for_status()
        found = re.search(r'name="id" value="([^"]+)"', page.text)
        if found is None:
            raise RuntimeError(f"no login form at {page.url}: {_words(page.text)}")
        landed = browser.post(
            f"{provider.issuer}/login/username",
            data={"id": found[1], "username": user.username, "password": user.password},
        )
        if landed.url.host != "127.0.0.1":
            raise RuntimeError(f"login refused: {_words(landed.text)}")
        landed.raise_for_status()
        return _words(landed.text)


def _words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())[:300]
