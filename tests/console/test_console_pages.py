"""Catalogue filters and pages, product versions with their release checks, the decision log's
filters and a decision's detail page (over HTTP, as each role)."""

from __future__ import annotations

import copy
import datetime as dt
import re

import yaml
from console_http import csrf_of, logged_in
from console_server import ROOT, TOKENS, ConsoleServer
from test_console_http import _cells

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
