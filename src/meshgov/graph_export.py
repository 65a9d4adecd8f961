"""Pictures and interchange formats of the entity graph: JSON, GraphML and one offline HTML page.

The HTML page is a single self-contained file (inline CSS, SVG and a little JS, nothing fetched):
domains are drawn as groups of products, entities as a band on top, lineage as arrows between
products, entity links as dashed lines; PII columns and PII-carrying products are marked in red.
The layout is computed here, in Python: products are placed by lineage depth so that data flows
left to right.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from typing import Any

from meshgov.core.collection import gc_paused
from meshgov.core.graph import EntityGraph, MeshIndex
from meshgov.core.graph.identity import lineage_sources
from meshgov.errors import InputError

HTML_MAX_PRODUCTS = 1500
HTML_COLUMNS_UP_TO = 80  # beyond this many products, boxes show no columns
HTML_ALL_COLUMNS_UP_TO = 12  # beyond, only identifier and PII columns are listed
HTML_ENTITY_LINKS_UP_TO = 12  # beyond, entity links show on hover (or with the toggle)
MAX_COLUMNS_SHOWN = 14


@gc_paused
def to_json(graph: EntityGraph) -> dict[str, Any]:
    """Node-link JSON: ``{nodes: [{id, kind, …}], edges: [{source, target, kind, …}], stats}``."""
    g = graph.nx_graph
    nodes = [{"id": node, **data} for node, data in g.nodes(data=True)]
    edges = [
        {"source": u, "target": v, "kind": key, **data}
        for u, v, key, data in g.edges(keys=True, data=True)
    ]
    stats = graph.stats()
    return {"nodes": nodes, "edges": edges, "stats": {"nodes": stats.nodes, "edges": stats.edges}}


def _graphml_value(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set):
        return ",".join(str(v) for v in value)
    return str(value)


@gc_paused
def to_graphml(graph: EntityGraph) -> str:
    """GraphML (for Gephi, yEd, Cytoscape): every attribute as a scalar; ``None`` left out.

    The graph's edge key is its kind (``exposes``, ``carries``…), shared by many edges, and
    networkx writes a multigraph's keys as edge ids, which GraphML requires to be unique in the
    document. Edges are therefore written with ids ``e0``, ``e1``… and the kind as the ``kind``
    data attribute.
    """
    import networkx as nx

    g = graph.nx_graph
    clean: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    for node, data in g.nodes(data=True):
        clean.add_node(node, **{k: _graphml_value(v) for k, v in data.items() if v is not None})
    for index, (u, v, key, data) in enumerate(g.edges(keys=True, data=True)):
        attrs = {k: _graphml_value(x) for k, x in data.items() if x is not None}
        attrs["kind"] = _graphml_value(key)
        clean.add_edge(u, v, key=f"e{index}", **attrs)
    buffer = io.BytesIO()
    nx.write_graphml(clean, buffer, encoding="utf-8")
    return buffer.getvalue().decode("utf-8")


# --- HTML -------------------------------------------------------------------------------------

BOX_WIDTH = 230
HEADER = 40
ROW = 16
GAP_X = 90
GAP_Y = 26
MARGIN = 30
DOMAIN_PAD = 14
ENTITY_BAND = 90
PALETTE = (
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
)


@dataclass
class _Box:
    product: str
    x: float
    y: float
    height: float
    rows: list[tuple[str, str]]  # (text, css class)
    pii: bool
    more: int


def _depths(index: MeshIndex) -> dict[str, int]:
    """Longest lineage distance from a source product (cycles are cut where they close)."""
    sources = {p: lineage_sources(index, p) & set(index.manifests) for p in index.manifests}
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(product: str) -> int:
        if product in depth:
            return depth[product]
        if product in visiting:
            return 0
        visiting.add(product)
        value = 1 + max((visit(s) for s in sources[product]), default=-1)
        visiting.discard(product)
        depth[product] = value
        return value

    for product in sorted(index.manifests):
        visit(product)
    return depth


def _rows(
    index: MeshIndex, product: str, show_columns: bool, all_columns: bool
) -> tuple[list[tuple[str, str]], int]:
    manifest = index.manifests[product]
    rows: list[tuple[str, str]] = []
    hidden = 0
    for port in manifest.spec.output_ports:
        for col in port.columns:
            classes = []
            label = col.name
            if len(manifest.spec.output_ports) > 1:
                label = f"{port.name}.{col.name}"
            if col.entity:
                classes.append("ident")
                label += f"  ⚷ {col.entity}"
            if col.pii:
                classes.append("pii")
                label += f"  PII:{col.pii_category or '?'}"
            if not all_columns and not classes:
                hidden += 1  # in a larger picture only identifiers and PII are listed
                continue
            rows.append((label, " ".join(classes)))
    if not show_columns:
        return [], 0
    shown = rows[:MAX_COLUMNS_SHOWN]
    return shown, len(rows) - len(shown) + hidden


@gc_paused
def to_html(graph: EntityGraph, title: str = "meshgov entity graph") -> str:
    """One self-contained HTML page picturing the mesh (see the module docstring)."""
    index = graph.index
    if len(index.manifests) > HTML_MAX_PRODUCTS:
        raise InputError(
            f"{len(index.manifests)} products are too many for the HTML picture "
            f"(at most {HTML_MAX_PRODUCTS}); export graphml and use a graph viewer"
        )
    show_columns = len(index.manifests) <= HTML_COLUMNS_UP_TO
    all_columns = len(index.manifests) <= HTML_ALL_COLUMNS_UP_TO
    depths = _depths(index)
    domains: dict[str, list[str]] = {}
    for product in index.manifests:
        domains.setdefault(product.split("/", 1)[0], []).append(product)
    order = sorted(
        domains,
        key=lambda d: (sum(depths[p] for p in domains[d]) / len(domains[d]), d),
    )
    boxes: dict[str, _Box] = {}
    domain_rects: list[tuple[str, float, float, float, float]] = []
    top = MARGIN + ENTITY_BAND
    x: float = MARGIN
    for domain in order:
        y = top + DOMAIN_PAD + 22
        for product in sorted(domains[domain], key=lambda p: (depths[p], p)):
            rows, more = _rows(index, product, show_columns, all_columns)
            box_height = HEADER + ROW * (len(rows) + (1 if more else 0)) + (6 if rows else 0)
            boxes[product] = _Box(
                product, x + DOMAIN_PAD, y, box_height, rows, index.declares_pii(product), more
            )
            y += box_height + GAP_Y
        domain_rects.append(
            (domain, x, top, BOX_WIDTH + 2 * DOMAIN_PAD, y - top - GAP_Y + DOMAIN_PAD)
        )
        x += BOX_WIDTH + 2 * DOMAIN_PAD + GAP_X
    width = max(x - GAP_X + MARGIN, 600)
    page_height = max((r[2] + r[4] for r in domain_rects), default=top) + MARGIN
    entity_names = sorted(set(index.registry) | set(index.carrier_products))
    entity_pos: dict[str, tuple[float, float]] = {}
    colour: dict[str, str] = {}
    step = (width - 2 * MARGIN) / max(len(entity_names), 1)
    for i, name in enumerate(entity_names):
        entity_pos[name] = (MARGIN + step * (i + 0.5), MARGIN + 24)
        colour[name] = PALETTE[i % len(PALETTE)]

    svg: list[str] = []
    esc = html.escape
    for domain, dx, dy, dw, dh in domain_rects:
        svg.append(
            f'<g class="domain"><rect x="{dx:.0f}" y="{dy:.0f}" width="{dw:.0f}" height="{dh:.0f}" '
            f'rx="10"/><text x="{dx + 12:.0f}" y="{dy + 22:.0f}">{esc(domain)}</text></g>'
        )
    # Lineage arrows, from the right edge of the source box to the left edge of the reader's box.
    for product in sorted(index.manifests):
        for source in sorted(lineage_sources(index, product)):
            if source not in boxes:
                continue
            a, b = boxes[source], boxes[product]
            y1, y2 = a.y + HEADER / 2, b.y + HEADER / 2
            if abs(a.x - b.x) < 1:  # same domain column: loop out to the right
                x1 = x2 = a.x + BOX_WIDTH
                bend = 40 + abs(y2 - y1) / 12
                path = (
                    f"M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} "
                    f"{x2 + bend:.0f},{y2:.0f} {x2 + 4:.0f},{y2:.0f}"
                )
            else:
                forward = b.x > a.x
                x1 = a.x + BOX_WIDTH if forward else a.x
                x2 = b.x - 4 if forward else b.x + BOX_WIDTH + 4
                mid = (x1 + x2) / 2
                path = (
                    f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
                )
            svg.append(
                f'<path class="edge lineage" data-a="{esc(source)}" data-b="{esc(product)}" '
                f'd="{path}" marker-end="url(#arrow)">'
                f"<title>{esc(source)} → {esc(product)}</title></path>"
            )
    # Entity links: entity → each product carrying it (dashed, coloured by entity).
    for name in entity_names:
        ex, ey = entity_pos[name]
        for product in sorted(index.carrier_products.get(name, ())):
            box = boxes[product]
            tx, ty = box.x + BOX_WIDTH / 2, box.y
            columns = ", ".join(
                f"{r.column}" for r in index.identifier_columns.get((product, name), [])
            )
            svg.append(
                f'<path class="edge ident" data-a="entity:{esc(name)}" data-b="{esc(product)}" '
                f'stroke="{colour[name]}" d="M{ex:.0f},{ey + 14:.0f} C{ex:.0f},{ey + 80:.0f} '
                f'{tx:.0f},{ty - 60:.0f} {tx:.0f},{ty:.0f}"><title>{esc(name)} identified by '
                f"{esc(product)}: {esc(columns)}</title></path>"
            )
    for name in entity_names:
        ex, ey = entity_pos[name]
        entity = index.registry.get(name)
        owner = entity.owner_product or entity.owner_domain if entity else "unregistered"
        label = esc(name)
        w = max(70, 9 * len(name) + 24)
        svg.append(
            f'<g class="entity{"" if entity else " unknown"}" data-id="entity:{label}">'
            f'<rect x="{ex - w / 2:.0f}" y="{ey - 14:.0f}" width="{w:.0f}" height="28" rx="14" '
            f'fill="{colour[name]}"/><text x="{ex:.0f}" y="{ey + 5:.0f}">{label}</text>'
            f"<title>entity {label}; owner {esc(str(owner))}</title></g>"
        )
    for product, box in boxes.items():
        manifest = index.manifests[product]
        owner = manifest.metadata.owner or ""
        parts = [
            f'<g class="product{" has-pii" if box.pii else ""}" data-id="{esc(product)}">',
            f'<rect class="box" x="{box.x:.0f}" y="{box.y:.0f}" width="{BOX_WIDTH}" '
            f'height="{box.height:.0f}" rx="6"/>',
            f'<text class="name" x="{box.x + 10:.0f}" y="{box.y + 17:.0f}">'
            f"{esc(product.split('/', 1)[1])}</text>",
            f'<text class="meta" x="{box.x + 10:.0f}" y="{box.y + 32:.0f}">'
            f"v{esc(manifest.metadata.version)} · {esc(owner)}</text>",
        ]
        if box.pii:
            parts.append(
                f'<g class="pii-badge"><rect x="{box.x + BOX_WIDTH - 40:.0f}" y="{box.y + 6:.0f}" '
                f'width="32" height="16" rx="3"/><text x="{box.x + BOX_WIDTH - 24:.0f}" '
                f'y="{box.y + 18:.0f}">PII</text></g>'
            )
        for i, (text, css) in enumerate(box.rows):
            parts.append(
                f'<text class="col {css}" x="{box.x + 12:.0f}" '
                f'y="{box.y + HEADER + 10 + ROW * i:.0f}">{esc(text)}</text>'
            )
        if box.more:
            parts.append(
                f'<text class="col more" x="{box.x + 12:.0f}" '
                f'y="{box.y + HEADER + 10 + ROW * len(box.rows):.0f}">… {box.more} more</text>'
            )
        parts.append(f"<title>{esc(product)}</title></g>")
        svg.append("".join(parts))
    stats = graph.stats()
    summary = (
        f"{len(index.manifests)} products · {len(domains)} domains · {len(entity_names)} entities"
        f" · {stats.edges.get('derives_from', 0)} lineage links"
    )
    return _PAGE.format(
        svg_class="" if len(index.manifests) <= HTML_ENTITY_LINKS_UP_TO else "hide-ident",
        toggle_checked="" if len(index.manifests) > HTML_ENTITY_LINKS_UP_TO else " checked",
        title=esc(title),
        summary=esc(summary),
        width=f"{width:.0f}",
        height=f"{page_height:.0f}",
        body="\n".join(svg),
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{margin: 0; font: 13px system-ui, -apple-system, "Segoe UI", sans-serif;
  background: #f6f7f9; color: #1d2430}}
header {{padding: 12px 20px; background: #1d2430; color: #fff; display: flex; gap: 24px;
  align-items: center; flex-wrap: wrap}}
header h1 {{font-size: 16px; margin: 0}}
header .sum {{opacity: .8}}
.legend span {{margin-right: 14px; white-space: nowrap}}
.legend i {{display: inline-block; width: 22px; height: 0; border-top: 2px solid #5b6b82;
  vertical-align: middle; margin-right: 4px}}
.legend i.ident {{border-top: 2px dashed #9ecbff}}
.legend b.pii {{background: #d62728; color: #fff; padding: 0 4px; border-radius: 3px}}
main {{overflow: auto}}
svg {{display: block}}
.domain rect {{fill: #e9edf3; stroke: #c5ceda}}
.domain text {{font-weight: 600; font-size: 14px; fill: #3a4658; text-transform: uppercase;
  letter-spacing: .06em}}
.product .box {{fill: #fff; stroke: #8a97ab; stroke-width: 1.2}}
.product.has-pii .box {{stroke: #d62728; stroke-width: 2}}
.product .name {{font-weight: 600; font-size: 13px}}
.product .meta {{font-size: 10px; fill: #6b778a}}
.col {{font: 11px ui-monospace, Menlo, Consolas, monospace; fill: #2d3748}}
.col.ident {{fill: #1f4e9c; font-weight: 600}}
.col.pii {{fill: #d62728; font-weight: 600}}
.col.more {{fill: #8a97ab}}
.pii-badge rect {{fill: #d62728}}
.pii-badge text {{fill: #fff; font-size: 10px; font-weight: 700; text-anchor: middle}}
.entity text {{fill: #fff; font-weight: 600; text-anchor: middle}}
.entity.unknown rect {{fill: #999; stroke: #d62728; stroke-dasharray: 3 2}}
.edge {{fill: none}}
.edge.lineage {{stroke: #5b6b82; stroke-width: 1.6; opacity: .75}}
.edge.ident {{stroke-width: 1.3; stroke-dasharray: 5 4; opacity: .55}}
svg.focus .edge, svg.focus .product, svg.focus .entity {{opacity: .12}}
svg.focus .on {{opacity: 1 !important}}
svg.focus .edge.on {{stroke-width: 2.6}}
svg.hide-ident .edge.ident {{display: none}}
svg.hide-ident.focus .edge.ident.on {{display: inline}}
.toggle {{position: fixed; right: 16px; top: 52px; background: #fff; padding: 4px 8px;
  border: 1px solid #c5ceda; border-radius: 4px}}
#info {{position: fixed; right: 16px; bottom: 16px; background: #fff; border: 1px solid #c5ceda;
  border-radius: 6px; padding: 8px 12px; max-width: 420px; display: none;
  box-shadow: 0 2px 8px rgba(0, 0, 0, .15)}}
</style></head>
<body>
<header><h1>{title}</h1><span class="sum">{summary}</span>
<span class="legend"><span><i></i>lineage (reads)</span>
<span><i class="ident"></i>identifies entity</span>
<span><b class="pii">PII</b> PII column / product</span><span>⚷ entity identifier</span></span>
</header>
<label class="toggle"><input type="checkbox" id="idents"{toggle_checked}> entity links</label>
<main><svg id="graph" class="{svg_class}" xmlns="http://www.w3.org/2000/svg" width="{width}"
  height="{height}"
  viewBox="0 0 {width} {height}">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
  orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#5b6b82"/></marker></defs>
{body}
</svg></main>
<div id="info"></div>
<script>
(function () {{
  var svg = document.getElementById("graph"), info = document.getElementById("info");
  var edges = Array.prototype.slice.call(svg.querySelectorAll(".edge"));
  var each = function (list, fn) {{ Array.prototype.forEach.call(list, fn); }};
  function node(id) {{
    var found = null;
    each(svg.querySelectorAll("[data-id]"), function (el) {{
      if (el.getAttribute("data-id") === id) found = el;
    }});
    return found;
  }}
  function focus(id) {{
    svg.classList.add("focus");
    var linked = [];
    edges.forEach(function (e) {{
      var a = e.getAttribute("data-a"), b = e.getAttribute("data-b");
      if (a === id || b === id) {{
        e.classList.add("on");
        var other = a === id ? b : a;
        if (linked.indexOf(other) < 0) linked.push(other);
      }}
    }});
    [id].concat(linked).forEach(function (n) {{
      var el = node(n);
      if (el) el.classList.add("on");
    }});
    info.textContent = id + " \u2014 linked to: " + linked.join(", ");
    info.style.display = "block";
  }}
  function clear() {{
    svg.classList.remove("focus");
    info.style.display = "none";
    each(svg.querySelectorAll(".on"), function (e) {{ e.classList.remove("on"); }});
  }}
  each(svg.querySelectorAll(".product, .entity"), function (g) {{
    g.addEventListener("mouseenter", function () {{ focus(g.getAttribute("data-id")); }});
    g.addEventListener("mouseleave", clear);
  }});
  document.getElementById("idents").addEventListener("change", function (e) {{
    svg.classList.toggle("hide-ident", !e.target.checked);
  }});
  document.body.setAttribute("data-rendered", String(svg.querySelectorAll(".product").length));
}})();
</script>
</body></html>
"""
