"""`meshgov spark …`: what a Spark Connect server needs to run meshgov's queries safely."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from meshgov.cli._common import err_console, reports_errors

app = typer.Typer(help="Spark engine helpers (the guard jar of a Spark Connect server).")


@app.command("guard-jar")
@reports_errors
def guard_jar(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Directory the jar is written to (created if absent)."),
    ],
) -> None:
    """Build meshgov's guard extension for Spark with the JDK's javac against pyspark's jars.

    Prints the jar's path on stdout. Start the Connect server with ``--jars <jar> --conf
    spark.sql.extensions=meshgov.spark.MeshgovGuardExtension`` (docs/deploy.md "Spark").
    """
    from meshgov.engines.spark_guard import GUARD_CLASS, build_guard_jar

    jar = build_guard_jar(output)
    err_console.print(f"guard extension {GUARD_CLASS}:", markup=False)
    typer.echo(str(jar))
