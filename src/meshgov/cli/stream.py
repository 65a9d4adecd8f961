"""`meshgov stream serve`: relay events ports to governed subjects (filled in below)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Governed event streams (NATS JetStream).", no_args_is_help=True)
