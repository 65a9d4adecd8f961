"""Session commands answered from the session without touching data: BEGIN/COMMIT/ROLLBACK,
SAVEPOINT, SET/RESET/SHOW, DISCARD, DEALLOCATE."""

from __future__ import annotations

from typing import Any

from meshgov.pgwire import messages as m
from meshgov.pgwire.connection import Connection
from meshgov.pgwire.encoding import str_encode
from meshgov.pgwire.errors import WireError
from meshgov.pgwire.state import Result
from meshgov.pgwire.statements import Statement
from meshgov.pgwire.types import TEXT


class SessionCommands(Connection):
    """The transaction state and settings of a session."""

    def session_command(self, statement: Statement) -> None:
        kind = statement.kind
        state = self.state
        if kind == "begin":
            state.transaction = b"T"
            tag = "BEGIN"
        elif kind in {"commit", "rollback"}:
            if kind == "rollback" and statement.name == "TO":
                state.transaction = b"T" if state.transaction != b"I" else b"I"
            else:
                state.transaction = b"I"
                self.discard_cursors()
            tag = "COMMIT" if kind == "commit" else "ROLLBACK"
        elif kind in {"savepoint", "release"}:
            tag = kind.upper()
        elif kind == "set":
            if statement.name != "transaction":
                self.set_setting(statement.name, statement.value)
            tag = "SET"
        elif kind == "reset":
            name = statement.name
            if name == "all":
                state.settings = dict(self.listener.default_settings)
            elif name in self.listener.default_settings:
                state.settings[name] = self.listener.default_settings[name]
            tag = "RESET"
        elif kind == "discard":
            self.statements = {k: v for k, v in self.statements.items() if not k}
            self.discard_cursors()
            tag = "DISCARD " + (statement.name or "ALL")
        elif kind == "deallocate":
            if statement.name.upper() == "ALL":
                self.statements = {k: v for k, v in self.statements.items() if not k}
            else:
                self.statements.pop(statement.name, None)
            tag = "DEALLOCATE" + (" ALL" if statement.name.upper() == "ALL" else "")
        else:
            raise WireError("0A000", f"{kind.upper()} is not supported")
        self.send(m.command_complete(tag))

    def set_setting(self, name: str, value: str) -> None:
        text = value.strip().strip("'")
        if name == "statement_timeout":
            try:
                milliseconds = parse_duration_ms(text)
            except ValueError:
                raise WireError("22023", f"invalid value for statement_timeout: {text!r}") from None
            text = str(milliseconds)
        if name == "standard_conforming_strings" and text.lower() not in {"on", "true"}:
            raise WireError("0A000", "standard_conforming_strings must stay on")
        if name == "client_encoding" and text.upper().replace("-", "") not in {"UTF8", "UNICODE"}:
            raise WireError("0A000", "meshgov speaks UTF8 only")
        self.state.settings[name] = text
        if name in {"application_name", "timezone", "datestyle", "intervalstyle",
                    "client_encoding", "standard_conforming_strings"}:  # fmt: skip
            self.send(m.parameter_status(reported_name(name), text))

    def show(self, name: str) -> Result:
        key = name.lower().replace(" ", "_")
        if key == "transaction_isolation_level":
            key = "transaction_isolation"
        if key == "all":
            rows: list[list[Any]] = [[k, v] for k, v in sorted(self.state.settings.items())]
            return Result(
                [("name", TEXT, -1), ("setting", TEXT, -1)],
                iter(rows),
                [(str_encode, str_encode)] * 2,
                tag="SHOW",
            )
        if key not in self.state.settings:
            raise WireError("42704", f'unrecognized configuration parameter "{name}"')
        return Result(
            [(key, TEXT, -1)],
            iter([[self.state.settings[key]]]),
            [(str_encode, str_encode)],
            tag="SHOW",
        )


def reported_name(name: str) -> str:
    return {"timezone": "TimeZone", "datestyle": "DateStyle", "intervalstyle": "IntervalStyle"}.get(
        name, name
    )


def parse_duration_ms(text: str) -> int:
    """``5000``, ``'5s'``, ``'2min'`` → milliseconds (PostgreSQL's units)."""
    value = text.strip().lower()
    units = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            return int(float(value[: -len(unit)].strip()) * units[unit])
    return int(value)
