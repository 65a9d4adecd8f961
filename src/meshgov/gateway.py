"""Read-time enforcement facade: access decisions and secure SQL for a catalogue and a policy.

``Gateway`` prepares the policy once per (bundle revision, catalog revision) with the catalogue's
products as data (``data.catalog.products``, plus their access view ``data.catalog.access``: see
``catalog_policy_data``), so one decision's input is only the principal, the purpose and the
product/port. Decisions and rewrites are cached in bounded, thread-safe LRUs keyed
on everything they depend on. ``authorize`` never raises for policy or SQL problems: it returns
``Authorization(allowed=False, reason=...)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

# What the policies see of the catalogue lives in access_data; these names stay importable here.
from meshgov.access_data import ACCESS_ENTRYPOINT as ACCESS_ENTRYPOINT
from meshgov.access_data import _access_view as _access_view
from meshgov.access_data import access_source as access_source
from meshgov.access_data import catalog_policy_data as catalog_policy_data
from meshgov.access_data import gateway_policy_data as gateway_policy_data
from meshgov.catalog import PER_MANIFEST, Catalog
from meshgov.core.collection import freeze_if_large
from meshgov.core.manifest import Manifest
from meshgov.core.policy import PolicyBundle, PolicyEngine, PreparedPolicy
from meshgov.core.principal import Principal
from meshgov.core.sql.model import AccessDecision, PortRef, TableAccess, ports_of
from meshgov.core.sql.parse import check_dialect
from meshgov.core.sql.rewrite import rewrite, with_suggestion
from meshgov.errors import (
    AccessDenied,
    InputError,
    MeshgovError,
    PrincipalError,
    SqlDialectError,
    SqlParseError,
    SqlUnsupportedError,
    UnknownNameError,
)

ACCESS_QUERY = "data.meshgov.access.decision"
# The engines' default schemas: an unqualified port table lives there (DuckDB main, PostgreSQL
# public), so either qualifies it.
DEFAULT_SCHEMAS = ("public", "main")


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A bounded LRU map guarded by a lock (gateways serve many threads)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def peek(self, key: K) -> V | None:
        """The value, without touching order or statistics (a dict read needs no lock)."""
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# Dialect names: one check for the gateway, the CLI and the API (re-exported here).
sql_dialect = check_dialect


# A refusal's ``code`` → the error it is (what the CLI exits with, what HTTP answers). Input
# problems are the caller's (exit 2 / 400); every other code, known or not, is a denial (exit 3 /
# 403): an unexpected code fails closed.
_REFUSALS: dict[str, type[MeshgovError]] = {
    cls.code: cls
    for cls in (
        InputError,
        PrincipalError,
        SqlParseError,
        SqlDialectError,
        SqlUnsupportedError,
        AccessDenied,
    )
}


@dataclass(frozen=True)
class Authorization:
    """The outcome of ``Gateway.authorize``: the secure SQL to run, or a denial with a reason."""

    allowed: bool
    sql: str | None
    reason: str | None
    tables: tuple[TableAccess, ...] = ()
    code: str | None = None
    # The (product, port) a denial is about, when the denial names one (so the log keeps it).
    denied_port: tuple[str, str] | None = None
    policy_revision: str = ""
    catalog_revision: str = ""
    read_dialect: str = ""
    write_dialect: str = ""

    def decision(self) -> dict[str, Any]:
        """The decision as shown to users (``meshgov rewrite``, HTTP authorize)."""
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "code": self.code,
            "policy_revision": self.policy_revision,
            "catalog_revision": self.catalog_revision,
            "tables": [t.as_dict() for t in self.tables],
        }

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "sql": self.sql, "decision": self.decision()}

    @property
    def invalid_input(self) -> bool:
        """Refused because the request itself is invalid (unparseable SQL, unknown dialect), not
        because the policy denies it: exit 2 / HTTP 400 rather than exit 3 / 403."""
        return not self.allowed and issubclass(
            _REFUSALS.get(self.code or "", AccessDenied), InputError
        )

    def refusal(self) -> MeshgovError:
        """The refusal as the error its ``code`` names: ``SqlParseError`` for ``invalid_sql``,
        ``SqlDialectError`` for ``invalid_dialect``, ``SqlUnsupportedError``, and ``AccessDenied``
        for every other code (fail closed)."""
        cls = _REFUSALS.get(self.code or "", AccessDenied)
        return cls(self.reason or ("invalid input" if self.invalid_input else "access denied"))


def _ports_of_one(manifest: Manifest) -> list[PortRef]:
    return ports_of({manifest.id: manifest})


def catalog_ports(catalog: Catalog) -> list[PortRef]:
    """Every table port of ``catalog`` (as ``ports_of``), each manifest's derived once while it
    stays in the catalogue (the gateway's own port objects)."""
    return [
        port
        for manifest in catalog.manifests.values()
        for port in PER_MANIFEST.get(manifest, "ports", _ports_of_one)
    ]


def _normalise_dialect(dialect: str | None, default: str) -> str:
    name = (dialect or default).lower()
    return "postgres" if name == "postgresql" else name


class Gateway:
    """Access decisions and query authorization for one catalogue under one policy bundle."""

    def __init__(
        self,
        catalog: Catalog,
        bundle: PolicyBundle,
        engine: PolicyEngine | None = None,
        *,
        decision_cache_size: int = 65_536,
        rewrite_cache_size: int = 16_384,
        default_dialect: str = "duckdb",
    ) -> None:
        if engine is None:
            from meshgov.policy_backends.embedded import EmbeddedEngine

            engine = EmbeddedEngine()
        self.catalog = catalog
        self.bundle = bundle
        self.engine = engine
        self.default_dialect = default_dialect
        # Compiled once per (bundle revision, catalog revision): the catalogue is data.
        self.policy: PreparedPolicy = engine.prepare(
            bundle, gateway_policy_data(bundle, catalog), entrypoints=[ACCESS_ENTRYPOINT]
        )
        self._ports: dict[tuple[str, ...], PortRef] = {}
        ambiguous: set[tuple[str, ...]] = set()
        # Each manifest's ports are derived once while it stays in the catalogue.
        for manifest in catalog.manifests.values():
            for port in PER_MANIFEST.get(manifest, "ports", _ports_of_one):
                if port.table in self._ports:
                    ambiguous.add(port.table)
                self._ports[port.table] = port
        # Two ports claiming one physical table: neither can be resolved safely (deny).
        for parts in ambiguous:
            del self._ports[parts]
        self._purposes = frozenset(p.lower() for p in registered_purposes(bundle))
        self._decisions: LruCache[tuple[str, ...], AccessDecision] = LruCache(decision_cache_size)
        self._rewrites: LruCache[tuple[str, ...], Authorization] = LruCache(rewrite_cache_size)
        freeze_if_large(len(catalog.manifests))  # the prepared policy and views live on

    @property
    def revision(self) -> str:
        return f"{self.policy.revision}:{self.catalog.revision}"

    def resolve_port(self, parts: tuple[str, ...]) -> PortRef | None:
        """A port by its normalised physical name parts, under one naming model everywhere:

        - a port's ``table`` is ``[schema.]table``; without a schema it lives in the engine's
          default schema, so ``public.t`` and ``main.t`` name port ``t`` (and ``t`` names a port
          declared ``public.t`` or ``main.t``);
        - a purpose (the database of a PostgreSQL-protocol session) as catalogue qualifies the
          same table: ``analytics.customer.customers`` is ``customer.customers``.
        An exact declared name always wins; two ports that the rules make equal are ambiguous
        and resolve to neither (deny).
        """
        found = self._ports.get(parts)
        if found is not None:
            return found
        if len(parts) == 3 and parts[0] in self._purposes:
            return self.resolve_port(parts[1:])
        if len(parts) == 2 and parts[0] in DEFAULT_SCHEMAS:
            return self._ports.get(parts[1:])
        if len(parts) == 1:
            candidates = {self._ports.get((schema, parts[0])) for schema in DEFAULT_SCHEMAS}
            candidates.discard(None)
            return candidates.pop() if len(candidates) == 1 else None
        return None

    def port(self, product: str, port: str) -> PortRef | None:
        return next(
            (p for p in self._ports.values() if p.product == product and p.port == port), None
        )

    def decide(
        self, principal: Principal, purpose: str | None, product: str, port: str
    ) -> AccessDecision:
        """The access decision (cached); any policy fault is a denial, never an exception."""
        purpose = purpose if purpose is not None else principal.purpose
        key = (
            self.policy.revision,
            self.catalog.revision,
            principal.cache_key(),
            purpose or "",
            product,
            port,
        )
        cached = self._decisions.get(key)
        if cached is not None:
            return cached
        request = {
            "principal": principal.policy_document(),
            "purpose": purpose,
            "product": product,
            "port": port,
        }
        try:
            output = self.policy.evaluate(ACCESS_QUERY, request)
            decision = AccessDecision.from_policy_output(output, self.policy.revision)
        except MeshgovError as exc:
            # Not cached: an engine fault may be transient.
            return AccessDecision.deny(f"policy evaluation failed: {exc}", self.policy.revision)
        self._decisions.put(key, decision)
        return decision

    def authorize(
        self,
        sql: str,
        principal: Principal,
        purpose: str | None = None,
        read_dialect: str | None = None,
        write_dialect: str | None = None,
        *,
        engine_barrier: bool = False,
    ) -> Authorization:
        """Rewrite ``sql`` into secure SQL for ``principal``/``purpose`` or deny with a reason.

        ``engine_barrier``: the SQL runs on an engine that puts every row-filtered secure view
        behind a barrier (``QueryEngine.structural_barrier``); see ``core.sql.rewrite``.
        """
        purpose = purpose if purpose is not None else principal.purpose
        read = _normalise_dialect(read_dialect, self.default_dialect)
        write = _normalise_dialect(write_dialect, read)
        key = self._rewrite_key(sql, principal, purpose, read, write, engine_barrier)
        cached = self._rewrites.get(key)
        if cached is not None:
            return cached
        result = self._authorize(sql, principal, purpose, read, write, engine_barrier)
        self._rewrites.put(key, result)
        return result

    def cached(
        self,
        principal: Principal,
        sql: str,
        purpose: str | None = None,
        read_dialect: str | None = None,
        write_dialect: str | None = None,
        *,
        engine_barrier: bool = False,
    ) -> Authorization | None:
        """The cached authorization of this request, if any (no work, no statistics): callers
        answer a cached one in place and send the rest to a worker."""
        purpose = purpose if purpose is not None else principal.purpose
        read = _normalise_dialect(read_dialect, self.default_dialect)
        write = _normalise_dialect(write_dialect, read)
        key = self._rewrite_key(sql, principal, purpose, read, write, engine_barrier)
        return self._rewrites.peek(key)

    def _rewrite_key(
        self,
        sql: str,
        principal: Principal,
        purpose: str | None,
        read: str,
        write: str,
        engine_barrier: bool,
    ) -> tuple[str, ...]:
        return (
            self.policy.revision,
            self.catalog.revision,
            principal.cache_key(),
            purpose or "",
            read,
            write,
            "barrier" if engine_barrier else "",
            sql,
        )

    def _authorize(
        self,
        sql: str,
        principal: Principal,
        purpose: str | None,
        read: str,
        write: str,
        engine_barrier: bool = False,
    ) -> Authorization:
        def outcome(
            sql_out: str | None,
            reason: str | None,
            code: str | None,
            tables: tuple[TableAccess, ...] = (),
            denied_port: tuple[str, str] | None = None,
        ) -> Authorization:
            return Authorization(
                allowed=sql_out is not None,
                sql=sql_out,
                reason=reason,
                tables=tables,
                code=code,
                denied_port=denied_port,
                policy_revision=self.policy.revision,
                catalog_revision=self.catalog.revision,
                read_dialect=read,
                write_dialect=write,
            )

        try:
            # Checked here too (callers check first, naming their own option or field): an
            # unknown dialect is a usage error, never a denial.
            sql_dialect(read, "read dialect")
            sql_dialect(write, "write dialect")
        except SqlDialectError as exc:
            return outcome(None, exc.message, exc.code)
        try:
            rewritten = rewrite(
                sql,
                read=read,
                write=write,
                resolve_port=self.resolve_port,
                decide=lambda port: self.decide(principal, purpose, port.product, port.port),
                principal=principal,
                engine_barrier=engine_barrier,
            )
        except UnknownNameError as exc:
            if exc.what == "table":
                # Suggested among the tables this principal may read, never another.
                visible = [
                    port.table_name
                    for port in self._ports.values()
                    if self.decide(principal, purpose, port.product, port.port).allow
                ]
                exc = with_suggestion(exc, visible)
            return outcome(None, exc.message, exc.code)
        except MeshgovError as exc:
            where = exc.location
            port = (where.product, where.port) if where and where.product and where.port else None
            return outcome(None, exc.message, exc.code, denied_port=port)
        except Exception as exc:  # never the unrewritten query, never a traceback
            reason = f"internal error while authorizing ({type(exc).__name__}); denied"
            return outcome(None, reason, "internal_error")
        return outcome(rewritten.sql, None, None, rewritten.tables)

    def cache_stats(self) -> dict[str, int]:
        return {
            "decision_hits": self._decisions.hits,
            "decision_misses": self._decisions.misses,
            "rewrite_hits": self._rewrites.hits,
            "rewrite_misses": self._rewrites.misses,
        }


def access_impact(
    before: Gateway,
    after: Gateway,
    principals: Iterable[Principal],
    purposes: Iterable[str],
) -> list[dict[str, Any]]:
    """The access decisions that differ between two gateways over the same catalogue.

    For every port of ``after``'s catalogue × principal × purpose: one entry per decision whose
    outcome changes (allow, row filters, masks, hidden columns; reasons alone do not count), with
    ``change``: ``opened`` (deny → allow), ``closed`` (allow → deny), ``narrowed``/``widened``
    (still allowed; columns masked or hidden, or unmasked or shown) or ``changed`` (anything else:
    a row filter, a mask's kind), and both decisions.
    """
    changes: list[dict[str, Any]] = []
    people = sorted(principals, key=lambda p: p.id)
    for port in sorted(ports_of(after.catalog.manifests), key=lambda p: (p.product, p.port)):
        for principal in people:
            for purpose in sorted(set(purposes)):
                old = before.decide(principal, purpose, port.product, port.port)
                new = after.decide(principal, purpose, port.product, port.port)
                if old.fingerprint == new.fingerprint:
                    continue
                changes.append(
                    {
                        "product": port.product,
                        "port": port.port,
                        "principal": principal.id,
                        "purpose": purpose,
                        "change": _change_kind(old, new),
                        "before": old.as_dict(),
                        "after": new.as_dict(),
                    }
                )
    return changes


def registered_purposes(bundle: PolicyBundle) -> set[str]:
    """The purposes ``data.registry.purposes`` registers in ``bundle``."""
    purposes = bundle.data.get("registry", {}).get("purposes")
    return {str(name) for name in purposes} if isinstance(purposes, Mapping) else set()


def _change_kind(old: AccessDecision, new: AccessDecision) -> str:
    if old.allow != new.allow:
        return "opened" if new.allow else "closed"
    if old.row_filters != new.row_filters:
        return "changed"
    # Compared as (narrowed columns, hidden columns): more of either reads less.
    old_sets = (set(old.masks) | old.hidden_columns, set(old.hidden_columns))
    new_sets = (set(new.masks) | new.hidden_columns, set(new.hidden_columns))
    if new_sets != old_sets:
        if all(n >= o for n, o in zip(new_sets, old_sets, strict=True)):
            return "narrowed"
        if all(n <= o for n, o in zip(new_sets, old_sets, strict=True)):
            return "widened"
    return "changed"


def load_gateway(
    catalog_dir: str, policies_dir: str | None = None, engine: PolicyEngine | None = None
) -> Gateway:
    """A gateway over a catalogue directory and a policy directory (default: ./policies)."""
    from pathlib import Path

    from meshgov.catalog import load_catalog
    from meshgov.policy_backends import load_bundle_dir

    if policies_dir is None:
        from meshgov.gate import default_policies_dir

        policies = default_policies_dir()
    else:
        policies = Path(policies_dir)
    return Gateway(load_catalog(catalog_dir), load_bundle_dir(policies), engine)
