"""Which columns a viewer may see: the column *metadata* the console's pages and the HTTP API's
answers show follows the viewer's access decisions (no request, no HTML here; both faces use it).

- The guild, and principals of a product's own domain (its owners), see every column.
- Anyone else sees a port's columns as its access decisions show them, for the purpose chosen on
  the page or, without one, the union over the purposes the product's grants name (the same union
  as the re-identification risk: a column is shown if some purpose shows it, marked masked if
  every purpose that shows it masks it). A column hidden from the viewer is absent: its name is
  not on the page, in a reason, a finding, a row filter or a graph answer. A port the viewer may
  not read shows no columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlglot import exp

from meshgov.authz import GUILD_GROUP
from meshgov.core.graph.risk import PortView, policy_access
from meshgov.core.manifest import Manifest
from meshgov.core.principal import Principal
from meshgov.errors import MeshgovError
from meshgov.serving.state import ServingState

HIDDEN = "[a column you may not see]"
_VIEWS_CACHE = "console_port_views"
_VIEWS_KEPT = 200_000  # (principal, purpose, product) entries per serving state


def sees_everything(principal: Principal, manifest: Manifest | None = None) -> bool:
    """The guild sees every column of every product; an owner every column of its domain's."""
    if GUILD_GROUP in principal.groups:
        return True
    return manifest is not None and principal.domain == manifest.metadata.domain


def port_views(
    state: ServingState, principal: Principal, purpose: str | None, manifest: Manifest
) -> dict[str, PortView] | None:
    """Per port of ``manifest``, what ``principal`` gets of it; None: everything (guild, owner).

    Remembered per serving state (the gateway caches the decisions too)."""
    if sees_everything(principal, manifest):
        return None
    cache: dict[tuple[str, str, str], dict[str, PortView]] = state.cache.setdefault(
        _VIEWS_CACHE, {}
    )
    key = (principal.cache_key(), purpose or "", manifest.id)
    found = cache.get(key)
    if found is None:
        gateway = state.gateway
        view = policy_access(
            lambda p, product, port: gateway.decide(principal, p, product, port), purpose
        )
        found = {port.name: view(manifest, port.name) for port in manifest.spec.output_ports}
        if len(cache) >= _VIEWS_KEPT:
            cache.clear()
        cache[key] = found
    return found


def known_hidden(state: ServingState, principal: Principal) -> Callable[[str], set[str] | None]:
    """``product → `` the column names of ``product`` hidden from ``principal`` (for the union of
    purposes) if already decided on this serving state (no decision is made), else None."""
    key = principal.cache_key()
    views_cache: dict[tuple[str, str, str], dict[str, PortView]] = state.cache.get(_VIEWS_CACHE, {})
    names_cache: dict[tuple[str, str], set[str]] = state.cache.setdefault(
        "console_hidden_names", {}
    )
    manifests = state.catalog.manifests

    def lookup(product: str) -> set[str] | None:
        found = names_cache.get((key, product))
        if found is not None:
            return found
        manifest = manifests.get(product)
        if manifest is None or sees_everything(principal, manifest):
            return set()
        views = views_cache.get((key, "", product))
        if views is None:
            return None
        found = names_cache[(key, product)] = hidden_in(manifest, views)
        return found

    return lookup


def hidden_in(manifest: Manifest, views: Mapping[str, PortView] | None) -> set[str]:
    """The column names of ``manifest`` the viewer may not see in any of its ports."""
    if views is None:
        return set()
    shown: set[str] = set()
    every: set[str] = set()
    for port in manifest.spec.output_ports:
        view = views.get(port.name)
        for column in port.columns:
            every.add(column.name)
            if view is not None and view.readable and column.name not in view.hidden:
                shown.add(column.name)
    return every - shown


def hidden_names(
    state: ServingState, principal: Principal, products: Iterable[str], purpose: str | None = None
) -> set[str]:
    """The column names hidden from ``principal`` in any of ``products`` (ids; unknown ones are
    skipped)."""
    names: set[str] = set()
    for product in set(products):
        manifest = state.catalog.manifests.get(product)
        if manifest is not None:
            names |= hidden_in(manifest, port_views(state, principal, purpose, manifest))
    return names


def redact(text: str, names: Iterable[str]) -> str:
    """``text`` (a reason, a finding: prose, not SQL) with each whole-word ``names`` replaced."""
    wanted = sorted({n for n in names if n}, key=len, reverse=True)
    if not wanted or not text:
        return text
    pattern = r"(?<![\w])(?:" + "|".join(re.escape(n) for n in wanted) + r")(?![\w])"
    return re.sub(pattern, HIDDEN, text)


def mentions(text: str, names: Iterable[str]) -> bool:
    return redact(text, names) != text


def row_filter_shown(sql: str | None, visible: set[str]) -> bool:
    """A grant's row filter may be shown when every column it names is visible to the viewer
    (parsed with sqlglot; one that does not parse is not shown)."""
    if not sql:
        return True
    from meshgov.core.sql.filters import _placeholder, parse_filter

    try:
        tree = parse_filter(sql)  # the template as the gateway parses it ({principal.x} too)
    except MeshgovError:
        return False
    return all(
        column.name in visible
        for column in tree.find_all(exp.Column)
        if _placeholder(column.parent) is None
    )


def product_columns(manifest: Manifest, views: Mapping[str, PortView] | None) -> dict[str, Any]:
    """Per port: ``readable``, and the columns the viewer may see with ``shown_mask`` (the mask
    kind applied to the viewer, None: in clear or the viewer sees everything)."""
    ports: dict[str, Any] = {}
    for port in manifest.spec.output_ports:
        view = None if views is None else views.get(port.name, PortView(False))
        if view is not None and not view.readable:
            ports[port.name] = {"readable": False, "columns": []}
            continue
        ports[port.name] = {
            "readable": True,
            "columns": [
                {"column": column, "shown_mask": view.masks.get(column.name) if view else None}
                for column in port.columns
                if view is None or column.name not in view.hidden
            ],
        }
    return ports


def visible_column(
    state: ServingState, principal: Principal, product: str, port: str | None, column: str | None
) -> bool:
    """Whether ``product:port:column`` (a graph answer's reference) is a column the viewer sees;
    references without a column are products or ports, always shown."""
    if column is None or port is None:
        return True
    manifest = state.catalog.manifests.get(product)
    if manifest is None:
        return True
    views = port_views(state, principal, None, manifest)
    if views is None:
        return True
    view = views.get(port)
    return view is not None and view.readable and column not in view.hidden


def _split_ref(ref: str) -> tuple[str, str | None, str | None]:
    product, _, rest = ref.partition(":")
    port, _, column = rest.partition(":")
    return product, port or None, column or None


def filter_graph_answer(state: ServingState, principal: Principal, question: str, data: Any) -> Any:
    """A graph answer's plain data without the columns hidden from a viewer who does not see
    everything (the answer of the guild is unchanged)."""
    if sees_everything(principal):
        return data

    def shown_ref(ref: str) -> bool:
        return visible_column(state, principal, *_split_ref(ref))

    if question == "impact":
        items = [
            i
            for i in data["items"]
            if visible_column(state, principal, i["product"], i["port"], i["column"])
            and (i["precision"] != "column" or shown_ref(i["via"]))
        ]
        kept = {i["product"] for i in items}
        owners = [
            {**o, "products": [p for p in o["products"] if p in kept]} for o in data["owners"]
        ]
        return {**data, "items": items, "owners": [o for o in owners if o["products"]]}
    if question == "pii":
        flows = []
        for flow in data:
            sources = []
            for source in flow["sources"]:
                columns = [
                    c
                    for c in source["columns"]
                    if visible_column(
                        state, principal, source["product"], source["port"], c.split(" (", 1)[0]
                    )
                ]
                if columns:
                    sources.append({**source, "columns": columns})
            if sources:
                flows.append({**flow, "sources": sources})
        return flows
    if question == "paths":
        paths = []
        for path in data:
            steps = []
            for step in path["steps"]:
                left = [c for c in step["left_columns"] if shown_ref(f"{step['left_product']}:{c}")]
                right = [
                    c for c in step["right_columns"] if shown_ref(f"{step['right_product']}:{c}")
                ]
                steps.append({**step, "left_columns": left, "right_columns": right})
            # A path joining only on columns the viewer cannot see is not a path for it.
            if all(s["left_columns"] and s["right_columns"] for s in steps):
                paths.append({**path, "steps": steps})
        return paths
    return data


def _redact_finding(finding: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: redact(v, names) if isinstance(v, str) else v for k, v in finding.items()}


def redact_checks(checks: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
    """The product page's release checks with the hidden column names taken out of findings."""
    if not names:
        return checks
    out = []
    for row in checks:
        check = row["check"]
        redacted = {
            **check,
            "findings": [_redact_finding(f, names) for f in check["findings"]],
            "error": redact(check["error"], names) if check.get("error") else check.get("error"),
        }
        published = row["at_publication"]
        if published is not None and published.get("findings"):
            published = {
                **published,
                "findings": [_redact_finding(f, names) for f in published["findings"]],
            }
        out.append({**row, "check": redacted, "at_publication": published})
    return out


def redact_value(value: Any, names: set[str]) -> Any:
    """``value`` (plain data: dicts, lists, strings) with the hidden ``names`` taken out of every
    string; a list that held only hidden names becomes empty."""
    if isinstance(value, str):
        return HIDDEN if value in names else redact(value, names)
    if isinstance(value, Mapping):
        return {
            (redact(k, names) if isinstance(k, str) else k): redact_value(v, names)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v, names) for v in value if not (isinstance(v, str) and v in names)]
    return value


# --- whole documents (the HTTP API's answers) ----------------------------------------------------


def shown_manifest(state: ServingState, principal: Principal, manifest: Manifest) -> Manifest:
    """``manifest`` (any version of a registered product) as ``principal`` may see it: the
    columns hidden from it absent, ``derivedFrom`` references to columns hidden from it in other
    products absent, the names of its hidden columns out of descriptions and row filters. Which
    columns are visible is decided on the registered (latest) version: an older version's column
    that is not visible there is hidden too (fail closed)."""
    if sees_everything(principal, manifest):
        return manifest
    current = state.catalog.manifests.get(manifest.id, manifest)
    views = port_views(state, principal, None, current)
    visible: dict[str, set[str]] = {}
    for port in current.spec.output_ports:
        view = None if views is None else views.get(port.name)
        if views is None or (view is not None and view.readable):
            visible[port.name] = {
                c.name for c in port.columns if view is None or c.name not in view.hidden
            }
    every = {c.name for p in manifest.spec.output_ports for c in p.columns}
    shown_names = {
        c.name
        for p in manifest.spec.output_ports
        for c in p.columns
        if c.name in visible.get(p.name, set())
    }
    names = every - shown_names

    def shown_refs(refs: list[str]) -> list[str]:
        kept = []
        for ref in refs:
            product, port, column = _split_ref(ref)
            if product == manifest.id:
                if column in visible.get(port or "", set()):
                    kept.append(ref)
            elif visible_column(state, principal, product, port, column):
                kept.append(ref)
        return kept

    if not names and _unchanged(manifest, shown_names, shown_refs):
        return manifest  # nothing to leave out: the manifest as published (and its text)
    ports = []
    for port in manifest.spec.output_ports:
        columns = [
            c.model_copy(
                update={
                    "description": redact(c.description, names) if c.description else None,
                    "derived_from": shown_refs(c.derived_from),
                }
            )
            for c in port.columns
            if c.name in visible.get(port.name, set())
        ]
        description = redact(port.description, names) if port.description else None
        ports.append(port.model_copy(update={"columns": columns, "description": description}))
    grants = [
        g
        if row_filter_shown(g.row_filter, shown_names)
        else g.model_copy(update={"row_filter": _hidden_filter(g.row_filter or "", names)})
        for g in manifest.spec.access.grants
    ]
    access = manifest.spec.access.model_copy(update={"grants": grants})
    spec = manifest.spec.model_copy(update={"output_ports": ports, "access": access})
    return manifest.model_copy(update={"spec": spec})


def _unchanged(
    manifest: Manifest, shown_names: set[str], shown_refs: Callable[[list[str]], list[str]]
) -> bool:
    """Every column shown: whether the references and row filters are all shown as they are."""
    for port in manifest.spec.output_ports:
        for column in port.columns:
            if column.derived_from and shown_refs(column.derived_from) != column.derived_from:
                return False
    return all(row_filter_shown(g.row_filter, shown_names) for g in manifest.spec.access.grants)


def _hidden_filter(sql: str, names: set[str]) -> str:
    """A row filter naming a column the viewer may not see: those names replaced (as prose);
    one that still shows nothing wrong but did not parse is replaced whole."""
    shown = redact(sql, names)
    return shown if shown != sql else HIDDEN


def manifest_text(manifest: Manifest) -> str:
    """A manifest as meshgov/v1 YAML (what a viewer who may not see every column gets in place
    of the text as published)."""
    import yaml

    document = manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))


def redact_access(state: ServingState, principal: Principal, overview: Any) -> Any:
    """``GET /v1/access``'s answer as the console's access explorer shows it to ``principal``:
    for each port of a product whose columns it does not all see, hidden columns are not named
    (``hidden_columns`` empty) nor in its reasons or bound row filter."""
    ports = []
    for port in overview.ports:
        manifest = state.catalog.manifests.get(port.product)
        if manifest is None or not sees_everything(principal, manifest):
            names = set(port.hidden_columns) | hidden_names(state, principal, [port.product])
            port = port.model_copy(
                update={
                    "hidden_columns": [],
                    "reasons": [redact(r, names) for r in port.reasons],
                    "row_filter": redact(port.row_filter, names) if port.row_filter else None,
                }
            )
        ports.append(port)
    return overview.model_copy(update={"ports": ports})


def redact_findings(
    state: ServingState,
    principal: Principal,
    findings: list[dict[str, Any]],
    products: Iterable[str],
    known: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Release-check ``findings`` without the names of the columns hidden from ``principal`` in
    ``products`` (the product checked and those it reads), except the ``known`` names (the
    columns of the manifest the principal sent)."""
    if sees_everything(principal) or not findings:
        return findings
    names = hidden_names(state, principal, products) - set(known)
    if not names:
        return findings
    redacted: list[dict[str, Any]] = redact_value(findings, names)
    return redacted


def filter_entities(
    state: ServingState, principal: Principal, data: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``GET /v1/graph/entities``'s plain data without the carrying columns hidden from
    ``principal``; an entity only hidden columns carry (and not registered) is absent."""
    if sees_everything(principal):
        return data
    shown = []
    for entity in data:
        carriers = [
            c
            for c in entity["carriers"]
            if visible_column(state, principal, c["product"], c["port"], c["column"])
        ]
        if carriers or entity["registered"]:
            products = sorted({c["product"] for c in carriers})
            shown.append({**entity, "carriers": carriers, "products": products})
    return shown


_GRAPHS_KEPT = 64  # graphs built for viewers who may not see every column, per serving state


def graph_for(state: ServingState, principal: Principal, graph: Any) -> Any:
    """The entity graph ``principal`` may see whole (exports): ``graph`` (the mesh's) for the
    guild; for anyone else one built from the manifests as it may see them (remembered per
    serving state and viewer)."""
    if sees_everything(principal):
        return graph
    from meshgov.core.graph import build_graph

    cache: dict[str, Any] = state.cache.setdefault("viewer_graphs", {})
    key = principal.cache_key()
    found = cache.get(key)
    if found is None:
        manifests = [shown_manifest(state, principal, m) for m in state.catalog.manifests.values()]
        registry = state.bundle.data.get("registry", {})
        entities = registry.get("entities") if isinstance(registry, dict) else None
        found = build_graph(manifests, entities)
        if len(cache) >= _GRAPHS_KEPT:
            cache.clear()
        cache[key] = found
    return found


def findings_scope(
    text: str, product: str | None = None, previous: str | None = None
) -> tuple[list[str], set[str]]:
    """For the findings of a check of the manifest ``text``: the products whose hidden column
    names they could hold (the product itself, ``product`` — the one published to — and those
    it reads) and the column names the sender wrote (``text``, ``previous``), which it knows."""
    from meshgov.catalog import read_manifest_text

    products = {product} if product else set()
    known: set[str] = set()
    for document in (text, previous):
        if not document:
            continue
        try:
            manifest = read_manifest_text(document, "request")
        except MeshgovError:  # the check reports it; the sender's own text is all there is
            continue
        products.add(manifest.id)
        products.update(i.product for i in manifest.spec.inputs)
        for port in manifest.spec.output_ports:
            for column in port.columns:
                known.add(column.name)
                products.update(ref.split(":", 1)[0] for ref in column.derived_from)
    return sorted(products), known
