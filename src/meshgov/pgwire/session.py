"""One client connection: login, then the simple and extended query protocols.

Every statement is classified on sqlglot's tokens (``statements.py``): session commands are
answered from the session without touching data; introspection goes to the governed catalogue
(``catalogue.py``); every other query goes through the service like an HTTP query (authorized,
rewritten into secure views, logged, run on the engine). Bound parameters become typed sqlglot
literals in the parsed tree before authorization, never text spliced into SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from meshgov.engines.base import CANCEL_SCOPE, CancelScope, ResultStream
from meshgov.errors import MeshgovError
from meshgov.limits import check_size
from meshgov.pgwire import messages as m
from meshgov.pgwire.catalogue import (
    CatalogueRefused,
    VisibleCatalogue,
    VisibleTable,
    is_catalogue_query,
    pg_type_name,
    rewrite_catalogue_query,
)
from meshgov.pgwire.dialect import DIALECT as WIRE_DIALECT
from meshgov.pgwire.statements import Statement, StatementError, classify, split
from meshgov.pgwire.types import (
    INT8,
    LOGICAL_OIDS,
    TEXT,
    ParameterError,
    parameter_literal,
    pg_type,
    text_to_binary,
)

if TYPE_CHECKING:
    from meshgov.core.principal import Principal
    from meshgov.pgwire.server import PgListener

log = logging.getLogger("meshgov.pgwire")

SERVER_VERSION = "15.0 (meshgov)"
PREPARED_CACHE_SIZE = 2048
BATCH_ROWS = 4096
# Batches a data query reads in its first worker call (a small result is then complete).
READ_AHEAD = 2
# Batches up to this many rows are encoded on the event loop; larger ones in a worker thread.
INLINE_ENCODE_ROWS = 2048
# Statement texts up to this many characters are split and parsed on the event loop; longer ones
# in a worker thread (parsing is linear in the text but slow: ~1.6 s for 100,000 characters,
# which on the event loop would stall every session and the HTTP API with it).
INLINE_PARSE_CHARS = 4096
_T = TypeVar("_T")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024

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


@dataclass
class Prepared:
    """A parsed statement (the unnamed one, or a named one kept until Close)."""

    statement: Statement
    tree: exp.Expression | None  # the query's tree (queries, cursors, COPY)
    param_oids: list[int]
    catalogue: bool = False


@dataclass(eq=False)
class Result:
    """Rows ready to send: fields (name, oid, modifier) and where the rows come from.

    A data result is the engine's ``ResultStream``: batches are read (in a worker thread) and
    encoded only as they are sent, so the session holds at most a batch or two of it. Other
    results (the catalogue, SHOW, FETCH) are rows in ``rows``.
    """

    fields: list[tuple[str, int, int]]
    rows: Iterator[list[Any]]  # values as Python objects (data) or bytes (catalogue)
    encoders: list[tuple[Callable[[Any], bytes], Callable[[Any], bytes]]] | None
    tag: str = "SELECT"
    raw_binary: bool = False  # catalogue rows are already bytes in this format
    sent: int = 0
    stream: ResultStream | None = None  # data results
    scope: CancelScope | None = None  # the query's cancel scope while it streams
    ahead: deque[pa.RecordBatch] = field(default_factory=deque)  # read, not yet encoded
    pending: deque[bytes] = field(default_factory=deque)  # DataRows encoded, not yet sent
    row_buffer: deque[list[Any]] = field(default_factory=deque)  # rows of a batch (FETCH, COPY)

    @property
    def streamed(self) -> bool:
        return self.stream is not None


@dataclass
class Portal:
    prepared: Prepared
    formats: tuple[int, ...]
    tree: exp.Expression | None
    result: Result | None = None


@dataclass
class Cursor:
    result: Result
    binary: bool


@dataclass
class SessionState:
    principal: Principal
    purpose: str
    settings: dict[str, str] = field(default_factory=dict)
    transaction: bytes = b"I"  # I idle, T in a transaction, E failed transaction


class Session:
    """The protocol loop of one authenticated connection."""

    def __init__(
        self,
        listener: PgListener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        state: SessionState,
    ) -> None:
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.state = state
        self.pid = secrets.randbelow(2**31 - 1) + 1
        self.key = secrets.randbelow(2**31 - 1) + 1
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.cursors: dict[str, Cursor] = {}
        self.scope: CancelScope | None = None
        # A cancel that arrives while a message is being handled but before its query reached
        # the engine (still authorizing, opening the engine…) applies to that query.
        self.busy = False
        self.pending_cancel = ""
        self._catalogue_conn: Any = None
        self._in = bytearray()  # received, not yet handled
        self._out: list[bytes] = []  # written to the socket at once (Sync, Flush, query end)
        self._open: set[Result] = set()  # results whose engine stream may still be open
        self._discarded: list[Result] = []  # to close once the current message is handled
        self._view: VisibleCatalogue | None = None
        self._view_key: tuple[str, str] | None = None
        self._catalogue_db = ""

    # ----------------------------------------------------------------- the loop
    async def run(self) -> None:
        idle = self.listener.settings.idle_timeout_seconds
        skipping = False  # after an error in the extended protocol, until Sync
        while True:
            try:
                kind, payload = await self.next_message(idle)
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

    async def next_message(self, idle: float) -> tuple[bytes, bytes]:
        """The next message: taken from what was received already (the extended protocol's
        messages of a query arrive together), else read (under the idle timeout) in chunks."""
        buffer = self._in
        while True:
            if len(buffer) >= 5:
                size = int.from_bytes(buffer[1:5], "big")
                if size < 4 or size > MAX_MESSAGE_BYTES:
                    raise m.ProtocolViolation(f"invalid message length {size}")
                if len(buffer) > size:
                    kind, payload = bytes(buffer[:1]), bytes(buffer[5 : size + 1])
                    del buffer[: size + 1]
                    return kind, payload
            # asyncio.timeout, not wait_for: no task per read.
            async with asyncio.timeout(idle):
                chunk = await self.reader.read(READ_CHUNK_BYTES)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(buffer), None)
            buffer += chunk

    def cancel(self, reason: str) -> None:
        """A CancelRequest for this session (from another connection)."""
        if self.scope is not None:
            self.scope.cancel(reason)
        elif self.busy:
            self.pending_cancel = reason

    def send(self, data: bytes) -> None:
        self._out.append(data)

    def flush(self) -> None:
        """Write what is buffered in one socket write."""
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            self.writer.write(data)

    async def flush_and_drain(self) -> None:
        self.flush()
        await self.writer.drain()

    def discard(self, result: Result | None) -> None:
        """``result`` will not be read further: its engine stream is closed after this message."""
        if result is not None and result in self._open:
            self._discarded.append(result)

    def discard_portal(self, name: str) -> None:
        portal = self.portals.pop(name, None)
        if portal is not None:
            self.discard(portal.result)

    def discard_cursors(self) -> None:
        for cursor in self.cursors.values():
            self.discard(cursor.result)
        self.cursors.clear()

    async def close_discarded(self) -> None:
        closing, self._discarded = self._discarded, []
        await self.close_results(closing)

    async def close_results(self, results: Sequence[Result]) -> None:
        streams = []
        for result in results:
            self._open.discard(result)
            if result.stream is not None and not result.stream.closed:
                streams.append(result.stream)
        if streams:
            # Closing may stop the engine's query (PostgreSQL: cancel, then drain).

            def close() -> None:
                for stream in streams:
                    stream.close()

            await asyncio.to_thread(close)

    def fail(self, exc: WireError) -> None:
        if self.state.transaction == b"T":
            self.state.transaction = b"E"
        self.send(m.error_response(exc.sqlstate, exc.message, hint=exc.hint))

    async def close_session(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.flush()
        await self.close_results(list(self._open))
        conn, self._catalogue_conn = self._catalogue_conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

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
    def split(self, text: str) -> tuple[str, ...]:
        """The statements of a simple Query message (cached per text, like ``prepare``: tools
        and pools send the same texts again; splitting is tokenizing, which depends on nothing
        but the text)."""
        cache = self.listener.split_cache
        known = cache.get(text)
        if known is not None:
            return known
        try:
            texts = tuple(split(text))
        except StatementError as exc:
            raise WireError(exc.sqlstate, exc.message) from None
        if len(cache) >= PREPARED_CACHE_SIZE:
            cache.clear()
        cache[text] = texts
        return texts

    def prepare(self, text: str, param_oids: list[int]) -> Prepared:
        """Classify and parse ``text`` (cached per text and parameter types: a statement sent
        again, as tools and pools do, is not parsed again; trees are never changed in place)."""
        key = (text, tuple(param_oids))
        cache = self.listener.prepared_cache
        known = cache.get(key)
        if known is not None:
            return known
        prepared = self._prepare(text, param_oids)
        if len(cache) >= PREPARED_CACHE_SIZE:
            cache.clear()
        cache[key] = prepared
        return prepared

    def _prepare(self, text: str, param_oids: list[int]) -> Prepared:
        try:
            statement = classify(text)
        except StatementError as exc:
            raise WireError(exc.sqlstate, exc.message) from None
        tree: exp.Expression | None = None
        catalogue = False
        if statement.kind in {"query", "declare", "copy"}:
            tree = parse_query(statement.text)
            try:
                catalogue = is_catalogue_query(tree)
            except CatalogueRefused as exc:
                raise WireError(exc.sqlstate, exc.message) from None
            count = max((placeholder_number(p) for p in placeholders(tree)), default=0)
            oids = list(param_oids) + [0] * max(count - len(param_oids), 0)
            param_oids = [
                oid or self.infer_parameter_type(tree, index + 1) for index, oid in enumerate(oids)
            ]
        return Prepared(statement, tree, param_oids, catalogue)

    def infer_parameter_type(self, tree: exp.Expression, number: int) -> int:
        """The type announced for ``$number`` (asyncpg encodes arguments by it)."""
        for node in placeholders(tree):
            if placeholder_number(node) != number:
                continue
            parent = node.parent
            if isinstance(parent, exp.Cast):
                from meshgov.pgwire.types import oid_of_sql_type

                return oid_of_sql_type(parent.to)
            if isinstance(parent, exp.Limit | exp.Offset | exp.Fetch):
                return INT8
            if isinstance(parent, exp.Binary | exp.In | exp.Between):
                for column in parent.find_all(exp.Column):
                    oid = self.column_type(tree, column.name)
                    if oid:
                        return oid
        return TEXT

    def column_type(self, tree: exp.Expression, name: str) -> int:
        """The type of column ``name`` as the manifests declare it, in the tables ``tree``
        reads (a masked column compared with a parameter is text either way)."""
        service = self.listener.service
        named = {t.name.lower() for t in tree.find_all(exp.Table)}
        for port in service.ports(service.state):
            if port.table[-1] not in named:
                continue
            column = port.column(name)
            if column is not None and column.mask_expr is None:
                return LOGICAL_OIDS.get(str(column.type), TEXT)
        return 0

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
            if prepared.catalogue:
                result = await self.catalogue_query(tree, binary=False)
            else:
                result = await self.data_query(tree)
            if statement.name in self.cursors:
                self.discard(self.cursors[statement.name].result)
            self.cursors[statement.name] = Cursor(result, statement.binary)
            self.send(m.command_complete("DECLARE CURSOR"))
            return None
        if kind in {"fetch", "move"}:
            return await self.fetch(statement)
        if kind == "close":
            if statement.name:
                closed = self.cursors.pop(statement.name, None)
                if closed is None:
                    raise WireError("34000", f"cursor {statement.name!r} does not exist")
                self.discard(closed.result)
            else:
                self.discard_cursors()
            self.send(m.command_complete("CLOSE CURSOR" + ("" if statement.name else " ALL")))
            return None
        if kind == "show":
            return self.show(statement.name)
        self.session_command(statement)
        return None

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

    # ----------------------------------------------------------------- running queries
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

    async def guarded(self, work: Callable[[], Any], scope: CancelScope | None = None) -> Any:
        """Run ``work`` in a worker thread under a cancel scope (CancelRequest,
        statement_timeout); ``scope``: the one a streaming query's engine bound at its start."""
        scope = scope or CancelScope()
        if self.pending_cancel:
            scope.cancel(self.pending_cancel)
        self.scope = scope
        token = CANCEL_SCOPE.set(scope)
        timeout_ms = int(self.state.settings.get("statement_timeout", "0") or 0)
        timer = None
        if timeout_ms > 0:
            timer = asyncio.get_running_loop().call_later(
                timeout_ms / 1000, scope.cancel, "canceling statement due to statement timeout"
            )
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()
            return await loop.run_in_executor(self.listener.executor, context.run, work)
        except MeshgovError as exc:
            if scope.cancelled:
                raise WireError("57014", scope.reason) from None
            raise wire_error(exc) from None
        finally:
            CANCEL_SCOPE.reset(token)
            self.scope = None
            if timer is not None:
                timer.cancel()
            log.debug("statement ran in %.1f ms", (time.perf_counter() - started) * 1000)

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
                        _NULL_CELL if value is None else _len(enc[1](value)) + enc[1](value)
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
                        _in_binary(v, oid) if c else v
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


# --------------------------------------------------------------------------- helpers
# Arrow types whose text form (pyarrow's cast to string) is PostgreSQL's text form.
_ARROW_TEXT_MATCHES_POSTGRES = (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string,
                                pa.types.is_date32, pa.types.is_decimal)  # fmt: skip
_NULL_CELL = b"\xff\xff\xff\xff"


def encode_column(
    array: pa.Array, encoders: tuple[Callable[[Any], bytes], Callable[[Any], bytes]], binary: bool
) -> list[bytes | None]:
    """One column of a batch as the cells of its DataRows (None for SQL null)."""
    # pyarrow's cast has a fixed cost (tens of microseconds): worth it past a few rows.
    if (
        not binary
        and len(array) > 32
        and any(match(array.type) for match in _ARROW_TEXT_MATCHES_POSTGRES)
    ):
        import pyarrow.compute as pc

        return [None if v is None else v.encode() for v in pc.cast(array, pa.string()).to_pylist()]
    encode = encoders[1 if binary else 0]
    return [None if v is None else encode(v) for v in array.to_pylist()]


def encode_batch(
    batch: pa.RecordBatch,
    encoders: Sequence[tuple[Callable[[Any], bytes], Callable[[Any], bytes]]],
    binary_columns: Sequence[bool],
) -> list[bytes]:
    """The DataRow messages of one batch, encoded a column at a time."""
    width = len(encoders)
    count = width.to_bytes(2, "big")
    columns = [encode_column(batch.column(i), encoders[i], binary_columns[i]) for i in range(width)]
    messages: list[bytes] = []
    append = messages.append
    for cells in zip(*columns, strict=True):
        parts = [count]
        for cell in cells:
            if cell is None:
                parts.append(_NULL_CELL)
            else:
                parts.append(len(cell).to_bytes(4, "big"))
                parts.append(cell)
        body = b"".join(parts)
        append(b"D" + (len(body) + 4).to_bytes(4, "big") + body)
    if width == 0:
        messages = [b"D\x00\x00\x00\x06\x00\x00"] * batch.num_rows
    return messages


# Before login (a password, a SCRAM message) a client is not trusted with more (PostgreSQL's own
# PG_MAX_AUTH_TOKEN_LENGTH), so an unauthenticated connection cannot make the server buffer 64 MB.
MAX_AUTH_MESSAGE_BYTES = 65_535


async def read_message(
    reader: asyncio.StreamReader, max_size: int = MAX_MESSAGE_BYTES
) -> tuple[bytes, bytes]:
    header = await reader.readexactly(5)
    kind = header[:1]
    size = int.from_bytes(header[1:], "big")
    if size < 4 or size > max_size:
        raise m.ProtocolViolation(f"invalid message length {size}")
    return kind, await reader.readexactly(size - 4)


def _in_binary(value: bytes | None, oid: int) -> bytes | None:
    if value is None:
        return None
    try:
        return text_to_binary(value, oid)
    except ParameterError as exc:
        raise WireError("0A000", str(exc)) from None


def parse_query(text: str) -> exp.Expression:
    try:
        trees = sqlglot.parse(text, read=WIRE_DIALECT)
    except (ParseError, TokenError) as exc:
        raise WireError("42601", f"syntax error: {str(exc).splitlines()[0]}") from None
    found = [t for t in trees if isinstance(t, exp.Expression)]
    if len(found) != 1:
        raise WireError("42601", "expected one statement")
    return found[0]


def generated_sql(tree: exp.Expression) -> str:
    """The PostgreSQL text of a statement's tree, generated once per tree (trees are shared by
    the prepared-statement cache and never changed in place)."""
    cached = tree.meta.get("meshgov_sql")
    if cached is None:
        cached = tree.sql("postgres")
        tree.meta["meshgov_sql"] = cached
    return str(cached)


def placeholders(tree: exp.Expression) -> list[exp.Expression]:
    return [p for p in tree.find_all(exp.Parameter) if isinstance(p.this, exp.Literal)]


def placeholder_number(node: exp.Expression) -> int:
    return int(node.this.name)


def bind_parameters(tree: exp.Expression, literals: Sequence[exp.Expression]) -> exp.Expression:
    """A copy of ``tree`` with each ``$n`` replaced by its typed literal."""
    bound = tree.copy()
    bound.meta.pop("meshgov_sql", None)  # the copy is another statement
    for node in placeholders(bound):
        number = placeholder_number(node)
        if not 1 <= number <= len(literals):
            raise WireError("08P01", f"there is no parameter ${number}")
        node.replace(literals[number - 1].copy())
    return bound


def batch_rows(batch: pa.RecordBatch) -> Iterator[list[Any]]:
    columns = [column.to_pylist() for column in batch.columns]
    if not columns:
        return iter([[] for _ in range(batch.num_rows)])
    return (list(row) for row in zip(*columns, strict=True))


def fields_of(result: Result) -> list[m.Field]:
    return fields_of_list(result.fields)


def fields_of_list(fields: Sequence[tuple[str, int, int]]) -> list[m.Field]:
    from meshgov.pgwire.types import TYPE_SIZES

    return [m.Field(name, oid, TYPE_SIZES.get(oid, -1), mod) for name, oid, mod in fields]


def str_encode(value: Any) -> bytes:
    return str(value).encode()


def _len(raw: bytes) -> bytes:
    return len(raw).to_bytes(4, "big", signed=True)


def csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r') or not text:
        return '"' + text.replace('"', '""') + '"'
    return text


def copy_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


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
