"""The base of a session: its state, buffered writes, the results it must close, and work run
in a worker thread under a cancel scope (CancelRequest, statement_timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from meshgov.engines.base import CANCEL_SCOPE, CancelScope
from meshgov.errors import MeshgovError
from meshgov.pgwire import messages as m
from meshgov.pgwire.catalogue import VisibleCatalogue
from meshgov.pgwire.errors import WireError, wire_error
from meshgov.pgwire.state import Cursor, Portal, Prepared, Result, SessionState

if TYPE_CHECKING:
    from meshgov.pgwire.server import PgListener

log = logging.getLogger("meshgov.pgwire")


class Connection:
    """One authenticated connection's state and output; the session's layers build on it."""

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
