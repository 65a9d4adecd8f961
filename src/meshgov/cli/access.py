"""`meshgov access`: what a principal may read, with masks, hidden columns and row filters.

The answer is the gateway's (``meshgov.access_overview``): the same decisions and rewrites that
``meshgov query`` enforces. stdout carries the listing (``--format json`` for tools).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from meshgov.cli._common import load_principal_file, reports_errors
from meshgov.errors import InputError

FORMATS = ("table", "json")


def register(app: typer.Typer) -> None:
    """Add ``access`` to the root app."""
    app.command("access")(access)


@reports_errors
def access(
    principal: Annotated[
        Path,
        typer.Option("--principal", help="Principal file (YAML/JSON).", show_default=False),
    ],
    catalog: Annotated[
        Path, typer.Option("--catalog", help="Directory of product manifests.")
    ] = Path("."),
    purpose: Annotated[
        str | None,
        typer.Option(
            "--purpose", help="Purpose of the reads (default: the principal file's `purpose`)."
        ),
    ] = None,
    policies: Annotated[
        Path | None,
        typer.Option("--policies", help="Policy directory (default: ./policies)."),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table | json.")] = "table",
) -> None:
    """List the products, ports and columns PRINCIPAL may read for a purpose."""
    from meshgov.access_overview import access_overview
    from meshgov.gateway import load_gateway

    if output_format not in FORMATS:
        raise InputError(f"--format {output_format!r}: use one of {', '.join(FORMATS)}")
    who = load_principal_file(principal)
    gateway = load_gateway(str(catalog), str(policies) if policies else None)
    overview = access_overview(gateway, who, purpose)
    if output_format == "json":
        typer.echo(overview.model_dump_json(indent=2))
        return
    typer.echo(
        f"{overview.principal} may read {len(overview.ports)} port(s) for purpose "
        f"{overview.purpose or '(none)'}; {overview.denied} other(s) denied "
        f"(policy {overview.policy_revision})"
    )
    for port in overview.ports:
        typer.echo(f"\n{port.product}:{port.port}  table {port.table}  v{port.version}")
        typer.echo(f"  rows: {port.row_filter or 'all'}")
        for column in port.columns:
            typer.echo(f"  {column.name:<24} {column.type:<10} {column.mask or ''}".rstrip())
        if port.hidden_columns:
            typer.echo(f"  hidden: {', '.join(port.hidden_columns)}")
    if overview.purposes:
        typer.echo(
            f"\npurposes with a grant for {overview.principal}: {', '.join(overview.purposes)}"
        )
    if overview.purpose is None:
        typer.echo("no purpose given: pass --purpose, or give the principal a default `purpose`")
