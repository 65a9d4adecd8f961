"""What the console's pages show, computed from the serving state (no request, no HTML here)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import yaml

from meshgov.core.manifest import Classification, Manifest
from meshgov.core.principal import Principal
from meshgov.errors import InputError, MeshgovError
from meshgov.gateway import registered_purposes
from meshgov.serving.state import ServingState
from meshgov.store.base import DecisionRecord, PolicyRevision, ProductVersion

CLASSIFICATIONS = [c.value for c in Classification]
T = TypeVar("T")
_CATALOGUE_CACHE = "console_catalogue"
_FACETS_CACHE = "console_catalogue_facets"


@dataclass(frozen=True)
class CatalogueRow:
    id: str
    domain: str
    name: str
    version: str
    owner: str
    status: str
    description: str
    ports: tuple[str, ...]
    pii: bool
    classifications: frozenset[str]
    entities: tuple[str, ...]
    text: str  # lower-case haystack for the text search (column names apart)
    columns: tuple[str, ...]  # the column names (searched only where the viewer may see them)


_WARM_CACHE = "console_warmed"
_WARM_LOCK = threading.Lock()
_MEMO_SIZE = 256


def warm(state: ServingState) -> None:
    """Build the per-state values the pages share (catalogue rows and facets, the entity graph)
    in a background thread, once per serving state: a new state (an activation, a publication)
    is then warm before most pages ask for it."""
    with _WARM_LOCK:
        if state.cache.get(_WARM_CACHE):
            return
        state.cache[_WARM_CACHE] = True

    def build() -> None:
        try:
            from sqlglot.dialects.dialect import Dialect

            catalogue_facets(state)
            port_by_key(state)
            readers(state)
            # sqlglot loads a dialect on its first use (≈ 0.5 s for DuckDB's): the explorer's
            # and the overview's rewrites use the gateway's default and DuckDB.
            for dialect in {"duckdb", state.gateway.default_dialect}:
                Dialect.get_or_raise(dialect)
            # The release gate's identity index of the catalogue (the product page's check).
            state.gate.identity.facts(state.catalog.manifests, [])
            from meshgov.console.graph_views import graph_of

            graph_of(state)
        except Exception:  # a failure here only means the page builds it itself (and says why)
            return

    threading.Thread(target=build, name="meshgov-console-warm", daemon=True).start()


def memo(state: ServingState, name: str, key: Any, compute: Callable[[], T]) -> T:
    """``compute()`` remembered per serving state under ``(name, key)`` (bounded; cleared when
    full). For answers that depend only on the state and the key (no request, no clock)."""
    cache: dict[Any, Any] = state.cache.setdefault(f"console_memo:{name}", {})
    if key in cache:
        return cast(T, cache[key])
    value = compute()
    if len(cache) >= _MEMO_SIZE:
        cache.clear()
    cache[key] = value
    return value


def when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def catalogue_rows(state: ServingState) -> list[CatalogueRow]:
    """One row per product of the serving catalogue (built once per state)."""
    rows: list[CatalogueRow] | None = state.cache.get(_CATALOGUE_CACHE)
    if rows is None:
        rows = [_row(key, m) for key, m in sorted(state.catalog.manifests.items())]
        state.cache[_CATALOGUE_CACHE] = rows
    return rows


def _row(key: str, manifest: Manifest) -> CatalogueRow:
    meta = manifest.metadata
    columns = [c for p in manifest.spec.output_ports for c in p.columns]
    entities = tuple(sorted({c.entity for c in columns if c.entity}))
    text = " ".join([key, meta.owner or "", meta.description or "", *meta.tags, *entities]).lower()
    return CatalogueRow(
        id=key,
        domain=meta.domain,
        name=meta.name,
        version=meta.version,
        owner=meta.owner or "",
        status=meta.status.value if meta.status else "",
        description=meta.description or "",
        ports=tuple(p.name for p in manifest.spec.output_ports),
        pii=any(c.pii for c in columns),
        classifications=frozenset(c.classification.value for c in columns if c.classification),
        entities=entities,
        text=text,
        columns=tuple(sorted({c.name for c in columns})),
    )


@dataclass(frozen=True)
class CatalogueFacets:
    """The choices of the catalogue's filters (built once per state)."""

    domains: tuple[str, ...]
    entities: tuple[str, ...]
    statuses: tuple[str, ...]


def catalogue_facets(state: ServingState) -> CatalogueFacets:
    facets: CatalogueFacets | None = state.cache.get(_FACETS_CACHE)
    if facets is None:
        rows = catalogue_rows(state)
        facets = CatalogueFacets(
            tuple(sorted({r.domain for r in rows})),
            tuple(sorted({e for r in rows for e in r.entities})),
            tuple(sorted({r.status for r in rows if r.status})),
        )
        state.cache[_FACETS_CACHE] = facets
    return facets


def filter_catalogue(
    rows: list[CatalogueRow],
    text: str,
    domain: str = "",
    classification: str = "",
    entity: str = "",
    status: str = "",
    hidden_of: Callable[[CatalogueRow], set[str] | None] | None = None,
) -> list[CatalogueRow]:
    """The rows matching the filters; the text matches a column name only where ``hidden_of``
    (the names hidden from the viewer in a row's product, None when not known yet: no match; no
    ``hidden_of``: the viewer sees every column) does not hide it. It is asked only of rows that
    match by a column name alone."""
    needle = text.strip().lower()
    if not (needle or domain or classification or entity or status):
        return rows

    def matches(r: CatalogueRow) -> bool:
        if needle in r.text:
            return True
        named = [c for c in r.columns if needle in c.lower()]
        if not named:
            return False
        if hidden_of is None:
            return True
        hidden = hidden_of(r)
        return hidden is not None and bool(set(named) - hidden)

    return [
        r
        for r in rows
        if (not domain or r.domain == domain)
        and (not classification or classification in r.classifications)
        and (not entity or entity in r.entities)
        and (not status or r.status == status)
        and (not needle or matches(r))
    ]


def product_view(
    state: ServingState, manifest: Manifest, viewer: Principal, purpose: str | None
) -> dict[str, Any]:
    """Ports and columns (as ``viewer``'s access decisions show them, see ``visibility``), grants,
    lineage up and down, and entities of one product."""
    from meshgov.console import visibility

    key = f"{manifest.metadata.domain}/{manifest.metadata.name}"
    downstream = readers(state).get(key, [])
    columns = [c for p in manifest.spec.output_ports for c in p.columns]
    views = visibility.port_views(state, viewer, purpose, manifest)
    hidden = visibility.hidden_in(manifest, views)
    visible = {c.name for c in columns} - hidden
    grants = [
        {
            "to": g.to,
            "purposes": g.purposes,
            "ports": g.ports,
            "row_filter": g.row_filter,
            "row_filter_shown": visibility.row_filter_shown(g.row_filter, visible),
        }
        for g in manifest.spec.access.grants
    ]
    return {
        "id": key,
        "meta": manifest.metadata,
        "ports": manifest.spec.output_ports,
        "columns": visibility.product_columns(manifest, views),
        "everything": views is None,
        "hidden": hidden,
        "grants": grants,
        "upstream": sorted({f"{i.product}" for i in manifest.spec.inputs}),
        "downstream": downstream,
        "entities": sorted({c.entity for c in columns if c.entity and c.name in visible}),
        "pii": any(c.pii for c in columns),
    }


def readers(state: ServingState) -> dict[str, list[str]]:
    """Product → the products declaring it as an input, sorted (once per state)."""
    found: dict[str, list[str]] | None = state.cache.get("console_readers")
    if found is None:
        index: dict[str, set[str]] = {}
        for other, m in state.catalog.manifests.items():
            for i in m.spec.inputs:
                index.setdefault(i.product, set()).add(other)
        found = {product: sorted(names) for product, names in index.items()}
        state.cache["console_readers"] = found
    return found


def purposes(state: ServingState) -> list[str]:
    return sorted(registered_purposes(state.bundle))


def revision_row(revision: PolicyRevision, active: str | None) -> dict[str, Any]:
    tests = revision.report.get("tests", {})
    return {
        "id": revision.id,
        "short": revision.id[:12],
        "author": revision.author,
        "created": when(revision.created_at),
        "status": revision.status,
        "activatable": revision.activatable,
        "active": revision.id == active,
        "tests": f"{tests.get('passed', '?')} passed, {tests.get('failed', '?')} failed"
        if tests
        else "",
        "impact": len(revision.report.get("impact", [])),
        "access": len(revision.report.get("access", [])),
    }


def data_files(revision: PolicyRevision | None) -> dict[str, str]:
    """A revision's data documents as YAML text, one pseudo-file per top-level key (diffable)."""
    if revision is None:
        return {}
    return {
        f"data:{key}": yaml.safe_dump(value, sort_keys=True)
        for key, value in sorted(revision.data.items())
    }


_CHECKS_CACHE = "console_version_checks"


def version_checks(
    state: ServingState, versions: list[ProductVersion], published: dict[str, DecisionRecord]
) -> list[dict[str, Any]]:
    """Each version (newest first) with the findings of its release check: the check run now on
    the active revision (against the version before it), and the one recorded when it was
    published through the API (seeded versions have none). Computed once per serving state."""
    from meshgov.catalog import read_manifest_document
    from meshgov.gate import sourced
    from meshgov.serving.registry import finding_summary, gate_findings, gate_passes

    cache: dict[tuple[str, str, float], dict[str, Any]] = state.cache.setdefault(_CHECKS_CACHE, {})
    rows: list[dict[str, Any]] = []
    previous: Manifest | None = None
    for version in versions:
        key = (version.product_id, version.version, version.published_at)
        check = cache.get(key)
        manifest: Manifest | None = None
        try:
            manifest, doc = read_manifest_document(
                version.manifest, f"{version.product_id}@{version.version}"
            )
            if check is None:
                found = gate_findings(state.gate, sourced(manifest, doc), previous, state.catalog)
                check = {
                    "passes": gate_passes(found),
                    "findings": [finding_summary(f) for f in found],
                    "error": None,
                }
        except MeshgovError as exc:
            check = {"passes": False, "findings": [], "error": str(exc)}
        cache[key] = check
        record = published.get(version.version)
        rows.append(
            {
                "version": version.version,
                "published": when(version.published_at),
                "seeded": version.publisher.startswith("file:"),
                "publisher": "" if version.publisher.startswith("file:") else version.publisher,
                "check": check,
                "at_publication": None
                if record is None
                else {
                    "revision": record.revision,
                    "findings": record.result.get("checked"),
                    "count": record.result.get("findings"),
                    "decision": record.id,
                },
            }
        )
        previous = manifest or previous
    return list(reversed(rows))


def decision_row(record: DecisionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "time": when(record.time),
        "kind": record.kind,
        "principal": record.principal,
        "product": record.product or "",
        "allowed": record.allowed,
        "reason": record.result.get("reason") or "",
        "tables": ", ".join(record.result.get("tables", []) or []),
        "revision": record.revision[:12],
    }


def decision_kind(kind: str) -> str | None:
    from meshgov.store.base import DECISION_KINDS

    if not kind:
        return None
    if kind not in DECISION_KINDS:
        raise InputError(f"unknown decision kind {kind!r}; use one of: {', '.join(DECISION_KINDS)}")
    return kind


def parse_when(text: str, field_name: str, *, end: bool = False) -> float | None:
    """A time filter field (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]``, UTC) as UNIX seconds.

    A date alone in the "to" field means the end of that day."""
    text = text.strip()
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{field_name}: {text[:40]!r} is not a date or time (YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    if end and len(text) == 10:
        parsed += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return parsed.timestamp()


def decision_detail(record: DecisionRecord) -> dict[str, Any]:
    """Everything the decision log keeps of one decision (the input only as its digest)."""
    result = dict(record.result)
    reasons = result.pop("reasons", None) or []
    reason = result.pop("reason", None)
    tables = result.pop("tables", None) or []
    return {
        **decision_row(record),
        "revision_full": record.revision,
        "input_digest": record.input_digest,
        "reasons": [*([reason] if reason else []), *(str(r) for r in reasons)],
        "table_list": [str(t) for t in tables],
        "engine": result.pop("policy_engine", ""),
        "rest": dict(sorted(result.items())),
    }


@dataclass(frozen=True)
class OverviewPage:
    """One page of "what may I see?": the ports of the page (of the catalogue's table ports,
    sorted, of one domain or all), those the principal may read, and how many it may not."""

    overview: Any  # AccessOverview of the page's ports
    page: int
    pages: int
    total: int  # table ports matching the domain filter (readable or not)
    first: int  # 1-based number of the page's first port (0 when there are none)
    last: int


def sorted_ports(state: ServingState) -> list[Any]:
    """The catalogue's table ports sorted by product and port (once per state)."""
    from meshgov.gateway import catalog_ports

    ports: list[Any] | None = state.cache.get("console_sorted_ports")
    if ports is None:
        ports = sorted(catalog_ports(state.catalog), key=lambda p: (p.product, p.port))
        state.cache["console_sorted_ports"] = ports
    return ports


def port_by_key(state: ServingState) -> dict[str, Any]:
    """The catalogue's table ports by ``product:port`` (once per state)."""
    by_key: dict[str, Any] | None = state.cache.get("console_ports_by_key")
    if by_key is None:
        by_key = {f"{p.product}:{p.port}": p for p in sorted_ports(state)}
        state.cache["console_ports_by_key"] = by_key
    return by_key


@dataclass
class OverviewTotals:
    """The whole overview's counts (every matching port), counted in the background."""

    total: int
    decided: int = 0
    readable: int = 0
    denied: int = 0
    failed: str | None = None  # why the counting stopped (the page then shows no totals)

    @property
    def ready(self) -> bool:
        return self.failed is None and self.decided >= self.total


_TOTALS_LOCK = threading.Lock()
_TOTALS_CHUNK = 250
# Its own thread: the counts are a decision (and a rewrite when readable) per port.
_TOTALS_WORKER = ThreadPoolExecutor(1, thread_name_prefix="meshgov-console-totals")


def overview_totals(
    state: ServingState, principal: Principal, purpose: str | None, domain: str
) -> OverviewTotals:
    """The counts of the whole overview of ``domain`` (or all), the sum of its pages' counts:
    counted once per serving state, principal, purpose and domain in the background (the page
    shows them once ready)."""
    from meshgov.access_overview import access_overview

    key = (principal.cache_key(), purpose or "", domain)
    with _TOTALS_LOCK:
        jobs: dict[tuple[str, str, str], OverviewTotals] = state.cache.setdefault(
            "console_overview_totals", {}
        )
        found = jobs.get(key)
        if found is not None:
            return found
        ports = sorted_ports(state)
        if domain:
            ports = [p for p in ports if p.product.split("/", 1)[0] == domain]
        totals = jobs[key] = OverviewTotals(len(ports))

    def count() -> None:
        try:
            for start in range(0, len(ports), _TOTALS_CHUNK):
                chunk = ports[start : start + _TOTALS_CHUNK]
                part = access_overview(
                    state.gateway, principal, purpose, chunk, with_purposes=False
                )
                totals.readable += len(part.ports)
                totals.denied += part.denied
                totals.decided += len(chunk)
        except Exception as exc:  # shown on the page; the pages themselves are unaffected
            totals.failed = f"the totals could not be counted: {exc}"

    _TOTALS_WORKER.submit(count)
    return totals


def overview_page(
    state: ServingState,
    principal: Principal,
    purpose: str | None,
    domain: str,
    page: int,
    size: int,
    with_purposes: bool,
) -> OverviewPage:
    """A page of the access overview: one decision (and one ``SELECT *`` rewrite when readable)
    per port on the page, on the gateway of ``state``, the same answer as ``GET /v1/access``
    restricted to those ports."""
    from meshgov.access_overview import access_overview

    ports = sorted_ports(state)
    if domain:
        ports = [p for p in ports if p.product.split("/", 1)[0] == domain]
    pages = max(1, -(-len(ports) // size))
    page = min(max(page, 1), pages)
    shown = ports[(page - 1) * size : page * size]
    overview = access_overview(
        state.gateway, principal, purpose, shown, with_purposes=with_purposes
    )
    start = (page - 1) * size
    return OverviewPage(
        overview=overview,
        page=page,
        pages=pages,
        total=len(ports),
        first=start + 1 if shown else 0,
        last=start + len(shown),
    )
