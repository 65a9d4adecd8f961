"""Catalogue filters and pages, product versions with their release checks, the decision log's
filters and a decision's detail page (over HTTP, as each role)."""

from __future__ import annotations

import copy
import datetime as dt
import re
import time

import yaml
from console_http import csrf_of, logged_in
from console_server import ROOT, TOKENS, ConsoleServer
from test_console_http import _cells

from meshgov.console import views

CUSTOMERS = ROOT / "examples/mesh/customer/customers.yaml"


def _names(page: str) -> list[str]:
    return re.findall(r'<td><a href="/ui/products/[^"]+">([^<]+)</a>', page)


def test_catalogue_filters_by_entity_and_status_with_domain_and_classification(
    console: ConsoleServer,
) -> None:
    with logged_in(console, "analyst-eu") as client:
        everything = _names(client.get("/ui/catalogue").text)
        orders = client.get("/ui/catalogue", params={"entity": "order"}).text
        combined = client.get(
            "/ui/catalogue",
            params={"entity": "customer", "domain": "marketing", "status": "active"},
        ).text
        unknown_status = client.get("/ui/catalogue", params={"status": "retired"}).text
    manifests = console.service.state.catalog.manifests
    carriers = sorted(
        key
        for key, m in manifests.items()
        if any(c.entity == "order" for p in m.spec.output_ports for c in p.columns)
    )
    assert len(everything) == len(manifests)
    assert _names(orders) == carriers and "payments/payments" in carriers
    assert 'value="order" selected' in orders
    expected = sorted(
        key
        for key, m in manifests.items()
        if m.metadata.domain == "marketing"
        and m.metadata.status is not None
        and m.metadata.status.value == "active"
        and any(c.entity == "customer" for p in m.spec.output_ports for c in p.columns)
    )
    assert expected and _names(combined) == expected
    assert "No product matches." in unknown_status and _names(unknown_status) == []


def test_catalogue_pages_keep_their_filters(console: ConsoleServer, monkeypatch: object) -> None:
    from meshgov.console import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)  # type: ignore[attr-defined]
    with logged_in(console, "guild") as client:
        first = client.get("/ui/catalogue", params={"entity": "customer"}).text
        links = dict(re.findall(r'rel="(next|last)" href="\?([^"]+)"', first))
        second = client.get(f"/ui/catalogue?{links['next'].replace('&amp;', '&')}").text
        beyond = client.get("/ui/catalogue", params={"entity": "customer", "page": 999}).text
    assert "page 1 of" in first and len(_names(first)) == 2
    assert "entity=customer" in links["next"] and "page=2" in links["next"]
    assert "page 2 of" in second and set(_names(second)).isdisjoint(_names(first))
    last = int(links["last"].rsplit("=", 1)[1])
    assert f"page {last} of {last}" in beyond  # clamped to the last page


def _version(text: str, version: str) -> str:
    doc = yaml.safe_load(text)
    doc["metadata"]["version"] = version
    port = doc["spec"]["outputPorts"][0]
    port.pop("data", None)
    port["columns"].append({"name": "loyalty_tier", "type": "string", "classification": "internal"})
    return yaml.safe_dump(doc, sort_keys=False)


def test_product_versions_show_their_release_check_findings(own_console: ConsoleServer) -> None:
    service = own_console.service
    with logged_in(own_console, "owner-customer") as client:
        published = client.put(
            "/v1/products/customer/customers",
            content=_version(CUSTOMERS.read_text(encoding="utf-8"), "2.2.0"),
            headers={
                "Content-Type": "application/yaml",
                "Authorization": f"Bearer {TOKENS['owner-customer']}",
            },
        )
        assert published.status_code == 201, published.text
        before = client.get("/ui/products/customer/customers").text
    # A revision under which customer/customers fails: postcode (address) must be restricted.
    categories = copy.deepcopy(service.state.bundle.data["registry"]["pii_categories"])
    categories["address"]["minimum"] = "restricted"
    revision = service.stage_file("guild", "data/pii_categories.yaml", yaml.safe_dump(categories))
    service.activate("guild", revision.id)
    with logged_in(own_console, "analyst-eu") as client:
        after = client.get("/ui/products/customer/customers").text
    assert before.index('id="version-2.2.0"') < before.index('id="version-2.1.0"')  # newest first
    assert "by owner-customer" in before and "from the catalogue directory" in before
    assert _cells(before, "findings-2.2.0") == [["No findings."]]
    assert "At publication (revision" in before  # the publish decision's recorded check
    rows = _cells(after, "findings-2.2.0")
    postcode = [r for r in rows if "postcode" in r[2]]
    assert postcode, rows
    rule, severity, message, fix, where = postcode[0]
    assert rule and severity == "error" and "restricted" in message + fix
    assert re.fullmatch(r"customer/customers@2\.2\.0:\d+", where), where
    assert '<span class="deny">fails</span>' in after
    assert _cells(after, "findings-2.1.0")  # the older version is checked too


def test_decisions_filter_by_time_kind_and_outcome_and_open_in_detail(
    console: ConsoleServer,
) -> None:
    with logged_in(console, "analyst-us") as client:
        ran = client.post(
            "/ui/query",
            data={
                "sql": "SELECT product_id FROM commerce.products LIMIT 1",
                "purpose": "analytics",
                "csrf": csrf_of(client),
            },
        )
        decision_id = re.search(r"decision ([0-9a-f]{32})", ran.text)
        assert decision_id is not None, ran.text
        denied = client.post(
            "/ui/query",
            data={"sql": "SELECT * FROM customer.customers", "csrf": csrf_of(client)},
        )
        assert denied.status_code == 403
        now = dt.datetime.now(dt.UTC)
        today = now.strftime("%Y-%m-%d")
        window = {
            "since": (now - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"),
            "until": today,  # a date alone: to the end of that day
        }
        recent = client.get("/ui/decisions", params=window).text
        future = client.get(
            "/ui/decisions", params={"since": (now + dt.timedelta(days=2)).strftime("%Y-%m-%d")}
        ).text
        only_denied = client.get("/ui/decisions", params={"outcome": "denied", **window}).text
        by_kind = client.get("/ui/decisions", params={"kind": "check"}).text
        bad_time = client.get("/ui/decisions", params={"since": "yesterday"})
        bad_kind = client.get("/ui/decisions", params={"kind": "magic"})
        detail = client.get(f"/ui/decisions/{decision_id.group(1)}").text
    assert decision_id.group(1) in recent
    assert "No decisions match." in future
    outcomes = {row[4] for row in _cells(only_denied, "decisions")}
    assert outcomes == {"denied"}
    assert "No decisions match." in by_kind
    assert bad_time.status_code == 400
    assert "from: &#39;yesterday&#39; is not a date" in bad_time.text
    assert bad_kind.status_code == 400 and "unknown decision kind" in bad_kind.text
    assert 'id="outcome" class="ok">allowed<' in detail
    assert re.search(r'id="input-digest">sha256:[0-9a-f]{64}<', detail)
    assert "commerce/products:products" in detail  # the tables it read
    assert console.service.active_revision_id() in detail
    assert "SELECT product_id" not in detail  # the input itself is not kept


def test_a_decision_is_for_its_principal_and_the_guild(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-us") as client:
        ran = client.post(
            "/ui/query",
            data={
                "sql": "SELECT product_id FROM commerce.products LIMIT 1",
                "purpose": "analytics",
                "csrf": csrf_of(client),
            },
        )
        found = re.search(r"decision ([0-9a-f]{32})", ran.text)
        assert found is not None
    with logged_in(console, "analyst-eu") as client:
        theirs = client.get(f"/ui/decisions/{found.group(1)}")
        missing = client.get("/ui/decisions/0123")
    with logged_in(console, "guild") as client:
        guild = client.get(f"/ui/decisions/{found.group(1)}")
    assert theirs.status_code == 404 and "analyst-us" not in theirs.text
    assert missing.status_code == 404
    assert guild.status_code == 200 and "<dd>analyst-us</dd>" in guild.text


def _overview_pages(client: object, params: dict[str, str]) -> list[str]:
    """Every page of "what may I see?" for ``params``, following the Next links."""
    pages = [client.get("/ui/access", params=params).text]  # type: ignore[attr-defined]
    while True:
        found = re.search(r'rel="next" href="\?([^"]+)"', pages[-1])
        if found is None:
            return pages
        assert len(pages) < 50, "the overview's pages do not end"
        query = found.group(1).replace("&amp;", "&")
        pages.append(client.get(f"/ui/access?{query}").text)  # type: ignore[attr-defined]


def _overview_counts(page: str) -> tuple[int, int]:
    found = re.search(r"(\d+) ports? readable, (\d+) not", page)
    assert found is not None, page[-2000:]
    return int(found.group(1)), int(found.group(2))


def test_the_access_overview_is_paged_and_its_pages_add_up_to_the_whole_answer(
    console: ConsoleServer, monkeypatch: object
) -> None:
    from meshgov.console import pages

    monkeypatch.setattr(pages, "OVERVIEW_PAGE_SIZE", 2)  # type: ignore[attr-defined]
    service = console.service
    analyst = next(p for p in service.principals if p.id == "analyst-eu")
    whole = service.access_overview(analyst, "analytics")
    total = len(service.ports(service.state))
    with logged_in(console, "analyst-eu") as client:
        walked = _overview_pages(client, {"purpose": "analytics"})
        in_domain = _overview_pages(client, {"purpose": "analytics", "domain": "customer"})
        beyond = client.get("/ui/access", params={"purpose": "analytics", "page": "999"}).text
    assert len(walked) == -(-total // 2) and f"of {total} (page 1 of {len(walked)})" in walked[0]
    rows = [row for page in walked for row in _cells(page, "overview")]
    counts = [_overview_counts(page) for page in walked]
    # Each page shows at most two ports; together they are exactly the whole overview.
    assert all(readable + denied <= 2 for readable, denied in counts)
    assert sum(r for r, _ in counts) == len(whole.ports) == len(rows)
    assert sum(d for _, d in counts) == whole.denied
    expected = {f"{p.product}:{p.port}": p for p in whole.ports}
    assert sorted(row[0] for row in rows) == sorted(expected)
    for row in rows:
        port = expected[row[0]]
        shown = ", ".join(f"{c.name} ({c.mask})" if c.mask else c.name for c in port.columns)
        # Hidden columns are counted, not named, to anyone but the guild.
        hidden = f"{len(port.hidden_columns)} (not named)" if port.hidden_columns else ""
        assert row[1] == shown and row[2] == hidden
    # The whole overview's counts, counted in the background, are the sum of the pages'.
    totals = views.overview_totals(service.state, analyst, "analytics", "")
    deadline = time.monotonic() + 60
    while not totals.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    with logged_in(console, "analyst-eu") as client:
        again = client.get("/ui/access", params={"purpose": "analytics"}).text
    assert f"In all, {total} ports: {len(whole.ports)} readable, {whole.denied} not." in again, (
        again
    )
    customers = next(row for row in rows if row[0] == "customer/customers:customers")
    assert "email (hash)" in customers[1] and "'EU'" in customers[3]
    # The domain filter evaluates only that domain's ports, and its page links keep it.
    domain_rows = [row for page in in_domain for row in _cells(page, "overview")]
    assert domain_rows and all(row[0].startswith("customer/") for row in domain_rows)
    assert sorted(row[0] for row in domain_rows) == sorted(
        key for key in expected if key.startswith("customer/")
    )
    assert f"page {len(walked)} of {len(walked)}" in beyond  # clamped to the last page


def test_on_a_large_catalogue_the_port_is_typed_and_the_overview_starts_at_once(
    console: ConsoleServer, monkeypatch: object
) -> None:
    from meshgov.console import pages

    monkeypatch.setattr(pages, "MAX_LISTED_PRODUCTS", 2)  # type: ignore[attr-defined]
    with logged_in(console, "analyst-eu") as client:
        form = client.get("/ui/access").text
        typed = client.get(
            "/ui/access",
            params={"purpose": "analytics", "port": " customer/customers:customers "},
        ).text
        unknown = client.get("/ui/access", params={"port": "nope/nothing:x"}).text
    assert '<input id="port" name="port"' in form and '<select id="port"' not in form
    assert 'id="overview"' in form  # no waiting for Explain: a page costs a few decisions
    assert "Purposes with access" not in form  # that line costs a decision per port and purpose
    assert (
        "analyst-eu: " in typed
        and "MESHGOV_HASH(&#34;email&#34;)" in typed
        and "&#39;EU&#39;" in typed
    )
    assert "no port nope/nothing:x" in unknown
