"""Errors for the client: a SQLSTATE and a message (PostgreSQL's codes for meshgov's errors)."""

from __future__ import annotations

from meshgov.errors import MeshgovError

# The SQLSTATE of each meshgov error code; anything else is an internal error (XX000).
SQLSTATES = {
    "access_denied": "42501",
    "unsupported_sql": "0A000",
    "invalid_sql": "42601",
    "invalid_dialect": "42601",
    "invalid_input": "22023",
    "query_failed": "42000",
    "policy_error": "XX000",
    "evaluation_error": "XX000",
    "backend_unavailable": "08006",
    "snapshot_unavailable": "58030",
    "result_too_large": "54000",
    "limit_exceeded": "53200",
    "time_budget_exceeded": "57014",
    "request_too_large": "54000",
}


class WireError(Exception):
    """An error for the client: SQLSTATE and message (never an engine's own text)."""

    def __init__(self, sqlstate: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.hint = hint


def wire_error(exc: MeshgovError) -> WireError:
    sqlstate = SQLSTATES.get(exc.code, "XX000")
    if exc.code == "query_failed":
        kind = getattr(exc, "kind", "")
        sqlstate = {
            "timeout": "57014",
            "unknown name": "42703",
            "type error": "42804",
            "division by zero": "22012",
            "conversion": "22P02",
            "cancelled": "57014",
        }.get(kind, "42000")
    # Unknown names are refusals of the gateway (it never lets the engine resolve a name);
    # clients and tools expect PostgreSQL's own codes for them.
    if exc.code in {"unsupported_sql", "access_denied"}:
        if exc.message.startswith("unknown table"):
            sqlstate = "42P01"
        elif exc.message.startswith("column ") and "does not exist" in exc.message:
            sqlstate = "42703"
    return WireError(sqlstate, exc.message)
