"""`meshgov query` over the example mesh as one of its principals, for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from meshgov.cli import app

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"


def invoke_query(principal: str, sql: str, *extra: str) -> Result:
    """Run ``meshgov query`` as ``examples/mesh/principals/<principal>.yaml`` for analytics."""
    return CliRunner().invoke(
        app,
        [
            "query",
            "--catalog",
            str(MESH),
            "--principal",
            str(MESH / "principals" / f"{principal}.yaml"),
            "--purpose",
            "analytics",
            "--policies",
            str(ROOT / "policies"),
            *extra,
            sql,
        ],
    )
