"""The `mothership` command: one typer app, one sub-app per noun."""

from __future__ import annotations

import typer

from mothership.cli import bench, cluster, dev, install, oidc_login, operator, token, tools
from mothership.cli.errors import EXIT_CODES_HELP

app = typer.Typer(
    name="mothership",
    help="Hosted Kubernetes control planes (k0smotron-compatible), and a local mothership to "
    "run them in.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    epilog=EXIT_CODES_HELP,
)
app.add_typer(dev.app, name="dev")
app.add_typer(tools.app, name="tools")
app.add_typer(operator.app, name="operator")
app.add_typer(bench.app, name="bench")
app.add_typer(cluster.app, name="cluster")
app.add_typer(token.app, name="token")
install.register(app)
oidc_login.register(app)


if __name__ == "__main__":
    app()
