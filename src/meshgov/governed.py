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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshgov.core.sql.model import AccessDecision, PortColumn, PortRef
from meshgov.errors import AccessDenied, BackendUnavailable, InputError, MeshgovError
from meshgov.gateway import LruCache

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from meshgov.catalog import Catalog
    from meshgov.core.manifest import Manifest, OutputPort
    from meshgov.core.principal import Principal
    from meshgov.gateway import Gateway

# The relation each governed query reads: the Arrow source registered under this name.
SOURCE_RELATION = "meshgov_source"
# Prefix of the reason ``Gateway.decide`` gives when the policy engine failed (fail closed): a
# stream retries such an event later instead of treating it as a denial.
POLICY_FAILURE = "policy evaluation failed"
_GOVERNED_SQL: LruCache[tuple[Any, ...], tuple[str, tuple[str, ...]]] = LruCache(4096)


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
        cached = (select.sql(dialect="duckdb"), columns)
        _GOVERNED_SQL.put(key, cached)
    return GovernedPort(
        product=product,
        port=port,
        version=manifest.metadata.version,
        kind=str(declared.kind.value),
        decision=decision,
        sql=cached[0],
        columns=cached[1],
    )


class GovernedRunner:
    """A locked-down in-memory DuckDB that runs governed SQL over one registered Arrow source.

    Nothing is loaded into it: each run registers its source (a pyarrow table, dataset or batch
    reader), runs the secure SQL in a fresh cursor and unregisters it. ``meshgov_hash`` is the
    embedded engine's closure with the mesh key; the configuration is locked as there.
    """

    def __init__(self, hash_key: bytes) -> None:
        import duckdb
        from duckdb.func import PythonUDFType

        from meshgov.engines.duckdb import _LOCKED_CONFIG, HASH_FUNCTION, keyed_hash

        self._connection = duckdb.connect(":memory:", config=dict(_LOCKED_CONFIG))
        self._connection.create_function(
            HASH_FUNCTION,
            keyed_hash(hash_key),
            ["VARCHAR"],
            "VARCHAR",
            type=PythonUDFType.ARROW,
            side_effects=False,
        )
        self._connection.execute("SET lock_configuration = true")
        self._lock = threading.Lock()
        # One cursor per thread for small runs (a cursor costs milliseconds to open).
        self._local = threading.local()

    def cursor(self, source: Any) -> duckdb.DuckDBPyConnection:
        """A cursor with ``source`` registered as the governed relation (close it when done)."""
        with self._lock:
            cursor = self._connection.cursor()
        cursor.register(SOURCE_RELATION, source)
        return cursor

    def run(self, governed: GovernedPort, source: Any) -> pa.Table:
        """The governed rows of ``source`` (small inputs: an event micro-batch)."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._connection.cursor()
            self._local.cursor = cursor
        cursor.register(SOURCE_RELATION, source)
        try:
            return cursor.sql(governed.sql).to_arrow_table()
        finally:
            cursor.unregister(SOURCE_RELATION)

    def reader(
        self, governed: GovernedPort, source: Any, batch_rows: int = 65_536
    ) -> tuple[pa.RecordBatchReader, duckdb.DuckDBPyConnection]:
        """The governed rows of ``source`` as a stream of batches (bounded memory) and the cursor
        to close once the stream is consumed."""
        cursor = self.cursor(source)
        try:
            relation = cursor.sql(governed.sql)
            # DuckDB ≥ 1.4 names it to_arrow_reader (fetch_record_batch is deprecated there).
            stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            return stream(batch_rows), cursor
        except BaseException:
            cursor.close()
            raise

    def close(self) -> None:
        self._connection.close()
