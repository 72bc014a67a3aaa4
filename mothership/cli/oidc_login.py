"""`mothership oidc-login`: the credential plugin of kubeconfigs made with `--oidc`."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import sys
import webbrowser

import typer
from rich.console import Console

from mothership.cli.errors import CliError, InvalidInput, friendly_errors
from mothership.cli.oidc_settings import check_flow
from mothership.identity import browser_login, device_login

# stdout is kubectl's to read (the ExecCredential); the person reads stderr.
console = Console(stderr=True, soft_wrap=True)

EPILOG = """\
kubectl runs this command itself, from a kubeconfig written by
`mothership cluster kubeconfig NAME --oidc`; the first kubectl command prints a link and a
code to open in a browser (--flow device), or a link to log in at that comes back to this
command on 127.0.0.1 (--flow browser: the authorization-code flow with PKCE, for clients
registered with a loopback redirect URI http://127.0.0.1/callback; it opens the desktop's
browser when there is one), later ones reuse the cached ID token until it expires, then renew
it with the provider's refresh token when it gave one (scope offline_access), and ask for a
login only when the provider refuses
(cache: $XDG_CACHE_HOME/mothership/oidc, else ~/.cache/mothership/oidc).

Example (what the kubeconfig runs):
  mothership oidc-login --issuer https://idp.example.com --client-id kubernetes
  mothership oidc-login --issuer https://idp.example.com --client-id kubectl --flow browser
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
    flow: str = typer.Option(
        "device",
        "--flow",
        help="How a new login happens: device (a link and a code) or browser (the "
        "authorization-code flow with PKCE on a loopback redirect).",
    ),
    listen_port: int = typer.Option(
        0,
        "--listen-port",
        help="With --flow browser: the loopback port of the redirect (0: any free one; give "
        "one when the provider wants the exact redirect URI registered).",
    ),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="With --flow browser: print the link only."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Log in again; ignore the cached tokens."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Log in at an OpenID Connect provider (device or browser flow) and hand kubectl the ID
    token."""
    with friendly_errors(debug):
        check_flow(flow, listen_port, flow_flag="--flow", port_flag="--listen-port")
        try:
            ca_pem = base64.b64decode(ca_data, validate=True).decode() if ca_data else ""
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidInput("--ca-data: not base64 of a PEM CA bundle") from None
        settings = device_login.Settings(
            issuer, client_id, client_secret, ca_pem, flow=flow, listen_port=listen_port
        )

        def show_code(code: device_login.DeviceCode) -> None:
            console.print(
                f"To log in to {issuer}, open {code.verification_uri_complete}\n"
                f"(or {code.verification_uri} and enter the code {code.user_code})",
                highlight=False,
                markup=False,
            )

        def show_url(url: str) -> None:
            console.print(f"To log in to {issuer}, open {url}", highlight=False, markup=False)
            if not no_browser:
                open_browser(url)

        def notice(text: str) -> None:
            console.print(text, highlight=False, markup=False)

        login = (
            device_login.device_flow(show_code)
            if flow == "device"
            else lambda client: browser_login.login(client, port=listen_port, show_url=show_url)
        )
        try:
            token = device_login.obtain(
                settings, use_cache=not no_cache, login=login, notice=notice
            )
        except device_login.LoginError as exc:
            raise CliError(str(exc)) from None
        sys.stdout.write(json.dumps(device_login.exec_credential(token)) + "\n")


def open_browser(url: str) -> None:
    """The desktop's browser, when there is a desktop: over SSH or in a container, Python's
    webbrowser would fall back to a text browser in the terminal kubectl is using."""
    if sys.platform != "darwin" and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return
    with contextlib.suppress(webbrowser.Error):  # the link is printed
        webbrowser.open(url, new=2)
