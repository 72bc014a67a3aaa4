"""The `mothership` command: one typer app, one sub-app per noun.

The operator's own process starts through here too (`mothership operator run`, in its pod and
beside a local mothership), and it is a long-lived server whose memory is measured: for that
noun only its sub-app is built, so the process never imports the rest of the CLI (the local
mothership, the benches, the installer: about 5 MiB of its resident memory).
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from mothership.cli.errors import EXIT_CODES_HELP


def build(only: str | None = None) -> typer.Typer:
    """The app with every noun, or with the noun `only` alone."""
    app = typer.Typer(
        name="mothership",
        help="Hosted Kubernetes control planes (k0smotron-compatible), and a local mothership "
        "to run them in.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        epilog=EXIT_CODES_HELP,
    )
    if only == "operator":
        from mothership.cli import operator

        app.add_typer(operator.app, name="operator")
        return app
    from mothership.cli import bench, cluster, dev, install, oidc_login, operator, token, tools

    app.add_typer(dev.app, name="dev")
    app.add_typer(tools.app, name="tools")
    app.add_typer(operator.app, name="operator")
    app.add_typer(bench.app, name="bench")
    app.add_typer(cluster.app, name="cluster")
    app.add_typer(token.app, name="token")
    install.register(app)
    oidc_login.register(app)
    return app


def main() -> Any:
    """The console script."""
    only = "operator" if sys.argv[1:2] == ["operator"] else None
    return build(only)()


def __getattr__(name: str) -> Any:
    """`app`, the whole CLI, built on first use (docs, tests and help read it)."""
    if name == "app":
        app = globals()["app"] = build()
        return app
    raise AttributeError(name)


if __name__ == "__main__":
    main()
