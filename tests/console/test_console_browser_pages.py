"""The new console pages in a real browser (Playwright driving Debian's Chromium): drawn graph
answers and the risk form, catalogue filters, product release checks, decision filters and detail,
and sessions that survive a restart.

``MESHGOV_CONSOLE_SCREENSHOTS=<dir>`` also saves screenshots of these pages (docs/console).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from console_server import ConsoleServer, login, start_console

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("MESHGOV_CONSOLE_SCREENSHOTS")
WAIT_MS = 90_000  # the machine is shared: wait for elements, generously, never sleep


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _shot(page: Any, name: str, locator: Any = None) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        target = locator if locator is not None else page
        options = {} if locator is not None else {"full_page": True}
        target.screenshot(path=str(Path(SHOTS) / f"{name}.png"), **options)


def _drawn(page: Any) -> dict[str, str]:
    """Node key → its text, of the drawn answer (once the drawing is visible)."""
    figure = page.locator("#answer-drawing svg")
    figure.wait_for(state="visible")
    box = figure.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 40
    nodes = page.locator("#answer-drawing g.node")
    return {
        nodes.nth(i).get_attribute("data-key"): nodes.nth(i).text_content()
        for i in range(nodes.count())
    }


def test_graph_questions_are_drawn_and_risk_is_assessed(page: Any, console: ConsoleServer) -> None:
    login(page, console, "guild")
    page.get_by_role("navigation", name="Console pages").get_by_role("link", name="Graph").click()
    page.get_by_label("Join paths from").fill("customer/customers")
    page.get_by_label("to", exact=True).fill("commerce/orders")
    page.get_by_role("button", name="Find paths").click()
    nodes = _drawn(page)
    assert nodes["0:0"] == "customer/customers" and nodes["1:1"] == "payments/payments"
    _shot(page, "graph-paths", page.locator("#answer"))
    # A drawn product is a link to its page.
    page.locator('#answer-drawing g.node[data-key="1:1"]').click()
    page.wait_for_url("**/ui/products/payments/payments")
    page.go_back()

    page.get_by_label("Question").select_option("impact")
    page.get_by_label("Target (domain/name[:port[:column]])").fill(
        "customer/customers:customers:email"
    )
    page.get_by_role("button", name="Ask").click()
    nodes = _drawn(page)
    assert "depth 2" in nodes["payments/payments"]
    assert "commerce-data@acme.example" in page.locator("#owners").inner_text()
    _shot(page, "graph-impact", page.locator("#answer"))

    page.get_by_role("button", name="PII flows (products reading PII they do not declare)").click()
    nodes = _drawn(page)
    assert any("email (email)" in text for text in nodes.values())
    assert any("declares no PII" in text for text in nodes.values())
    _shot(page, "graph-pii", page.locator("#answer"))

    page.get_by_label("Re-identification risk of").select_option("fraud-investigator")
    page.get_by_role("button", name="Assess risk").click()
    nodes = _drawn(page)
    assert "birth_date + gender + postcode" in nodes["entity:customer"]
    assert "postcode: customers.postcode" in nodes["customer/customers"]
    assert "customer" in page.locator("#answer-table").inner_text()
    _shot(page, "graph-risk", page.locator("#answer"))


def test_an_analyst_assesses_only_its_own_risk(page: Any, console: ConsoleServer) -> None:
    login(page, console, "owner-customer")
    page.goto(f"{console.url}/ui/graph")
    options = page.get_by_label("Re-identification risk of").locator("option").all_inner_texts()
    assert options == ["owner-customer"]
    page.get_by_role("button", name="Assess risk").click()
    assert "birth_date + gender + postcode" in _drawn(page)["entity:customer"]
    page.goto(f"{console.url}/ui/graph?question=risk&principal=fraud-investigator")
    assert "only the guild" in page.get_by_role("alert").inner_text()
    assert page.locator("#answer-drawing").count() == 0


def test_catalogue_filters_by_entity_and_status(page: Any, console: ConsoleServer) -> None:
    login(page, console, "analyst-eu")
    page.get_by_label("Entity").select_option("order")
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**entity=order**")
    rows = page.locator("#catalogue tbody tr")
    texts = rows.all_inner_texts()
    assert texts and all("order" in t and "active" in t for t in texts)
    assert "payments/payments" in " ".join(texts)
    assert page.get_by_label("Entity").input_value() == "order"
    _shot(page, "catalogue-filters")


def test_product_shows_each_version_with_its_release_check(
    page: Any, own_console: ConsoleServer
) -> None:
    service = own_console.service
    categories = copy.deepcopy(service.state.bundle.data["registry"]["pii_categories"])
    categories["address"]["minimum"] = "restricted"
    revision = service.stage_file("guild", "data/pii_categories.yaml", yaml.safe_dump(categories))
    service.activate("guild", revision.id)
    login(page, own_console, "owner-customer")
    page.goto(f"{own_console.url}/ui/products/customer/customers")
    version = page.get_by_role("region", name="Version 2.1.0")
    version.wait_for(state="visible")
    assert "fails" in version.get_by_role("heading", level=3).inner_text()
    row = version.locator("table.findings tbody tr", has_text="postcode").first
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "error" and "restricted" in cells[2] + cells[3]
    assert cells[4].startswith("customer/customers@2.1.0:")
    _shot(page, "product-versions", version)


def test_decisions_filter_by_time_and_open_a_decision(page: Any, console: ConsoleServer) -> None:
    login(page, console, "analyst-eu")
    page.goto(f"{console.url}/ui/query")
    page.get_by_label("SQL").fill("SELECT * FROM customer.customers")
    page.get_by_role("button", name="Run").click()
    page.locator("#denial").wait_for(state="visible")
    page.goto(f"{console.url}/ui/decisions")
    now = dt.datetime.now(dt.UTC)
    page.get_by_label("From (UTC)").fill(
        (now - dt.timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    page.get_by_label("To (UTC)").fill(
        (now + dt.timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    page.get_by_label("Outcome").select_option("denied")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**outcome=denied**")
    rows = page.locator("#decisions tbody tr")
    rows.first.wait_for(state="visible")
    assert all("denied" in t and "analyst-eu" in t for t in rows.all_inner_texts())
    _shot(page, "decisions")
    rows.first.locator("a").click()
    page.wait_for_url("**/ui/decisions/*")
    assert page.locator("#outcome").inner_text() == "denied"
    assert page.locator("#input-digest").inner_text().startswith("sha256:")
    assert "purpose" in page.locator("#reasons").inner_text().lower()
    _shot(page, "decision")
    # Later than every decision: nothing matches.
    page.goto(f"{console.url}/ui/decisions?since={(now + dt.timedelta(days=1)):%Y-%m-%d}")
    assert "No decisions match." in page.locator("#decisions").inner_text()


def test_a_browser_session_survives_a_restart(page: Any, tmp_path: Path) -> None:
    first = start_console(tmp_path)
    try:
        login(page, first, "analyst-us")
    finally:
        first.stop()
    second = start_console(tmp_path)  # a new process on the same store (and port-less cookie)
    try:
        page.goto(f"{second.url}/ui/decisions")
        assert page.locator("#whoami").inner_text() == "analyst-us"
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url("**/ui/login")
        page.goto(f"{second.url}/ui/catalogue")
        assert page.url.endswith("/ui/login")
    finally:
        second.stop()


def test_an_analyst_sees_a_product_s_columns_as_its_decisions_show_them(
    page: Any, console: ConsoleServer
) -> None:
    login(page, console, "analyst-eu")
    page.goto(f"{console.url}/ui/products/marketing/customer_360")
    page.get_by_label("Columns as I may read them for").select_option("analytics")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**purpose=analytics")
    columns = page.locator("table.columns tbody tr td:first-child").all_inner_texts()
    assert "segment" in columns and "customer_id" in columns
    assert "hidden from you are not listed" in page.locator("#columns-note").inner_text()
    # The restricted column is absent: not a row, not a word anywhere on the page.
    assert "failed_payment_count" not in page.content()
    page.goto(f"{console.url}/ui/products/customer/customers?purpose=analytics")
    email = page.locator("table.columns tr", has_text="email").first.inner_text()
    assert "masked for you: hash" in email
    _shot(page, "product-analyst", page.locator("section.port").first)
