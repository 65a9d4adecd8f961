"""What a session keeps: its settings and transaction, prepared statements, portals, cursors
and the results it is sending."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from meshgov.engines.base import CancelScope, ResultStream
from meshgov.pgwire.statements import Statement

if TYPE_CHECKING:
    from meshgov.core.principal import Principal


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
