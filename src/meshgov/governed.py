"""One decision for every kind of port: the secure SQL of a port over any Arrow source.

Exports (``meshgov.exports``) and event streams (``meshgov.streams``) govern data that never sits
in the query engine: a snapshot file read in batches, a micro-batch of events. They get the same
``meshgov.access`` decision as SQL (``Gateway.decide``: same policy, same cache) and the same
secure view (``secure_select``: the grant's row filter parsed by sqlglot, the masks of
``core/sql/masks.py``), generated for DuckDB over a registered Arrow relation. DuckDB runs it with
the mesh-wide ``meshgov_hash`` installed (the same closure as the embedded engine), so a hashed
value is the same whether it was read through SQL, an export or a stream.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from meshgov.core.sql.model import AccessDecision, PortColumn, PortRef
from meshgov.errors import AccessDenied, BackendUnavailable, InputError, MeshgovError
from meshgov.gateway import LruCache

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from sqlglot import exp

    from meshgov.catalog import Catalog
    from meshgov.core.manifest import Manifest, OutputPort
    from meshgov.core.principal import Principal
    from meshgov.gateway import Gateway

# The relation each governed query reads: the Arrow source registered under this name.
SOURCE_RELATION = "meshgov_source"
# Prefix of the reason ``Gateway.decide`` gives when the policy engine failed (fail closed): a
# stream retries such an event later instead of treating it as a denial.
POLICY_FAILURE = "policy evaluation failed"
_GOVERNED_SQL: LruCache[tuple[Any, ...], tuple[str, tuple[str, ...], str, tuple[int, ...]]] = (
    LruCache(4096)
)


@dataclass(frozen=True)
class GovernedPort:
    """A port as one principal may read it: the decision and the secure SQL over the source."""

    product: str
    port: str
    version: str
    kind: str
    decision: AccessDecision
    sql: str
    columns: tuple[str, ...]  # the visible columns, in the order the SQL returns them
    # What ``GovernedRunner`` runs: ``sql`` with each top-level ``meshgov_hash(<text>)``
    # projection left as its text, and the positions of those columns, which the runner hashes
    # in bulk over each Arrow batch (``engines.keyed_hash``) before anything leaves it. Same
    # values as ``sql``; ``sql`` alone is complete (it still hashes) for any other use.
    runner_sql: str = ""
    hashed: tuple[int, ...] = ()

    @property
    def policy_revision(self) -> str:
        return self.decision.revision


def parse_port_ref(text: str) -> tuple[str, str]:
    """``domain/name:port`` → (``domain/name``, ``port``); anything else is an input error."""
    product, sep, port = text.partition(":")
    if not sep or "/" not in product or not port:
        raise InputError(f"{text!r} is not PRODUCT:PORT (e.g. customer/customers:customers)")
    return product, port


def find_port(catalog: Catalog, product: str, port: str) -> tuple[Manifest, OutputPort]:
    manifest = catalog.manifests.get(product)
    if manifest is None:
        raise InputError(f"unknown product {product!r}")
    for candidate in manifest.spec.output_ports:
        if candidate.name == port:
            return manifest, candidate
    raise InputError(f"product {product} has no output port {port!r}")


def port_ref(manifest: Manifest, port: OutputPort, relation: str = SOURCE_RELATION) -> PortRef:
    """The port as the rewriter sees it, its rows in ``relation`` (whatever its ``table:``)."""
    return PortRef(
        product=manifest.id,
        port=port.name,
        version=manifest.metadata.version,
        table=(relation,),
        columns=tuple(PortColumn(c.name, c.type, c.mask_expr) for c in port.columns),
    )


def governed_port(
    gateway: Gateway,
    principal: Principal,
    purpose: str | None,
    product: str,
    port: str,
    *,
    extra_columns: tuple[str, ...] = (),
) -> GovernedPort:
    """The decision and secure SQL of ``product:port`` for ``principal`` (raises on a denial).

    ``extra_columns``: bookkeeping columns of the source (an event's stream sequence) carried
    through unmasked after the port's visible columns; they are not port columns, so no row
    filter can read them.
    """
    from sqlglot import exp

    from meshgov.core.sql.secure_views import secure_select

    manifest, declared = find_port(gateway.catalog, product, port)
    decision = gateway.decide(principal, purpose, product, port)
    if not decision.allow:
        if any(reason.startswith(POLICY_FAILURE) for reason in decision.reasons):
            # The engine failed (fail closed): unavailable, not a verdict; callers may retry.
            raise BackendUnavailable(f"{product}:{port}: {decision.reasons[0]}")
        raise AccessDenied(f"{product}:{port}: " + ("; ".join(decision.reasons) or "access denied"))
    ref = port_ref(manifest, declared)
    # The secure view is built from the decision each time it changes; its SQL text is kept
    # per (port, decision, principal): a stream asks for it once per micro-batch.
    key = (ref, decision.fingerprint, decision.revision, principal.cache_key(), extra_columns)
    cached = _GOVERNED_SQL.get(key)
    if cached is None:
        try:
            select = secure_select(ref, decision, principal, "duckdb")
        except MeshgovError:
            raise
        except Exception as exc:  # a decision that cannot become SQL denies, never a traceback
            reason = f"{product}:{port}: cannot apply the decision ({type(exc).__name__})"
            raise AccessDenied(reason) from None
        columns = tuple(projection.alias_or_name for projection in select.expressions)
        for name in extra_columns:
            select.select(exp.column(name, quoted=True), copy=False)
        runner_sql, hashed = _hash_after(select)
        cached = (select.sql(dialect="duckdb"), columns, runner_sql, hashed)
        _GOVERNED_SQL.put(key, cached)
    return GovernedPort(
        product=product,
        port=port,
        version=manifest.metadata.version,
        kind=str(declared.kind.value),
        decision=decision,
        sql=cached[0],
        columns=cached[1],
        runner_sql=cached[2],
        hashed=cached[3],
    )


def _hash_after(select: exp.Select) -> tuple[str, tuple[int, ...]]:
    """``select`` with its top-level ``meshgov_hash(x) AS c`` projections as ``x AS c``, and
    their positions (the runner hashes those columns itself, over whole batches)."""
    from sqlglot import exp

    from meshgov.core.sql.masks import HASH_FUNCTION

    def is_hash(node: exp.Expr) -> bool:
        return isinstance(node, exp.Anonymous) and node.name.lower() == HASH_FUNCTION

    stripped = select.copy()
    hashed: list[int] = []
    for position, projection in enumerate(stripped.expressions):
        if not isinstance(projection, exp.Alias):
            continue
        call = projection.this
        if not is_hash(call) or len(call.expressions) != 1:
            continue
        argument = call.expressions[0]
        if any(is_hash(node) for node in argument.walk()):
            continue  # nested: left to the SQL function
        projection.set("this", argument.copy())
        hashed.append(position)
    return stripped.sql(dialect="duckdb"), tuple(hashed)


class GovernedRunner:
    """A locked-down in-memory DuckDB that runs governed SQL over one registered Arrow source.

    Nothing is loaded into it: each run reads its source (a pyarrow table, dataset or batch
    reader) registered in a cursor of its own; a micro-batch (``run`` over a table) is read
    through a per-thread cursor where the source is registered once and only swapped.
    ``meshgov_hash`` is the embedded engine's closure with the mesh key; the configuration is
    locked as there.
    """

    def __init__(self, hash_key: bytes) -> None:
        self._hash_key = hash_key
        self._connection = self._connect({})
        # Micro-batches run in a database of their own with one thread: a query over a
        # thousand rows gains nothing from a second thread and pays for waking it.
        self._small = self._connect({"threads": 1})
        self._lock = threading.Lock()
        # One cursor per thread for small runs (a cursor costs milliseconds to open), its
        # source registered once (registering costs more than the query over a micro-batch).
        self._local = threading.local()

    def _connect(self, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        import duckdb
        from duckdb.func import PythonUDFType

        from meshgov.engines.duckdb import _LOCKED_CONFIG, HASH_FUNCTION
        from meshgov.engines.keyed_hash import keyed_hash

        connection = duckdb.connect(":memory:", config={**_LOCKED_CONFIG, **config})
        connection.create_function(
            HASH_FUNCTION,
            keyed_hash(self._hash_key),
            ["VARCHAR"],
            "VARCHAR",
            type=PythonUDFType.ARROW,
            side_effects=False,
        )
        connection.execute("SET lock_configuration = true")
        return connection

    def cursor(self, source: Any) -> duckdb.DuckDBPyConnection:
        """A cursor with ``source`` registered as the governed relation (close it when done)."""
        with self._lock:
            cursor = self._connection.cursor()
        cursor.register(SOURCE_RELATION, source)
        return cursor

    def run(self, governed: GovernedPort, source: Any) -> pa.Table:
        """The governed rows of ``source`` (small inputs: an event micro-batch)."""
        import pyarrow as pa

        if not isinstance(source, pa.Table):
            cursor = self.cursor(source)
            try:
                table = cursor.sql(governed.runner_sql or governed.sql).to_arrow_table()
            finally:
                cursor.close()
            return self._hashed(governed, table)
        batches: _MicroBatches | None = getattr(self._local, "batches", None)
        if batches is None:
            with self._lock:
                batches = _MicroBatches(self._small.cursor())
            self._local.batches = batches
        return self._hashed(governed, batches.run(governed.runner_sql or governed.sql, source))

    def _hashed(self, governed: GovernedPort, data: Any) -> Any:
        """``data`` (a table or a record batch of ``runner_sql``) with its hashed columns
        hashed."""
        if not governed.runner_sql or not governed.hashed:
            return data
        from meshgov.engines.keyed_hash import keyed_hash_array

        columns = list(data.columns)
        for position in governed.hashed:
            columns[position] = keyed_hash_array(self._hash_key, columns[position])
        return type(data).from_arrays(columns, schema=data.schema)

    def reader(
        self, governed: GovernedPort, source: Any, batch_rows: int = 65_536
    ) -> tuple[pa.RecordBatchReader, _Closer]:
        """The governed rows of ``source`` as a stream of batches (bounded memory) and what to
        close once the stream is consumed (or abandoned).

        The batches are fetched from DuckDB and their hashed columns hashed in a thread of
        their own, one or two batches ahead of the consumer: encoding and writing a batch
        (which releases the GIL) overlaps with producing the next one.
        """
        cursor = self.cursor(source)
        try:
            relation = cursor.sql(governed.runner_sql or governed.sql)
            # DuckDB ≥ 1.4 names it to_arrow_reader (fetch_record_batch is deprecated there).
            stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            batches: pa.RecordBatchReader = stream(batch_rows)
        except BaseException:
            cursor.close()
            raise
        ahead = _ReadAhead(batches, lambda batch: self._hashed(governed, batch), cursor)
        return ahead.reader(), ahead

    def close(self) -> None:
        self._small.close()
        self._connection.close()


class _MicroBatches:
    """A thread's cursor for micro-batches. ``SOURCE_RELATION`` is registered in it once, as
    this object, which gives DuckDB the table of the current run whenever it asks for an Arrow
    stream; and each SQL text is parsed once into a relation that is executed again for each
    table (DuckDB binds it again at each execution, over the table of that run)."""

    _MAX_RELATIONS = 64  # SQL texts kept per thread (one per subscriber and policy revision)

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cursor = cursor
        self._table: pa.Table | None = None
        self._registered = False
        self._relations: dict[str, duckdb.DuckDBPyRelation] = {}

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        if self._table is None:  # only read while ``run`` has set it
            raise RuntimeError("no micro-batch is being governed")
        return self._table.__arrow_c_stream__(requested_schema)

    def run(self, sql: str, table: pa.Table) -> pa.Table:
        self._table = table
        try:
            if not self._registered:  # DuckDB reads the schema here: once a table is set
                self._cursor.register(SOURCE_RELATION, self)
                self._registered = True
            relation = self._relations.get(sql)
            if relation is None:
                if len(self._relations) >= self._MAX_RELATIONS:
                    self._relations.clear()
                relation = self._cursor.sql(sql)
                self._relations[sql] = relation
            try:
                return relation.to_arrow_table()
            except BaseException:
                del self._relations[sql]  # made again next time, from the text
                raise
        finally:
            self._table = None


class _Closer(Protocol):
    def close(self) -> None: ...


class _ReadAhead:
    """Batches of ``source`` transformed by ``step`` in a producer thread, at most
    ``depth`` ahead; ``close`` stops the producer and then closes ``cursor``."""

    _DONE = object()

    def __init__(
        self,
        source: pa.RecordBatchReader,
        step: Callable[[pa.RecordBatch], pa.RecordBatch],
        cursor: duckdb.DuckDBPyConnection,
        depth: int = 2,
    ) -> None:
        import queue

        self._source = source
        self._step = step
        self._cursor = cursor
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="meshgov-export", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for batch in self._source:
                if not self._put(self._step(batch)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(self._DONE)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def reader(self) -> pa.RecordBatchReader:
        import pyarrow as pa

        schema = self._source.schema
        return pa.RecordBatchReader.from_batches(schema, self._batches())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._cursor.close()
