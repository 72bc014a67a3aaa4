"""The `mothership` command: one typer app, one sub-app per noun."""

from __future__ import annotations

import typer

from mothership.cli import bench, dev, operator, tools

app = typer.Typer(
    name="mothership",
    help="Hosted Kubernetes control planes (k0smotron-compatible), and a local mothership to "
    "run them in.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(dev.app, name="dev")
app.add_typer(tools.app, name="tools")
app.add_typer(operator.app, name="operator")
app.add_typer(bench.app, name="bench")


if __name__ == "__main__":
    app()
