"""The console in a real browser (Playwright driving Debian's Chromium).

``MESHGOV_CONSOLE_SCREENSHOTS=<dir>`` also saves a screenshot of each page there (docs/console).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from console_server import ConsoleServer, login

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("MESHGOV_CONSOLE_SCREENSHOTS")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def _shot(page: Any, name: str, *, full_page: bool = True) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


@pytest.mark.parametrize(
    "who", ["analyst-eu", "analyst-us", "fraud-investigator", "guild", "owner-customer"]
)
def test_each_role_logs_in_walks_every_page_and_logs_out(
    page: Any, console: ConsoleServer, who: str
) -> None:
    login(page, console, who)
    for link, heading in [
        ("Catalogue", "Catalogue"),
        ("Access", "Access explorer"),
        ("Query", "Query"),
        ("Policies", "Policies"),
        ("Decisions", "Decisions"),
        ("Graph", "Entity graph"),
    ]:
        page.get_by_role("navigation", name="Console pages").get_by_role("link", name=link).click()
        assert page.get_by_role("heading", level=1).inner_text() == heading
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login")
    page.goto(f"{console.url}/ui/catalogue")
    assert page.url.endswith("/ui/login")


def test_catalogue_product_access_decisions_and_graph(page: Any, console: ConsoleServer) -> None:
    login(page, console, "guild")
    rows = page.locator("#catalogue tbody tr")
    assert rows.count() >= 5
    _shot(page, "catalogue")
    page.get_by_label("Search").fill("customer")
    page.get_by_label("Classification").select_option("confidential")
    page.get_by_role("button", name="Filter").click()
    filtered = page.locator("#catalogue tbody tr")
    assert filtered.count() >= 1
    assert page.get_by_label("Classification").input_value() == "confidential"
    assert all("customer" in t.lower() for t in filtered.all_inner_texts())

    page.get_by_role("link", name="customer/customers").first.click()
    assert "customer/customers" in page.get_by_role("heading", level=1).inner_text()
    email = page.locator("table.columns tr", has_text="email").first.inner_text()
    assert "confidential" in email and "hash" in email
    assert "region = {principal.region}" in page.locator("#grants").inner_text()
    _shot(page, "product")

    page.get_by_role("link", name="Who may read it? (access explorer)").click()
    page.get_by_label("Principal", exact=True).select_option("analyst-eu")
    page.get_by_label("Compare with").select_option("analyst-us")
    page.get_by_label("Purpose").select_option("analytics")
    page.get_by_role("button", name="Explain").click()
    eu = page.get_by_role("region", name="Decision for analyst-eu").inner_text()
    us = page.get_by_role("region", name="Decision for analyst-us").inner_text()
    assert "allowed" in eu and "'EU'" in eu and "email: hash" in eu
    assert "'US'" in us
    _shot(page, "access")

    # No port: "what may I see?", a page of ports at a time, here one domain's.
    page.get_by_label("Principal", exact=True).select_option("analyst-eu")
    page.get_by_label("Compare with").select_option("")
    page.get_by_label("Port").select_option("")
    page.get_by_label("Overview of domain").select_option("customer")
    page.get_by_role("button", name="Explain").click()
    overview = page.locator("#overview tbody tr")
    assert overview.count() >= 1
    assert all(t.startswith("customer/") for t in overview.all_inner_texts())
    assert "email (hash)" in overview.first.inner_text()
    assert page.get_by_label("Overview of domain").input_value() == "customer"

    page.goto(f"{console.url}/ui/decisions")
    _shot(page, "decisions")
    page.goto(f"{console.url}/ui/graph")
    page.get_by_label("Question").select_option("impact")
    page.get_by_label("Target (domain/name[:port[:column]])").fill("customer/customers")
    page.get_by_role("button", name="Ask").click()
    assert "customer/customers" in page.locator("#answer").inner_text()
    frame = page.frame_locator("iframe.picture")
    assert frame.locator("body").inner_text() != ""
    _shot(page, "graph")


def test_analyst_eu_query_shows_hashed_emails_and_eu_rows_only(
    page: Any, console: ConsoleServer
) -> None:
    login(page, console, "analyst-eu")
    page.goto(f"{console.url}/ui/query")
    page.get_by_label("SQL").fill("SELECT customer_id, email, region FROM customer.customers")
    page.get_by_label("Purpose").select_option("analytics")
    page.get_by_role("button", name="Run").click()
    rows = page.locator("#result tbody tr")
    assert rows.count() > 0
    for row in rows.all():
        cells = row.locator("td").all_inner_texts()
        assert cells[2] == "EU"
        assert "@" not in cells[1]
    assert "meshgov_hash" in page.locator("#rewrite").inner_text().lower() or "hash" in (
        page.locator("#decision").inner_text()
    )
    _shot(page, "query", full_page=False)  # the result has ~1,600 rows
    page.get_by_label("SQL").fill("SELECT * FROM customer.customers")
    page.get_by_label("Purpose").select_option("")
    page.get_by_role("button", name="Run").click()
    assert page.locator("#denial").is_visible()


def test_guild_stages_a_breaking_revision_sees_the_impact_activates_and_rolls_back(
    page: Any, own_console: ConsoleServer
) -> None:
    service = own_console.service
    original = service.active_revision_id()
    categories = copy.deepcopy(service.state.bundle.data["registry"]["pii_categories"])
    categories["address"]["minimum"] = "restricted"
    login(page, own_console, "guild")
    page.goto(f"{own_console.url}/ui/policies")
    page.get_by_label("File (e.g. data/pii_categories.yaml or one of the modules below)").fill(
        "data/pii_categories.yaml"
    )
    page.get_by_label("New content").fill(yaml.safe_dump(categories))
    page.get_by_role("button", name="Stage").click()
    page.wait_for_url("**/ui/policies/*")
    assert page.locator("#status").inner_text() == "valid"
    broken = page.locator("#impact tr", has_text="customer/customers")
    assert "starts failing" in broken.inner_text()
    assert "postcode" in broken.inner_text()
    assert "restricted" in page.locator("pre.diff").first.inner_text()
    _shot(page, "policy-impact")
    staged = page.url.rsplit("/", 1)[1]

    # The activation needs its confirmation: without it the browser does not submit the form.
    page.get_by_role("button", name="Activate").click()
    assert "/ui/policies/" in page.url and service.active_revision_id() == original
    page.get_by_label("I confirm: make").check()
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url("**/ui/policies")
    assert service.active_revision_id() == staged
    assert "active" in page.locator("#revisions tr.active").inner_text()
    _shot(page, "policies")

    page.get_by_label("I confirm: re-activate").check()
    page.get_by_role("button", name="Roll back").click()
    page.wait_for_url("**/ui/policies")
    assert service.active_revision_id() == original


def test_an_analyst_is_refused_activation(page: Any, own_console: ConsoleServer) -> None:
    active = own_console.service.active_revision_id()
    login(page, own_console, "analyst-eu")
    page.goto(f"{own_console.url}/ui/policies/{active}")
    assert page.get_by_role("button", name="Activate").count() == 0
    page.goto(f"{own_console.url}/ui/policies")
    assert page.get_by_role("button", name="Roll back").count() == 0
    # Forging the form with the analyst's own session and CSRF token is refused too.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    response = page.request.post(
        f"{own_console.url}/ui/policies/rollback",
        form={"csrf": csrf, "confirm": "yes"},
        headers={"Origin": own_console.url},
    )
    assert response.status == 403
    assert "only the &#39;guild&#39; group may change policies" in response.text()
    assert own_console.service.active_revision_id() == active


def test_narrow_screen_keeps_everything_reachable(browser: Any, console: ConsoleServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        login(page, console, "analyst-eu")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1  # wide tables scroll inside their own box, not the page
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        _shot(page, "catalogue-narrow")
    finally:
        context.close()
