"""One client connection: login, then the simple and extended query protocols.

Every statement is classified on sqlglot's tokens (``statements.py``): session commands are
answered from the session without touching data; introspection goes to the governed catalogue
(``catalogue.py``); every other query goes through the service like an HTTP query (authorized,
rewritten into secure views, logged, run on the engine). Bound parameters become typed sqlglot
literals in the parsed tree before authorization, never text spliced into SQL.

``Session`` is the protocol flow; it is built of layers, one module each: ``connection``
(output, results to close, work in a worker thread under a cancel scope), ``queries`` (running
data and catalogue queries), ``results`` (sending rows, COPY), ``preparing`` (parsing and
binding statements), ``commands`` (SET/SHOW/BEGIN…) and ``cursors`` (DECLARE/FETCH/CLOSE).
Message framing is in ``framing``, row and value encoding in ``encoding``, the session's data
classes in ``state`` and SQLSTATEs in ``errors``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlglot import exp

from meshgov.errors import MeshgovError
from meshgov.limits import check_size
from meshgov.pgwire import messages as m
from meshgov.pgwire.commands import SessionCommands
from meshgov.pgwire.cursors import CursorCommands
from meshgov.pgwire.encoding import fields_of, fields_of_list
from meshgov.pgwire.errors import WireError, wire_error
from meshgov.pgwire.framing import next_message
from meshgov.pgwire.preparing import StatementPreparer, bind_parameters
from meshgov.pgwire.results import ResultSender
from meshgov.pgwire.state import Portal, Prepared, Result
from meshgov.pgwire.types import ParameterError, parameter_literal

log = logging.getLogger("meshgov.pgwire")

SERVER_VERSION = "15.0 (meshgov)"
# Statement texts up to this many characters are split and parsed on the event loop; longer ones
# in a worker thread (parsing is linear in the text but slow: ~1.6 s for 100,000 characters,
# which on the event loop would stall every session and the HTTP API with it).
INLINE_PARSE_CHARS = 4096
_T = TypeVar("_T")


class Session(SessionCommands, CursorCommands, StatementPreparer, ResultSender):
    """The protocol loop of one authenticated connection."""

    # ----------------------------------------------------------------- the loop
    async def run(self) -> None:
        idle = self.listener.settings.idle_timeout_seconds
        skipping = False  # after an error in the extended protocol, until Sync
        while True:
            try:
                kind, payload = await next_message(self.reader, self._in, idle)
            except TimeoutError:
                self.send(m.error_response("57P05", "terminating connection due to idle timeout",
                                           severity="FATAL"))  # fmt: skip
                self.flush()
                return
            if kind == b"X":
                return
            if skipping and kind not in {b"S"}:
                if kind == b"H":
                    await self.flush_and_drain()
                continue
            self.busy, self.pending_cancel = True, ""
            try:
                if kind == b"Q":
                    await self.simple_query(m.Reader(payload).cstring())
                elif kind == b"P":
                    await self.parse(m.read_parse(payload))
                elif kind == b"B":
                    await self.bind(m.read_bind(payload))
                elif kind == b"D":
                    reader = m.Reader(payload)
                    await self.describe(reader.byte(), reader.cstring())
                elif kind == b"E":
                    reader = m.Reader(payload)
                    await self.execute(reader.cstring(), reader.int32())
                elif kind == b"C":
                    reader = m.Reader(payload)
                    self.close(reader.byte(), reader.cstring())
                elif kind == b"S":
                    skipping = False
                    self.discard_portal("")
                    self.send(m.ready_for_query(self.state.transaction))
                elif kind == b"H":
                    pass
                elif kind in {b"d", b"c", b"f"}:
                    continue  # COPY FROM data we never asked for
                else:
                    raise WireError("08P01", f"unexpected message type {kind!r}")
            except WireError as exc:
                self.fail(exc)
                if kind == b"Q":
                    self.send(m.ready_for_query(self.state.transaction))
                else:
                    skipping = True
            except m.ProtocolViolation as exc:
                self.send(m.error_response("08P01", f"protocol violation: {exc}", severity="FATAL"))
                self.flush()
                return
            except (ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception:  # a bug fails the statement, never the session or with details
                log.exception("PostgreSQL statement failed")
                self.fail(WireError("XX000", "internal error"))
                if kind == b"Q":
                    self.send(m.ready_for_query(self.state.transaction))
                else:
                    skipping = True
            finally:
                self.busy = False
            if self._discarded:
                await self.close_discarded()
            # Replies are written when the client waits for them (PostgreSQL's own rule): at a
            # Sync, a Flush, the end of a simple query; the extended protocol's messages before
            # a Sync are answered in one write.
            # An error is written at once (as PostgreSQL does), whatever follows.
            if kind in {b"Q", b"S", b"H"} or skipping or len(self._out) > 64:
                self.flush()
                await self.writer.drain()

    # ----------------------------------------------------------------- simple protocol
    def check_text_size(self, text: str) -> None:
        """A query text over ``MESHGOV_MAX_SQL_CHARS`` is refused before it is read (as on HTTP)."""
        try:
            check_size(
                len(text),
                self.listener.service.settings.max_sql_chars,
                "the query",
                "MESHGOV_MAX_SQL_CHARS",
                "characters",
            )
        except MeshgovError as exc:
            raise wire_error(exc) from None

    async def off_loop_if_long(self, text: str, work: Callable[[], _T]) -> _T:
        """``work()`` (splitting, parsing ``text``): in a worker thread when ``text`` is long."""
        if len(text) <= INLINE_PARSE_CHARS:
            return work()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.listener.executor, work)

    async def simple_query(self, text: str) -> None:
        self.check_text_size(text)
        texts = await self.off_loop_if_long(text, functools.partial(self.split, text))
        for statement_text in texts:
            prepared = await self.off_loop_if_long(
                statement_text, functools.partial(self.prepare, statement_text, [])
            )
            if prepared.statement.kind == "empty":
                self.send(m.EMPTY_QUERY)
                continue
            if self.state.transaction == b"E" and prepared.statement.kind not in {
                "rollback",
                "commit",
            }:
                raise WireError(
                    "25P02",
                    "current transaction is aborted, commands ignored until end of transaction",
                )
            result = await self.run_statement(prepared, prepared.tree)
            if result is None:
                continue
            formats = (1,) if prepared.statement.binary else (0,)
            if result.fields and prepared.statement.kind not in {"copy", "declare", "fetch_done"}:
                self.send(m.row_description(fields_of(result), formats * len(result.fields)))
            await self.send_rows(result, formats, None)
        self.send(m.ready_for_query(self.state.transaction))

    # ----------------------------------------------------------------- extended protocol
    async def parse(self, message: m.Parse) -> None:
        self.check_text_size(message.query)
        self.statements[message.statement] = await self.off_loop_if_long(
            message.query,
            functools.partial(self.prepare, message.query, list(message.param_oids)),
        )
        self.send(m.PARSE_COMPLETE)

    async def bind(self, message: m.Bind) -> None:
        prepared = self.statements.get(message.statement)
        if prepared is None:
            raise WireError("26000", f"prepared statement {message.statement!r} does not exist")
        if len(message.params) != len(prepared.param_oids):
            raise WireError(
                "08P01",
                f"bind message supplies {len(message.params)} parameters, but the statement "
                f"needs {len(prepared.param_oids)}",
            )
        tree = prepared.tree
        if tree is not None and message.params:
            try:
                literals = [
                    parameter_literal(
                        raw, prepared.param_oids[i], m.format_of(message.param_formats, i) == 1
                    )
                    for i, raw in enumerate(message.params)
                ]
            except ParameterError as exc:
                raise WireError("22P02", str(exc)) from None
            tree = bind_parameters(tree, literals)
        self.discard_portal(message.portal)
        self.portals[message.portal] = Portal(prepared, message.result_formats, tree)
        self.send(m.BIND_COMPLETE)

    async def describe(self, target: bytes, name: str) -> None:
        if target == b"S":
            prepared = self.statements.get(name)
            if prepared is None:
                raise WireError("26000", f"prepared statement {name!r} does not exist")
            self.send(m.parameter_description(prepared.param_oids))
            fields = await self.describe_fields(prepared)
            self.send(m.row_description(fields_of_list(fields), ()) if fields else m.NO_DATA)
            return
        if target != b"P":
            raise WireError("08P01", "Describe needs 'S' or 'P'")
        portal = self.portals.get(name)
        cursor = self.cursors.get(name)
        if portal is None and cursor is not None:
            # A DECLAREd cursor is a portal too (psycopg describes it before FETCHing).
            formats = (1,) if cursor.binary else (0,)
            self.send(m.row_description(fields_of(cursor.result), formats))
            return
        if portal is None:
            raise WireError("34000", f"portal {name!r} does not exist")
        if portal.prepared.statement.kind not in {"query", "fetch", "show"}:
            self.send(m.NO_DATA)
            return
        # Describe Portal may run the query once; Execute then sends the rows kept here.
        portal.result = await self.run_statement(portal.prepared, portal.tree)
        if portal.result is None or not portal.result.fields:
            self.send(m.NO_DATA)
            return
        self.send(m.row_description(fields_of(portal.result), portal.formats))

    async def execute(self, name: str, max_rows: int) -> None:
        portal = self.portals.get(name)
        if portal is None:
            raise WireError("34000", f"portal {name!r} does not exist")
        if self.state.transaction == b"E" and portal.prepared.statement.kind not in {
            "rollback",
            "commit",
        }:
            raise WireError("25P02", "current transaction is aborted, commands ignored")
        if portal.result is None:
            if portal.prepared.statement.kind == "empty":
                self.send(m.EMPTY_QUERY)
                return
            portal.result = await self.run_statement(portal.prepared, portal.tree)
        if portal.result is None:
            return
        await self.send_rows(portal.result, portal.formats, max_rows if max_rows > 0 else None)

    def close(self, target: bytes, name: str) -> None:
        if target == b"S":
            self.statements.pop(name, None)
        elif target == b"P":
            self.discard_portal(name)
        else:
            raise WireError("08P01", "Close needs 'S' or 'P'")
        self.send(m.CLOSE_COMPLETE)

    # ----------------------------------------------------------------- statements
    async def describe_fields(self, prepared: Prepared) -> list[tuple[str, int, int]]:
        """A statement's result columns without running it: every parameter bound to NULL and
        zero rows read (the shape of the answer, none of its rows)."""
        kind = prepared.statement.kind
        if kind == "show":
            return self.show(prepared.statement.name).fields
        if kind != "query" or prepared.tree is None:
            return []
        nulls = [exp.Null() for _ in prepared.param_oids]
        inner = bind_parameters(prepared.tree, nulls)
        if not isinstance(inner, exp.Query):
            return []
        probe = exp.select("*").from_(inner.subquery("meshgov_describe")).limit(0)
        if prepared.catalogue:
            return (await self.catalogue_query(probe, binary=False)).fields
        result = await self.data_query(probe)
        await self.close_results([result])
        return result.fields

    async def run_statement(self, prepared: Prepared, tree: exp.Expression | None) -> Result | None:
        statement = prepared.statement
        kind = statement.kind
        if kind == "query":
            assert tree is not None
            if prepared.catalogue:
                return await self.catalogue_query(tree, binary=False)
            return await self.data_query(tree)
        if kind == "copy":
            assert tree is not None
            return await self.copy_out(statement, tree)
        if kind == "declare":
            assert tree is not None
            await self.declare(statement, prepared, tree)
            return None
        if kind in {"fetch", "move"}:
            return await self.fetch(statement)
        if kind == "close":
            self.close_cursor(statement)
            return None
        if kind == "show":
            return self.show(statement.name)
        self.session_command(statement)
        return None
