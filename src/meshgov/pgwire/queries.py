"""Running queries: data queries through the service (streamed a batch at a time), and
introspection on the governed catalogue."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import pyarrow as pa
from sqlglot import exp

from meshgov.engines.base import CancelScope, ResultStream
from meshgov.pgwire.catalogue import (
    CatalogueRefused,
    VisibleCatalogue,
    VisibleTable,
    pg_type_name,
    rewrite_catalogue_query,
)
from meshgov.pgwire.connection import Connection
from meshgov.pgwire.encoding import batch_rows, encode_batch
from meshgov.pgwire.errors import WireError
from meshgov.pgwire.preparing import generated_sql
from meshgov.pgwire.state import Result
from meshgov.pgwire.types import pg_type

# Batches a data query reads in its first worker call (a small result is then complete).
READ_AHEAD = 2
# Batches up to this many rows are encoded on the event loop; larger ones in a worker thread.
INLINE_ENCODE_ROWS = 2048


class QueryRunner(Connection):
    """Queries run for a session, and the rows of their results read as they are sent."""

    async def data_query(self, tree: exp.Expression) -> Result:
        sql_text = generated_sql(tree)
        service = self.listener.service
        state = self.state
        context = {
            "protocol": "postgresql",
            "purpose": state.purpose,
            "application": state.settings.get("application_name", ""),
        }

        def start() -> tuple[ResultStream, deque[pa.RecordBatch]]:
            stream = service.execute_stream(
                state.principal, sql_text, state.purpose, "postgres", kind="wire", context=context
            )[0]
            # Read ahead up to two batches in this thread: a small result is then complete
            # (and its engine cursor or connection free) without another hop to a thread.
            ahead: deque[pa.RecordBatch] = deque()
            try:
                while len(ahead) < READ_AHEAD and (batch := stream.next_batch()) is not None:
                    ahead.append(batch)
            except BaseException:
                stream.close()
                raise
            return stream, ahead

        scope = CancelScope()
        stream, ahead = await self.guarded(start, scope)
        fields, encoders = self.listener.shape(stream.schema)
        result = Result(
            fields,
            iter(()),
            encoders,
            tag="SELECT",
            stream=stream,
            scope=scope,
            ahead=ahead,
        )
        if not stream.closed:
            self._open.add(result)
        return result

    async def next_batch(self, result: Result) -> pa.RecordBatch | None:
        """The next batch of a data result (read in a worker thread under its cancel scope)."""
        if result.ahead:
            return result.ahead.popleft()
        stream = result.stream
        if stream is None or stream.closed:
            return None
        batch: pa.RecordBatch | None = await self.guarded(stream.next_batch, result.scope)
        return batch

    async def next_messages(self, result: Result, binary_columns: list[bool]) -> list[bytes]:
        """The DataRows of the next batch ([] at the end); a large batch is read and encoded in
        a worker thread, keeping the event loop free for the other sessions."""
        assert result.encoders is not None
        encoders = result.encoders
        if result.ahead and result.ahead[0].num_rows <= INLINE_ENCODE_ROWS:
            return encode_batch(result.ahead.popleft(), encoders, binary_columns)
        stream = result.stream
        if not result.ahead and (stream is None or stream.closed):
            return []  # read to its end already (a small result): no worker call for nothing

        def work() -> list[bytes]:
            if result.ahead:
                batch: pa.RecordBatch | None = result.ahead.popleft()
            elif stream is None or stream.closed:
                return []
            else:
                batch = stream.next_batch()
            return [] if batch is None else encode_batch(batch, encoders, binary_columns)

        messages: list[bytes] = await self.guarded(work, result.scope)
        return messages

    async def take_rows(self, result: Result, count: int | None) -> list[list[Any]]:
        """Up to ``count`` rows (all when None) of a result, as Python values."""
        if not result.streamed and not result.ahead:
            rows = result.rows
            return list(itertools.islice(rows, count)) if count is not None else list(rows)
        taken: list[list[Any]] = []
        while count is None or len(taken) < count:
            if not result.row_buffer:
                batch = await self.next_batch(result)
                if batch is None:
                    break
                result.row_buffer.extend(batch_rows(batch))
                continue
            want = len(result.row_buffer) if count is None else count - len(taken)
            for _ in range(min(want, len(result.row_buffer))):
                taken.append(result.row_buffer.popleft())
        return taken

    async def catalogue_query(self, tree: exp.Expression, *, binary: bool) -> Result:
        listener = self.listener
        if listener.catalogue is None:
            raise WireError(
                "0A000",
                "catalogue introspection needs PostgreSQL (MESHGOV_PG_CATALOG_DSN), which is not "
                "configured",
            )
        catalogue = listener.catalogue
        state = self.state

        def run() -> Any:
            rewritten = rewrite_catalogue_query(
                tree,
                principal_id=state.principal.id,
                purpose=state.purpose,
                settings=state.settings,
                database_columns=catalogue.database_columns(),
                relation_columns=catalogue.relation_columns(),
            )
            return catalogue.run(self.catalogue_connection(), rewritten.sql("postgres"), binary)

        try:
            answer = await self.guarded(run)
        except CatalogueRefused as exc:
            raise WireError(exc.sqlstate, exc.message) from None
        return Result(
            list(answer.fields), iter(answer.rows), None, tag="SELECT", raw_binary=answer.binary
        )

    def catalogue_connection(self) -> Any:
        """The session's connection to its view's catalogue database (built on first use)."""
        view = self.visible_catalogue()
        catalogue = self.listener.catalogue
        assert catalogue is not None
        database = catalogue.database_for(view)
        if self._catalogue_conn is None or self._catalogue_db != database:
            if self._catalogue_conn is not None:
                self._catalogue_conn.close()
            self._catalogue_conn = catalogue.connect(database)
            self._catalogue_db = database
        return self._catalogue_conn

    def visible_catalogue(self) -> VisibleCatalogue:
        service = self.listener.service
        revision_key = (service.state.revision, service.state.catalog.revision)
        if self._view is not None and self._view_key == revision_key:
            return self._view
        tables = []
        for port, schema in service.visible_tables(self.state.principal, self.state.purpose):
            # An unqualified port table lives in the default schema.
            schema_name, table_name = ("public", *port.table)[-2:]
            columns = tuple(
                (f.name, pg_type_name(pg_type(f.type).oid, pg_type(f.type).modifier))
                for f in schema
            )
            tables.append(VisibleTable(schema_name, table_name, columns))
        tables.sort(key=lambda t: (t.schema, t.name))
        self._view = VisibleCatalogue(self.state.purpose, tuple(tables))
        self._view_key = revision_key
        return self._view
