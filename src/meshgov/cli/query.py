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

from meshgov.cli._common import (
    PolicyEngineOption,
    err_console,
    hash_key_of,
    load_principal_file,
    policy_engine,
    reports_errors,
)

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
        str,
        typer.Option(
            help="'duckdb' (embedded, default), 'postgresql://…' (loaded), 'spark'/'local[N]'/"
            "'spark://host:7077' (loads the snapshots) or 'sc://host:15002' (Spark Connect, "
            "loaded)."
        ),
    ] = "duckdb",
    policies: Annotated[
        Path | None, typer.Option(help="Policy directory (default: ./policies).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table | csv | json | arrow (IPC stream).")
    ] = "table",
    rego_engine: PolicyEngineOption = "auto",
) -> None:
    """Run SQL as PRINCIPAL: masked columns, filtered rows; a denial exits 3 naming what and why."""
    from meshgov.config import Settings
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
    gateway = _gateway(mesh, policies, rego_engine)
    query_engine = _open_engine(engine, mesh, hash_key_of(Settings()))
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
        str,
        typer.Option(
            help="postgresql://… database, or a Spark engine (sc://host:15002, spark://…) whose "
            "session catalogue gets the tables."
        ),
    ],
) -> None:
    """Create a schema and table per table port and load its snapshot where the engine reads it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from meshgov.config import Settings
    from meshgov.engines.base import engine_kind
    from meshgov.errors import InputError

    kind = engine_kind(engine)
    if kind == "duckdb":
        raise InputError(
            "`meshgov load` needs --engine postgresql://… or a Spark engine (DuckDB loads on query)"
        )
    if kind == "spark":
        _load_spark(_load_catalog(catalog), engine, Settings().hash_key())
        return
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


def _load_spark(mesh: Catalog, url: str, hash_key: bytes) -> None:
    from meshgov.engines import spark

    def loaded(source: PortSource, rows: int) -> None:
        table = ".".join(spark.spark_parts(source))
        err_console.print(f"{table}: {rows} rows ({source.manifest.id}:{source.port.name})")

    sources = spark.load(mesh, url, hash_key, on_loaded=loaded)
    err_console.print(f"[green]loaded[/] {len(sources)} table(s) into the Spark session catalogue")


def _load_catalog(path: Path) -> Catalog:
    from meshgov.catalog import load_catalog

    return load_catalog(path)


def _gateway(mesh: Catalog, policies: Path | None, engine: str = "embedded") -> Authorizer:
    from meshgov.gate import default_policies_dir
    from meshgov.gateway import Gateway
    from meshgov.policy_backends import load_bundle_dir

    bundle = load_bundle_dir(policies or default_policies_dir())
    return Gateway(mesh, bundle, policy_engine(engine))


def _open_engine(url: str, mesh: Catalog, hash_key: bytes) -> QueryEngine:
    from meshgov.config import Settings
    from meshgov.engines.base import engine_kind, open_engine
    from meshgov.limits import ResultLimits

    # The service's result caps and engine limits, from the same MESHGOV_* variables.
    limits = ResultLimits.from_settings(Settings())
    if engine_kind(url) in {"postgresql", "spark"}:
        return open_engine(url, mesh, hash_key, limits=limits)
    from meshgov.engines.duckdb import DuckDBEngine

    # The snapshots' schemas are checked here; a port's rows are loaded when the query reads it.
    return DuckDBEngine.from_catalog(mesh, hash_key, limits=limits)
