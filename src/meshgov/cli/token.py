"""`meshgov token`: make a token for a principal, with what the tokens file stores of it."""

from __future__ import annotations

import secrets

import typer
import yaml

from meshgov.cli._common import err_console, reports_errors


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("token")(token_command)


@reports_errors
def token_command(
    principal: str = typer.Argument(..., help="Principal id the token logs in as."),
    token: str | None = typer.Option(
        None, "--token", help="Use this token instead of a new random one (e.g. to rotate)."
    ),
) -> None:
    """Print a new token once, and the tokens-file entry that stores only its digests.

    The entry holds sha256 (bearer tokens over HTTP) and a SCRAM-SHA-256 verifier (PostgreSQL
    clients log in without sending the token). Add the principal's groups and attributes, then
    append the entry to the tokens file.
    """
    from meshgov.tokens import ScramVerifier, token_digest

    value = token or secrets.token_urlsafe(32)
    entry = {
        "sha256": token_digest(value),
        "scram": str(ScramVerifier.make(value)),
        "principal": {"id": principal, "groups": [], "attributes": {}},
    }
    err_console.print(f"token for {principal} (shown once, store it as a secret):", markup=False)
    typer.echo(value, err=True)
    # stdout carries only the entry (a YAML list item), so it can be appended to `tokens:`.
    document = yaml.safe_dump([entry], sort_keys=False, default_flow_style=None, width=200)
    typer.echo("".join("  " + line for line in document.splitlines(keepends=True)), nl=False)
