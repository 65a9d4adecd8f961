"""Layouts of the graph page's answers, drawn as server-rendered SVG (no script, no CDN).

A drawing is boxes in columns ("layers", left to right) joined by labelled curves: join paths and
PII flows are one row per path, impact and lineage one column per depth, re-identification risk
products on the left and the entities they join on at the right. This module only places things;
``templates/drawing.html`` writes the SVG (Jinja autoescapes every label).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

CHAR_WIDTH = 8.0  # px per character at the drawing's 13 px font (a generous estimate)
LINE_HEIGHT = 17
PAD = 8
COLUMN_GAP = 96
ROW_GAP = 18
MARGIN = 12
MAX_NODES = 160  # a larger answer is drawn in part (the tables below it list everything)
MAX_LINE = 48


@dataclass(frozen=True)
class Node:
    key: str
    lines: tuple[str, ...]
    layer: int
    kind: str = "product"  # CSS class: target, product, entity, pii, qi, outside
    href: str | None = None


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    label: str = ""  # short, drawn on the curve
    detail: str = ""  # longer, the curve's tooltip


@dataclass(frozen=True)
class Box:
    key: str
    x: float
    y: float
    width: float
    height: float
    lines: tuple[str, ...]
    kind: str
    href: str | None


@dataclass(frozen=True)
class Curve:
    path: str
    label: str
    label_x: float
    label_y: float
    source: str
    target: str
    detail: str


@dataclass(frozen=True)
class Drawing:
    title: str
    description: str
    width: float
    height: float
    boxes: tuple[Box, ...]
    curves: tuple[Curve, ...]
    shown: int
    total: int
    legend: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def partial(self) -> bool:
        return self.shown < self.total


def _short(text: str) -> str:
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


def layered(
    title: str,
    description: str,
    nodes: Sequence[Node],
    links: Iterable[Link],
    legend: Sequence[tuple[str, str]] = (),
) -> Drawing:
    """Place ``nodes`` in columns by layer (in the given order within a column) and join them."""
    total = len(nodes)
    kept = list(nodes[:MAX_NODES])
    keys = {n.key for n in kept}
    by_layer: dict[int, list[Node]] = {}
    for node in kept:
        by_layer.setdefault(node.layer, []).append(node)
    sizes = {
        n.key: (
            max(CHAR_WIDTH * max(len(_short(line)) for line in n.lines) + 2 * PAD, 80.0),
            LINE_HEIGHT * len(n.lines) + PAD,
        )
        for n in kept
    }
    layers = sorted(by_layer)
    layer_of = {n.key: n.layer for n in kept}
    links = [link for link in links if link.source in keys and link.target in keys]
    gaps: dict[int, float] = {}
    for link in links:  # a column gap wide enough for the labels of the curves crossing it
        start = layer_of[link.source]
        if layer_of[link.target] == start + 1 and link.label:
            needed = CHAR_WIDTH * len(_short(link.label)) + 28
            gaps[start] = max(gaps.get(start, COLUMN_GAP), needed)
    heights = {
        layer: sum(sizes[n.key][1] for n in by_layer[layer]) + ROW_GAP * (len(by_layer[layer]) - 1)
        for layer in layers
    }
    tallest = max(heights.values(), default=0.0)
    boxes: dict[str, Box] = {}
    x = float(MARGIN)
    for layer in layers:
        column_width = max(sizes[n.key][0] for n in by_layer[layer])
        y = MARGIN + (tallest - heights[layer]) / 2
        for node in by_layer[layer]:
            width, height = sizes[node.key]
            boxes[node.key] = Box(
                node.key,
                round(x, 1),
                round(y, 1),
                round(width, 1),
                round(height, 1),
                tuple(_short(line) for line in node.lines),
                node.kind,
                node.href,
            )
            y += height + ROW_GAP
        x += column_width + gaps.get(layer, COLUMN_GAP)
    curves = []
    for link in links:
        a, b = boxes[link.source], boxes[link.target]
        x1, y1 = a.x + a.width, a.y + a.height / 2
        x2, y2 = b.x, b.y + b.height / 2
        if x2 <= x1:  # same or earlier column: leave from the bottom, arrive at the bottom
            x1, y1 = a.x + a.width / 2, a.y + a.height
            x2, y2 = b.x + b.width / 2, b.y + b.height
            bend = max(abs(x2 - x1) / 2, 40.0)
            path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 + bend:.1f} "
            path += f"{x2:.1f},{y2:.1f}"
            mid_x, mid_y = (x1 + x2) / 2, max(y1, y2) + bend * 0.75
        else:
            bend = (x2 - x1) / 2
            path = f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} "
            path += f"{x2 - 6:.1f},{y2:.1f}"
            # Near the arrow's end when it spans several columns (clear of the boxes between).
            mid_x = max((x1 + x2) / 2, x2 - 60)
            mid_y = y2 - 6 if mid_x > (x1 + x2) / 2 else (y1 + y2) / 2 - 4
        curves.append(
            Curve(
                path,
                _short(link.label),
                round(mid_x, 1),
                round(mid_y, 1),
                a.key,
                b.key,
                link.detail or link.label,
            )
        )
    width = x - gaps.get(layers[-1], COLUMN_GAP) + MARGIN if layers else 2 * MARGIN
    return Drawing(
        title,
        description,
        round(max(width, 200.0), 1),
        round(tallest + 2 * MARGIN + 40, 1),
        tuple(boxes.values()),
        tuple(curves),
        len(kept),
        total,
        tuple(legend),
    )


def _href(prefix: str, product: str) -> str:
    return f"{prefix}/products/{product.split(':', 1)[0]}"


def paths_drawing(prefix: str, left: str, right: str, paths: list[dict[str, Any]]) -> Drawing:
    """One row per join path: the products in order, each join labelled with its entity."""
    nodes: list[Node] = []
    links: list[Link] = []
    for row, path in enumerate(paths):
        for i, product in enumerate(path["products"]):
            kind = "target" if product in (left, right) else "product"
            nodes.append(Node(f"{row}:{i}", (product,), i, kind, _href(prefix, product)))
        for i, step in enumerate(path["steps"]):
            detail = f"{step['entity']}: {', '.join(step['left_columns'])}"
            detail += f" ⋈ {', '.join(step['right_columns'])}"
            links.append(Link(f"{row}:{i}", f"{row}:{i + 1}", f"on {step['entity']}", detail))
    return layered(
        f"Join paths from {left} to {right}",
        f"{len(paths)} way(s) to join {left} to {right} through shared entity ids, shortest "
        "first; each row is one path, each arrow one join on an entity id.",
        nodes,
        links,
        [("target", "the two products"), ("product", "a product joined through")],
    )


def impact_drawing(prefix: str, answer: dict[str, Any]) -> Drawing:
    """The target, then by depth the ports (or columns) that carry the change and what reads (or
    derives from) them: product → port → reader → its port → …"""
    target = answer["target"]
    nodes = [Node(target, (target, "changes"), 0, "target", _href(prefix, target))]
    links: list[Link] = []
    known = {target}
    for item in sorted(answer["items"], key=lambda i: (i["depth"], i["product"])):
        key = ":".join(p for p in (item["product"], item["port"], item["column"]) if p)
        via = item["via"]
        if via not in known:
            nodes.append(Node(via, (via,), 2 * item["depth"] - 1, "port", _href(prefix, via)))
            known.add(via)
            parent = via.split(":", 1)[0]
            links.append(Link(parent if parent in known else target, via, ""))
        if key not in known:
            lines = (key, f"depth {item['depth']} · {item['precision']}")
            nodes.append(Node(key, lines, 2 * item["depth"], "product", _href(prefix, key)))
            known.add(key)
        links.append(Link(via, key, "derived from" if item["precision"] == "column" else "reads"))
    nodes.sort(key=lambda n: n.layer)
    return layered(
        f"Impact of a change to {target}",
        f"{len({i['product'] for i in answer['items']})} product(s) may break if {target} "
        "changes, by depth; each arrow goes from what changes to what reads or derives from it.",
        nodes,
        links,
        [("target", "what changes"), ("port", "carries the change"), ("product", "may break")],
    )


def _ranks(start: str, edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest distance from ``start`` along ``edges`` (so every edge goes one column or more
    forward); a cycle stops growing after as many rounds as there are nodes."""
    rank = {start: 0}
    for _ in range(len(edges) + 1):
        changed = False
        for a, b in edges:
            if a in rank and rank.get(b, -1) < rank[a] + 1:
                rank[b] = rank[a] + 1
                changed = True
        if not changed:
            break
    return rank


def lineage_drawing(prefix: str, answer: dict[str, Any]) -> Drawing:
    product = answer["product"]
    upstream = answer["direction"] == "upstream"
    edges = [(link["source"].split(":", 1)[0], link["target"]) for link in answer["links"]]
    # Upstream reads right to left: the deepest source at the left, the product at the right.
    rank = _ranks(product, [(b, a) for a, b in edges] if upstream else edges)
    deepest = max(rank.values(), default=0)

    def layer(key: str) -> int:
        found = rank.get(key, 1)
        return deepest - found if upstream else found

    nodes = [Node(product, (product,), layer(product), "target", _href(prefix, product))]
    for n in sorted(answer["nodes"], key=lambda n: (n["depth"], n["product"])):
        lines = (n["product"], n["owner"] or "no owner")
        kind = "product" if n["declared"] else "outside"
        href = _href(prefix, n["product"]) if n["declared"] else None
        nodes.append(Node(n["product"], lines, layer(n["product"]), kind, href))
    nodes.sort(key=lambda n: n.layer)
    links = [
        Link(link["source"].split(":", 1)[0], link["target"], link["source"].split(":", 1)[-1])
        for link in answer["links"]
    ]
    return layered(
        f"Lineage {answer['direction']} of {product}",
        f"{len(answer['nodes'])} product(s) {answer['direction']} of {product}; each arrow goes "
        "from a port to the product that reads it.",
        nodes,
        links,
        [
            ("target", "the product asked about"),
            ("product", "in the catalogue"),
            ("outside", "not in the catalogue"),
        ],
    )


def pii_drawing(prefix: str, flows: list[dict[str, Any]]) -> Drawing:
    """One row per PII source of each product that reads PII it does not declare."""
    nodes: list[Node] = []
    links: list[Link] = []
    row = 0
    for flow in flows:
        for source in flow["sources"]:
            path = source["path"]
            for i, step in enumerate(path):
                if i == 0:
                    lines = (step, *source["columns"])
                    kind = "pii"
                elif i == len(path) - 1:
                    lines = (step, "declares no PII")
                    kind = "target"
                else:
                    lines = (step,)
                    kind = "product"
                nodes.append(Node(f"{row}:{i}", lines, i, kind, _href(prefix, step)))
                if i:
                    links.append(Link(f"{row}:{i - 1}", f"{row}:{i}", "reads"))
            row += 1
    return layered(
        "PII flows",
        f"{len(flows)} product(s) read PII upstream without declaring PII; each row is one path "
        "from the port carrying the PII to the product.",
        nodes,
        links,
        [("pii", "declares the PII"), ("product", "passes it on"), ("target", "declares no PII")],
    )


def risk_drawing(prefix: str, report: dict[str, Any]) -> Drawing:
    """Products (with the quasi-identifiers they expose) joined to the entity ids they share."""
    nodes: list[Node] = []
    links: list[Link] = []
    products: dict[str, list[str]] = {}
    for finding in report["findings"]:
        for exposed in finding["exposed"]:
            note = " (generalised)" if exposed["generalised"] else ""
            products.setdefault(exposed["product"], []).append(
                f"{exposed['name']}: {exposed['port']}.{exposed['column']}{note}"
            )
    for product, lines in sorted(products.items()):
        nodes.append(Node(product, (product, *sorted(set(lines))), 0, "qi", _href(prefix, product)))
    for finding in report["findings"]:
        entity = f"entity:{finding['entity']}"
        how = "across products" if finding["cross_product"] else "one product alone"
        nodes.append(
            Node(
                entity,
                (finding["entity"], " + ".join(finding["quasi_identifiers"]), how),
                1,
                "entity",
            )
        )
        for join in finding["join_columns"]:
            product, port, column = join.split(":", 2)
            if product in products:
                links.append(Link(product, entity, f"{port}.{column}", f"joins on {join}"))
    return layered(
        f"Re-identification risk for {report['principal']}",
        f"{len(report['findings'])} risky combination(s) of quasi-identifiers (threshold "
        f"{report['threshold']}) that {report['principal']} can assemble by joining the products "
        "on the left on the entity ids at the right.",
        nodes,
        links,
        [("qi", "exposes quasi-identifiers"), ("entity", "entity id they join on")],
    )
