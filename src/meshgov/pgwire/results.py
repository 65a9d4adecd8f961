"""Sending results: DataRows (a batch at a time for data, row by row otherwise), Execute's
row limit (PortalSuspended), CommandComplete, and COPY TO STDOUT."""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from meshgov.pgwire import messages as m
from meshgov.pgwire.encoding import NULL_CELL, cell_length, copy_text, csv_field, in_binary
from meshgov.pgwire.errors import WireError
from meshgov.pgwire.queries import QueryRunner
from meshgov.pgwire.state import Result
from meshgov.pgwire.statements import Statement

BATCH_ROWS = 4096


class ResultSender(QueryRunner):
    """A result's rows, written as the client asks for them."""

    async def copy_out(self, statement: Statement, tree: exp.Expression) -> Result | None:
        result = await self.data_query(tree)
        try:
            await self._copy_out(statement, result)
        finally:
            await self.close_results([result])
        return None

    async def _copy_out(self, statement: Statement, result: Result) -> None:
        columns = len(result.fields)
        binary = statement.binary
        self.send(m.copy_out_response(binary, columns))
        assert result.encoders is not None
        encoders = result.encoders
        count = 0
        header = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
        csv = statement.options.get("format") == "csv"
        if csv and statement.options.get("header") == "true":
            self.send(
                m.copy_data(",".join(csv_field(f[0]) for f in result.fields).encode() + b"\n")
            )
        while rows := await self.take_rows(result, BATCH_ROWS):
            for row in rows:
                if binary:
                    cells = [
                        NULL_CELL if value is None else cell_length(enc[1](value)) + enc[1](value)
                        for value, enc in zip(row, encoders, strict=True)
                    ]
                    # The header travels in the same CopyData as the first row (ADBC needs it).
                    prefix = header if count == 0 else b""
                    self.send(m.copy_data(prefix + len(row).to_bytes(2, "big") + b"".join(cells)))
                elif csv:
                    line = ",".join(
                        "" if v is None else csv_field(enc[0](v).decode())
                        for v, enc in zip(row, encoders, strict=True)
                    )
                    self.send(m.copy_data(line.encode() + b"\n"))
                else:
                    line = "\t".join(
                        "\\N" if v is None else copy_text(enc[0](v).decode())
                        for v, enc in zip(row, encoders, strict=True)
                    )
                    self.send(m.copy_data(line.encode() + b"\n"))
                count += 1
            await self.flush_and_drain()
        if binary:
            self.send(m.copy_data((header if count == 0 else b"") + b"\xff\xff"))
        self.send(m.COPY_DONE)
        self.send(m.command_complete(f"COPY {count}"))

    async def send_rows(self, result: Result, formats: Sequence[int], max_rows: int | None) -> None:
        if result.tag == "fetch_done":
            return
        if not result.fields and result.tag not in {"FETCH"}:
            self.send(m.command_complete(result.tag))
            return
        width = len(result.fields)
        binary_columns = [m.format_of(formats, i) == 1 for i in range(width)]
        if result.streamed and result.encoders is not None:
            await self.send_data_rows(result, binary_columns, max_rows)
            return
        sent = 0
        # Catalogue rows come as PostgreSQL sent them (text); columns asked in binary are
        # converted (asyncpg asks binary for the types it knows, text for the others).
        convert = [binary != result.raw_binary for binary in binary_columns]
        if result.encoders is None and any(convert) and result.raw_binary:
            raise WireError("0A000", "text results of a binary catalogue query")
        oids = [field[1] for field in result.fields]
        for row in result.rows:
            if result.encoders is None:
                if any(convert):
                    row = [
                        in_binary(v, oid) if c else v
                        for v, oid, c in zip(row, oids, convert, strict=True)
                    ]
                self.send(m.data_row(row))
            else:
                self.send(
                    m.data_row(
                        None if value is None else enc[1 if binary else 0](value)
                        for value, enc, binary in zip(
                            row, result.encoders, binary_columns, strict=True
                        )
                    )
                )
            sent += 1
            result.sent += 1
            if sent % BATCH_ROWS == 0:
                await self.flush_and_drain()
            if max_rows is not None and sent >= max_rows:
                self.send(m.PORTAL_SUSPENDED)
                return
        tag = result.tag
        if tag in {"SELECT", "FETCH"}:
            tag = f"{tag} {result.sent if tag == 'SELECT' else sent}"
        self.send(m.command_complete(tag))

    async def send_data_rows(
        self, result: Result, binary_columns: list[bool], max_rows: int | None
    ) -> None:
        """A data result's rows, a batch at a time: read from the engine's stream, encoded a
        column at a time, written in one buffered write per batch, and drained before the next
        (memory: about a batch, whatever the size of the result)."""
        sent = 0
        pending = result.pending
        while max_rows is None or sent < max_rows:
            if not pending:
                messages = await self.next_messages(result, binary_columns)
                if not messages:
                    break
                pending.extend(messages)
            take = len(pending) if max_rows is None else min(len(pending), max_rows - sent)
            if take == len(pending):
                self.send(b"".join(pending))
                pending.clear()
            else:
                self.send(b"".join(pending.popleft() for _ in range(take)))
            sent += take
            if self.writer.transport.get_write_buffer_size() or len(self._out) > 2:
                await self.flush_and_drain()
        result.sent += sent
        if max_rows is not None and sent >= max_rows:
            self.send(m.PORTAL_SUSPENDED)
            return
        self._open.discard(result)
        self.send(m.command_complete(f"SELECT {result.sent}"))
