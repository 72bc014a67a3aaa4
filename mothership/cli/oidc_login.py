"""`mothership oidc-login`: the credential plugin of kubeconfigs made with `--oidc`."""

from __future__ import annotations

import base64
import binascii
import json
import sys

import typer
from rich.console import Console

from mothership.cli.errors import CliError, InvalidInput, friendly_errors
from mothership.identity import device_login

# stdout is kubectl's to read (the ExecCredential); the person reads stderr.
console = Console(stderr=True, soft_wrap=True)

EPILOG = """\
kubectl runs this command itself, from a kubeconfig written by
`mothership cluster kubeconfig NAME --oidc`; the first kubectl command prints a link and a
code to open in a browser, later ones reuse the cached ID token until it expires, then renew
it with the provider's refresh token when it gave one (scope offline_access), and ask for a
login only when the provider refuses
(cache: $XDG_CACHE_HOME/mothership/oidc, else ~/.cache/mothership/oidc).

Example (what the kubeconfig runs):
  mothership oidc-login --issuer https://idp.example.com --client-id kubernetes
"""


def register(app: typer.Typer) -> None:
    app.command("oidc-login", epilog=EPILOG)(oidc_login)


def oidc_login(
    issuer: str = typer.Option(..., "--issuer", help="The identity provider's issuer URL."),
    client_id: str = typer.Option(..., "--client-id", help="The client users log in with."),
    client_secret: str = typer.Option(
        "", "--client-secret", help="The client's secret, for providers that require one."
    ),
    ca_data: str = typer.Option(
        "", "--ca-data", help="Base64 PEM CA of the provider's TLS (default: system roots)."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Log in again; ignore the cached tokens."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Log in at an OpenID Connect provider (device flow) and hand kubectl the ID token."""
    with friendly_errors(debug):
        try:
            ca_pem = base64.b64decode(ca_data, validate=True).decode() if ca_data else ""
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidInput("--ca-data: not base64 of a PEM CA bundle") from None
        settings = device_login.Settings(issuer, client_id, client_secret, ca_pem)

        def show_code(code: device_login.DeviceCode) -> None:
            console.print(
                f"To log in to {issuer}, open {code.verification_uri_complete}\n"
                f"(or {code.verification_uri} and enter the code {code.user_code})",
                highlight=False,
                markup=False,
            )

        def notice(text: str) -> None:
            console.print(text, highlight=False, markup=False)

        try:
            token = device_login.obtain(
                settings, use_cache=not no_cache, show_code=show_code, notice=notice
            )
        except device_login.LoginError as exc:
            raise CliError(str(exc)) from None
        sys.stdout.write(json.dumps(device_login.exec_credential(token)) + "\n")
