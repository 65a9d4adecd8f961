"""`meshgov rewrite`: print the secure SQL and the decision for one query, without running it.

stdout carries ``{"allowed", "sql", "decision"}`` as JSON (also on a denial); a denial also prints
one line on stderr naming what and why, and exits 3. Invalid input (unparseable SQL, an unknown
``--dialect`` or ``--to``) exits 2, policy faults 4.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from meshgov.cli._common import (
    EXIT_DENIED,
    EXIT_INVALID,
    PolicyEngineOption,
    err_console,
    policy_engine,
    reports_errors,
)
from meshgov.errors import Location, PrincipalError


def register(app: typer.Typer) -> None:
    """Add ``rewrite`` to the root app."""
    app.command("rewrite")(rewrite)


@reports_errors
def rewrite(
    sql: Annotated[
        str,
        typer.Argument(help="One read-only SQL query; '-' reads stdin.", show_default=False),
    ],
    catalog: Annotated[
        Path, typer.Option("--catalog", help="Directory of product manifests.", show_default=False)
    ],
    principal: Annotated[
        Path,
        typer.Option("--principal", help="Principal file (YAML/JSON).", show_default=False),
    ],
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="Purpose of the request.")
    ] = None,
    dialect: Annotated[
        str,
        typer.Option(
            "--dialect", help="Dialect of SQL (an unknown one exits 2, naming the supported ones)."
        ),
    ] = "duckdb",
    to: Annotated[
        str | None, typer.Option("--to", help="Dialect to generate (default: --dialect).")
    ] = None,
    policies: Annotated[
        Path | None,
        typer.Option("--policies", help="Policy directory (default: ./policies)."),
    ] = None,
    engine: PolicyEngineOption = "auto",
) -> None:
    """Print the secure SQL a query becomes for a principal, and the access decision."""
    from rich.markup import escape

    from meshgov.core.principal import parse_principal
    from meshgov.core.yaml_source import decode_text
    from meshgov.gateway import load_gateway, sql_dialect

    # An unknown dialect is a usage error (exit 2) naming the option, before any work.
    sql_dialect(dialect, "--dialect")
    if to is not None:
        sql_dialect(to, "--to")
    try:
        raw = principal.read_bytes()
    except OSError as exc:
        raise PrincipalError(
            f"cannot read principal file: {exc.strerror}", Location(file=str(principal))
        ) from None
    who = parse_principal(decode_text(raw, str(principal)), str(principal))
    if sql == "-":
        sql = sys.stdin.read()
    gateway = load_gateway(str(catalog), str(policies) if policies else None, policy_engine(engine))
    authorization = gateway.authorize(sql, who, purpose, dialect, to or dialect)
    typer.echo(json.dumps(authorization.as_dict(), indent=2))
    if not authorization.allowed:
        # Invalid input (unparseable SQL, unknown dialect) exits 2; a denial exits 3.
        invalid = authorization.invalid_input
        err_console.print(
            f"[bold red]{'invalid' if invalid else 'denied'}[/] "
            f"[dim]{authorization.code}[/] {escape(authorization.reason or 'access denied')}",
            markup=True,
        )
        raise typer.Exit(EXIT_INVALID if invalid else EXIT_DENIED)
