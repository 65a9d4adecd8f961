"""The ``meshgov`` command line. Each command group lives in its own module here.

Exit codes: 0 ok, 1 violations, 2 invalid input or usage, 3 access denied, 4 backend unavailable.
Heavy modules (regopy, sqlglot, duckdb, pyarrow, fastapi) are imported inside commands so that a
cold ``meshgov check`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from meshgov.cli import (
    access,
    check,
    export,
    graph,
    policy,
    query,
    rewrite,
    serve,
    spark,
    stream,
    token,
)

app = typer.Typer(
    name="meshgov",
    help="Federated governance for a data mesh: release gate, read-time enforcement, entity graph.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from meshgov import __version__

        typer.echo(f"meshgov {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print meshgov's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Federated governance for a data mesh: release gate, read-time enforcement, entity graph."""


check.register(app)
query.register(app)
access.register(app)
rewrite.register(app)
export.register(app)
app.add_typer(graph.app, name="graph")
app.add_typer(policy.app, name="policy")
serve.register(app)
token.register(app)
app.add_typer(stream.app, name="stream")
app.add_typer(spark.app, name="spark")


def main() -> None:
    """Console entry point: usage errors exit 2 (click's default), as the contract says."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
