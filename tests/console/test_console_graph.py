"""The graph page: every question of ``meshgov graph`` answered with a drawing (server-rendered
SVG, nothing loaded from elsewhere) and a table in words; the risk of others is for the guild."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from console_http import logged_in
from console_server import ConsoleServer


class Svg(HTMLParser):
    """The drawn answer: node keys, their texts, edges (source → target) and external refs."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, list[str]] = {}
        self.edges: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.refs: list[str] = []
        self.inside = False
        self._node: str | None = None
        self._text = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "figure" and found.get("id") == "answer-drawing":
            self.inside = True
        if not self.inside:
            return
        for name in ("href", "src", "xlink:href"):
            if found.get(name):
                self.refs.append(str(found[name]))
        if tag == "a":
            self.links.append(str(found.get("href")))
        if tag == "g" and "node" in str(found.get("class", "")).split():
            self._node = str(found["data-key"])
            self.nodes[self._node] = []
        if tag == "g" and found.get("class") == "edge":
            self.edges.append((str(found["data-source"]), str(found["data-target"])))
        self._text = tag == "text"

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self._node = None
        if tag == "figure":
            self.inside = False
        self._text = False

    def handle_data(self, data: str) -> None:
        if self._text and self._node is not None:
            self.nodes[self._node].append(data)


def _svg(page: str) -> Svg:
    parsed = Svg()
    parsed.feed(page)
    assert parsed.nodes, "no drawing"
    return parsed


def test_join_paths_are_drawn_one_row_per_path(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-eu") as client:
        page = client.get(
            "/ui/graph",
            params={"question": "paths", "left": "customer/customers", "right": "commerce/orders"},
        ).text
    svg = _svg(page)
    rows = {key.split(":")[0] for key in svg.nodes}
    assert len(rows) == 2  # two paths: direct, and through payments/payments
    assert svg.nodes["0:0"][0] == "customer/customers"
    assert svg.nodes["0:1"][0] == "commerce/orders"
    assert svg.nodes["1:1"][0] == "payments/payments"
    assert ("1:1", "1:2") in svg.edges
    assert "on order" in page and "orders:order_id" in page  # label and its tooltip
    assert "/ui/products/payments/payments" in svg.links
    assert all(ref.startswith(("/ui/", "url(#", "#")) for ref in svg.refs)
    assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in page
    assert "answer | tojson" not in page and '<pre id="answer"' not in page


def test_impact_of_a_column_is_drawn_by_depth(console: ConsoleServer) -> None:
    with logged_in(console, "owner-customer") as client:
        page = client.get(
            "/ui/graph",
            params={"question": "impact", "target": "customer/customers:customers:email"},
        ).text
    svg = _svg(page)
    assert svg.nodes["customer/customers:customers:email"][0].endswith(":email")
    assert ("customer/customers:customers:email", "customer/customers:customers") in svg.edges
    assert ("customer/customers:customers", "commerce/orders") in svg.edges
    assert ("commerce/orders:orders", "payments/payments") in svg.edges
    assert "depth 2 · port" in svg.nodes["payments/payments"]
    assert "payments-data@acme.example [payments]: payments/payments" in page


def test_pii_flows_and_lineage_are_drawn(console: ConsoleServer) -> None:
    with logged_in(console, "guild") as client:
        pii = client.get("/ui/graph", params={"question": "pii"}).text
        lineage = client.get(
            "/ui/graph", params={"question": "upstream", "target": "marketing/campaign_audience"}
        ).text
    flows = _svg(pii)
    sources = [lines for key, lines in flows.nodes.items() if key.endswith(":0")]
    assert any("email (email)" in lines for lines in sources)
    readers = {lines[0] for key, lines in flows.nodes.items() if "declares no PII" in lines}
    assert {"commerce/orders", "marketing/customer_360", "commerce/order_items"} <= readers
    drawn = _svg(lineage)
    assert ("customer/customers", "marketing/campaign_audience") in drawn.edges
    # Longest-path columns: every arrow goes left to right (x of source box < x of target box).
    xs = {
        key: float(x) for key, x in re.findall(r'data-key="([^"]+)"><rect x="([0-9.]+)"', lineage)
    }
    assert all(xs[a] < xs[b] for a, b in drawn.edges)


def test_risk_is_drawn_for_oneself_and_for_others_only_for_the_guild(
    console: ConsoleServer,
) -> None:
    with logged_in(console, "fraud-investigator") as client:
        mine = client.get("/ui/graph", params={"question": "risk"})
        other = client.get("/ui/graph", params={"question": "risk", "principal": "owner-customer"})
    with logged_in(console, "guild") as client:
        theirs = client.get(
            "/ui/graph", params={"question": "risk", "principal": "fraud-investigator"}
        ).text
        narrowed = client.get(
            "/ui/graph",
            params={
                "question": "risk",
                "principal": "fraud-investigator",
                "purpose": "analytics",
            },
        ).text
    assert mine.status_code == 200
    svg = _svg(mine.text)
    assert svg.nodes["entity:customer"][:2] == ["customer", "birth_date + gender + postcode"]
    assert "postcode: customers.postcode" in svg.nodes["customer/customers"]
    assert ("customer/customers", "entity:customer") in svg.edges
    assert other.status_code == 403 and "only the guild" in other.text
    assert 'id="answer-drawing"' in theirs and "fraud-investigator" in theirs
    assert 'id="answer-empty"' in narrowed and "No risky combination" in narrowed


def test_bad_questions_say_what_is_wrong(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-eu") as client:
        missing = client.get("/ui/graph", params={"question": "impact", "target": "nope/nope"})
        unknown = client.get("/ui/graph", params={"question": "everything"})
        empty = client.get("/ui/graph", params={"question": "paths", "left": "", "right": ""})
    assert missing.status_code == 404 and "no product &#39;nope/nope&#39;" in missing.text
    assert unknown.status_code == 400 and "unknown graph question" in unknown.text
    assert empty.status_code == 400 and "name the first product" in empty.text
