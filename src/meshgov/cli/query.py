"""`meshgov query` (run SQL through the gateway) and `meshgov load` (snapshots into PostgreSQL).

stdout carries only the result (``--format arrow`` writes Arrow IPC stream bytes); every message
goes to stderr. Exit codes: 0 ok, 2 invalid input (unparseable SQL, an unknown ``--dialect``),
3 access denied, 4 engine unavailable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from meshgov.cli._common import err_console, load_principal_file, reports_errors

if TYPE_CHECKING:
    from meshgov.catalog import Catalog
    from meshgov.engines.base import PortSource, QueryEngine
    from meshgov.execution import Authorizer

FORMATS = ("table", "csv", "json", "arrow")


def register(app: typer.Typer) -> None:
    """Add ``query`` and ``load`` to the root app."""
    app.command("query")(query)
    app.command("load")(load)


@reports_errors
def query(
    sql: Annotated[str, typer.Argument(help="One SQL query (SELECT / WITH / set operation).")],
    catalog: Annotated[
        Path, typer.Option(help="Directory of product manifests (the mesh).", show_default=False)
    ],
    principal: Annotated[
        Path, typer.Option(help="Principal file (YAML/JSON: id, groups, domain, attributes).")
    ],
    purpose: Annotated[str | None, typer.Option(help="Purpose of the request.")] = None,
    dialect: Annotated[
        str | None,
        typer.Option(
            help="Dialect the SQL is written in (default: the engine's; an unknown one exits 2)."
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option(help="'duckdb' (embedded, default) or 'postgresql://…' (loaded).")
    ] = "duckdb",
    policies: Annotated[
        Path | None, typer.Option(help="Policy directory (default: ./policies).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table | csv | json | arrow (IPC stream).")
    ] = "table",
) -> None:
    """Run SQL as PRINCIPAL: masked columns, filtered rows; a denial exits 3 naming what and why."""
    from meshgov.config import DEVELOPMENT_KEY_WARNING, Settings
    from meshgov.engines.base import engine_kind
    from meshgov.execution import execute_query, parse_format
    from meshgov.gateway import sql_dialect
    from meshgov.results import serialize

    result_format = parse_format(output_format)
    engine_kind(engine)  # an unknown engine is a usage error, before any work
    if dialect is not None:
        sql_dialect(dialect, "--dialect")  # so is an unknown dialect (exit 2, never a denial)
    mesh = _load_catalog(catalog)
    who = load_principal_file(principal)
    gateway = _gateway(mesh, policies)
    settings = Settings()
    if settings.configured_hash_key() is None:
        err_console.print(f"[yellow]warning[/] {DEVELOPMENT_KEY_WARNING}")
    query_engine = _open_engine(engine, mesh, settings.hash_key())
    try:
        result = execute_query(gateway, query_engine, sql, who, purpose, dialect)
    finally:
        query_engine.close()
    payload = serialize(result.table, result_format)
    sys.stdout.buffer.write(payload)
    sys.stdout.buffer.flush()
    err_console.print(
        f"[dim]{result.table.num_rows} row(s) from {result.engine} in {result.elapsed_ms:.0f} ms[/]"
    )


@reports_errors
def load(
    catalog: Annotated[
        Path, typer.Option(help="Directory of product manifests (the mesh).", show_default=False)
    ],
    engine: Annotated[
        str, typer.Option(help="postgresql://… database to create the schemas and tables in.")
    ],
) -> None:
    """Create a schema and table per table port and load its snapshot; lock the database down."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from meshgov.config import Settings
    from meshgov.errors import InputError

    if not engine.startswith(("postgresql://", "postgres://")):
        raise InputError("`meshgov load` needs --engine postgresql://… (DuckDB loads on query)")
    from meshgov.engines import postgres

    mesh = _load_catalog(catalog)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("loading snapshots", total=None)

        def started(sources: list[PortSource]) -> None:
            progress.update(task, total=len(sources))

        def loaded(source: PortSource, rows: int) -> None:
            progress.update(task, advance=1, description=f"loaded {source.physical.table}")
            _ = rows

        ports = postgres.load(
            mesh, engine, Settings().hash_key(), on_start=started, on_loaded=loaded
        )
    for port in ports:
        err_console.print(f"{port.table}: {port.rows} rows ({port.product}:{port.port})")
    err_console.print(f"[green]loaded[/] {len(ports)} table(s); queries run as a read-only role")


def _load_catalog(path: Path) -> Catalog:
    from meshgov.catalog import load_catalog

    return load_catalog(path)


def _gateway(mesh: Catalog, policies: Path | None) -> Authorizer:
    from meshgov.gate import default_policies_dir
    from meshgov.gateway import Gateway
    from meshgov.policy_backends import load_bundle_dir

    bundle = load_bundle_dir(policies or default_policies_dir())
    return Gateway(mesh, bundle)


def _open_engine(url: str, mesh: Catalog, hash_key: bytes) -> QueryEngine:
    from meshgov.engines.base import engine_kind, open_engine

    if engine_kind(url) == "postgresql":
        return open_engine(url, mesh, hash_key)
    from rich.progress import Progress

    from meshgov.engines.duckdb import DuckDBEngine

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("loading snapshots into DuckDB", total=None)
        return DuckDBEngine.from_catalog(
            mesh, hash_key, on_loaded=lambda _source, _rows: progress.advance(task)
        )
