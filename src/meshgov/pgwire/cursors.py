"""SQL cursors: DECLARE, FETCH/MOVE and CLOSE over a query's result."""

from __future__ import annotations

from sqlglot import exp

from meshgov.pgwire import messages as m
from meshgov.pgwire.errors import WireError
from meshgov.pgwire.queries import QueryRunner
from meshgov.pgwire.state import Cursor, Prepared, Result
from meshgov.pgwire.statements import Statement


class CursorCommands(QueryRunner):
    """A session's DECLAREd cursors: results read a FETCH at a time."""

    async def declare(self, statement: Statement, prepared: Prepared, tree: exp.Expression) -> None:
        if prepared.catalogue:
            result = await self.catalogue_query(tree, binary=False)
        else:
            result = await self.data_query(tree)
        if statement.name in self.cursors:
            self.discard(self.cursors[statement.name].result)
        self.cursors[statement.name] = Cursor(result, statement.binary)
        self.send(m.command_complete("DECLARE CURSOR"))

    async def fetch(self, statement: Statement) -> Result:
        cursor = self.cursors.get(statement.name)
        if cursor is None:
            raise WireError("34000", f'cursor "{statement.name}" does not exist')
        source = cursor.result
        taken = await self.take_rows(source, statement.count)
        if statement.kind == "move":
            self.send(m.command_complete(f"MOVE {len(taken)}"))
            return Result([], iter(()), None, tag="fetch_done")
        return Result(source.fields, iter(taken), source.encoders, tag="FETCH",
                      raw_binary=source.raw_binary)  # fmt: skip

    def close_cursor(self, statement: Statement) -> None:
        if statement.name:
            closed = self.cursors.pop(statement.name, None)
            if closed is None:
                raise WireError("34000", f"cursor {statement.name!r} does not exist")
            self.discard(closed.result)
        else:
            self.discard_cursors()
        self.send(m.command_complete("CLOSE CURSOR" + ("" if statement.name else " ALL")))
