"""The query side of the service: access decisions, secure SQL, execution and the Data API."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from sqlglot import exp

from meshgov.core.principal import Principal
from meshgov.core.sql.model import AccessDecision, PortRef
from meshgov.errors import AccessDenied, InputError, MeshgovError
from meshgov.execution import run_secure_sql, run_secure_stream, structural_barrier
from meshgov.gateway import Authorization, catalog_ports
from meshgov.limits import ResultLimits
from meshgov.serving.decisions import DecisionLogging, logged_outcome, request_digest
from meshgov.serving.state import ServingState
from meshgov.store.base import DecisionKind

log = logging.getLogger("meshgov.service")

if TYPE_CHECKING:
    from meshgov.engines.base import QueryEngine, ResultStream


class Queries(DecisionLogging):
    """Authorizes and runs governed queries, and evaluates Data API documents."""

    def ports(self, state: ServingState) -> list[PortRef]:
        ports = state.cache.get("ports")
        if ports is None:
            ports = catalog_ports(state.catalog)
            state.cache["ports"] = ports
        return list(ports)

    def access_decision(
        self, state: ServingState, principal: Principal, purpose: str | None, port: PortRef
    ) -> AccessDecision:
        """``data.meshgov.access.decision`` for one port (cached by the gateway; never raises)."""
        return state.gateway.decide(principal, purpose, port.product, port.port)

    def authorize(
        self,
        principal: Principal,
        sql: str,
        purpose: str | None,
        read_dialect: str | None,
        write_dialect: str | None,
        *,
        kind: DecisionKind = "authorize",
        state: ServingState | None = None,
        context: dict[str, Any] | None = None,
        engine_barrier: bool = False,
    ) -> tuple[Authorization, str, ServingState]:
        """Secure SQL or a denial; the decision is logged. Returns (authorization, id, state).

        ``engine_barrier``: the SQL runs on this service's engine, which has a structural barrier.
        """
        state = state or self.state
        authorization = state.gateway.authorize(
            sql, principal, purpose, read_dialect, write_dialect, engine_barrier=engine_barrier
        )
        product, result = logged_outcome(state, authorization)
        if context:
            result = {**result, **context}  # a copy: the outcome is cached per authorization
        decision_id = self.record(
            kind=kind,
            principal=principal.id,
            product=product,
            document=None,
            allowed=authorization.allowed,
            result=result,
            revision=state.revision,
            digest=request_digest(state, sql, purpose, read_dialect, write_dialect),
        )
        return authorization, decision_id, state

    def query_engine(self, state: ServingState) -> QueryEngine:
        """The engine for this state's catalogue (DuckDB reloads when the catalogue changes)."""
        with self._engine_lock:
            if self._query_engine is not None and self._query_engine_catalog == (
                state.catalog.revision
            ):
                return cast("QueryEngine", self._query_engine)
            from meshgov.engines.base import open_engine

            # One product's missing or refused snapshot fails only the queries that read it.
            engine = open_engine(
                self.settings.query_engine,
                state.catalog,
                self.settings.hash_key(),
                timeout_ms=int(self.settings.request_timeout_seconds * 1000),
                isolate_failures=True,
                limits=ResultLimits.from_settings(self.settings),
            )
            # The previous engine may still serve in-flight queries; DuckDB frees it on GC.
            self._query_engine = engine
            self._query_engine_catalog = state.catalog.revision
            return engine

    def execute(
        self,
        principal: Principal,
        sql: str,
        purpose: str | None,
        read_dialect: str | None,
        *,
        kind: DecisionKind = "execute",
        context: dict[str, Any] | None = None,
    ) -> tuple[Any, Authorization, str]:
        """Authorize, then run the secure SQL on the engine → (Arrow table, authorization, id)."""
        engine, authorization, decision_id = self._authorized(
            principal, sql, purpose, read_dialect, kind, context
        )
        return run_secure_sql(engine, authorization.sql or ""), authorization, decision_id

    def execute_stream(
        self,
        principal: Principal,
        sql: str,
        purpose: str | None,
        read_dialect: str | None,
        *,
        kind: DecisionKind = "execute",
        context: dict[str, Any] | None = None,
    ) -> tuple[ResultStream, Authorization, str]:
        """``execute`` with the rows as a stream of Arrow batches (the caller closes it)."""
        engine, authorization, decision_id = self._authorized(
            principal, sql, purpose, read_dialect, kind, context
        )
        return run_secure_stream(engine, authorization.sql or ""), authorization, decision_id

    def _authorized(
        self,
        principal: Principal,
        sql: str,
        purpose: str | None,
        read_dialect: str | None,
        kind: DecisionKind,
        context: dict[str, Any] | None,
    ) -> tuple[QueryEngine, Authorization, str]:
        state = self.state
        engine = self.query_engine(state)
        # One state for the whole request: an activation meanwhile does not mix revisions.
        authorization, decision_id, _ = self.authorize(
            principal,
            sql,
            purpose,
            read_dialect or engine.dialect,
            engine.dialect,
            kind=kind,
            state=state,
            context=context,
            engine_barrier=structural_barrier(engine),
        )
        if not authorization.allowed:
            # Unparseable SQL or an unknown dialect is the caller's input (400); the rest deny.
            raise authorization.refusal()
        if not authorization.sql:
            raise AccessDenied("the gateway returned no SQL to run")
        return engine, authorization, decision_id

    def visible_tables(
        self, principal: Principal, purpose: str | None
    ) -> list[tuple[PortRef, Any]]:
        """The table ports ``principal`` may read under ``purpose``, each with the Arrow schema a
        ``SELECT *`` of it returns (visible columns only, masked types): what introspection shows.

        Asked of the gateway and the engine as any query is (not logged: it reads no rows).
        """
        state = self.state
        engine = self.query_engine(state)
        visible: list[tuple[PortRef, Any]] = []
        for port in self.ports(state):
            if not self.access_decision(state, principal, purpose, port).allow:
                continue
            *schema, name = port.table[-2:]
            table = exp.table_(name, db=schema[0] if schema else None)
            probe = exp.select("*").from_(table).limit(0)
            authorization = state.gateway.authorize(
                probe.sql("postgres"), principal, purpose, "postgres", engine.dialect
            )
            if not authorization.allowed or not authorization.sql:
                continue
            try:
                visible.append((port, run_secure_sql(engine, authorization.sql).schema))
            except MeshgovError as exc:  # an unavailable snapshot hides only its port
                log.warning("port %s:%s not introspected: %s", port.product, port.port, exc)
        return visible

    def evaluate(self, path: str, input_document: Any) -> tuple[Any, str]:
        """The value of ``data.<path>`` (``None`` = undefined) and the revision that computed it."""
        state = self.state
        query = data_query(path)
        return state.prepared.evaluate(query, input_document), state.revision


def data_query(path: str) -> str:
    """``meshgov/access/decision`` → ``data.meshgov.access.decision`` (identifiers only)."""
    parts = [p for p in path.strip("/").split("/") if p]
    for part in parts:
        if not part.replace("_", "a").isalnum() or part[0].isdigit():
            raise InputError(f"invalid data path segment {part!r}")
    return "data" + "".join(f".{p}" for p in parts)
