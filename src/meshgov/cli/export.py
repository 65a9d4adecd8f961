"""`meshgov export`: a port's snapshot as only what PRINCIPAL may see (Parquet, CSV, Arrow IPC).

Same decision as `meshgov query` (the gateway's, same policy), same masks (the same mesh key:
MESHGOV_HASH_KEY), rows outside the row filter and hidden columns absent. Exit codes: 0 ok,
2 invalid input, 3 access denied, 4 backend unavailable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from meshgov.cli._common import err_console, hash_key_of, load_principal_file, reports_errors


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@reports_errors
def export(
    port: Annotated[str, typer.Argument(help="PRODUCT:PORT, e.g. customer/customers:customers.")],
    catalog: Annotated[
        Path, typer.Option(help="Directory of product manifests (the mesh).", show_default=False)
    ],
    principal: Annotated[
        Path, typer.Option(help="Principal file (YAML/JSON: id, groups, domain, attributes).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write ('-' for stdout).")],
    purpose: Annotated[str | None, typer.Option(help="Purpose of the request.")] = None,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="parquet | csv | arrow (default: from the file name, parquet)."
        ),
    ] = None,
    policies: Annotated[
        Path | None, typer.Option(help="Policy directory (default: ./policies).")
    ] = None,
) -> None:
    """Write the rows and values PRINCIPAL may see of a port's snapshot; a denial exits 3."""
    from meshgov.catalog import load_catalog
    from meshgov.config import Settings
    from meshgov.errors import InputError, Location
    from meshgov.exports import ExportFormat, export_to, parse_export_format, plan_export
    from meshgov.gate import default_policies_dir
    from meshgov.gateway import Gateway
    from meshgov.governed import GovernedRunner, parse_port_ref
    from meshgov.policy_backends import load_bundle_dir
    from meshgov.store.decision_log import next_decision_id

    product, port_name = parse_port_ref(port)
    if output_format is not None:
        fmt = parse_export_format(output_format)
    else:
        by_suffix = {
            "csv": ExportFormat.csv,
            "arrow": ExportFormat.arrow,
            "arrows": ExportFormat.arrow,
        }
        fmt = by_suffix.get(output.suffix.lower().lstrip("."), ExportFormat.parquet)
    who = load_principal_file(principal)
    gateway = Gateway(load_catalog(catalog), load_bundle_dir(policies or default_policies_dir()))
    plan = plan_export(gateway, who, purpose, product, port_name, next_decision_id())
    runner = GovernedRunner(hash_key_of(Settings()))
    try:
        if str(output) == "-":
            rows = export_to(plan, runner, fmt, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            partial = output.with_name(output.name + ".partial")
            try:  # an output that cannot be written is the caller's to fix (exit 2), found early
                partial.touch()
            except OSError as exc:
                raise InputError(
                    f"cannot write the export: {exc.strerror or type(exc).__name__}",
                    Location(file=str(partial)),
                ) from None
            try:
                # A path, not a Python file object: pyarrow then writes it natively, without
                # the GIL, while the next batch is produced (see docs/benchmarks.md).
                rows = export_to(plan, runner, fmt, partial)
            except BaseException:
                partial.unlink(missing_ok=True)  # no half-written file left behind
                raise
            partial.replace(output)  # never a half-written export under the final name
    finally:
        runner.close()
    meta = plan.metadata()
    err_console.print(
        f"[dim]{rows} row(s) of {product}:{port_name} v{meta['meshgov.product_version']} "
        f"as {fmt.value}; decision {meta['meshgov.decision_id']}, policy revision "
        f"{meta['meshgov.policy_revision'][:12]}[/]",
        markup=True,
    )
