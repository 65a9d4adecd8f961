"""No console page shows a column to a viewer its access decisions hide it from (issue 17).

analyst-eu's decisions hide marketing/customer_360's ``failed_payment_count`` and commerce/orders'
``fraud_score`` (restricted, no mask): neither name is in any page it can open, while the guild
and the owning domain see them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from console_http import csrf_of, logged_in
from console_server import ROOT, ConsoleServer, start_console

HIDDEN_FROM_ANALYSTS = ("failed_payment_count", "fraud_score")

PAGES = [
    "/ui/catalogue",
    "/ui/catalogue?q=failed_payment",
    "/ui/catalogue?q=fraud_score",
    "/ui/products/marketing/customer_360",
    "/ui/products/marketing/customer_360?purpose=analytics",
    "/ui/products/marketing/customer_360?purpose=marketing",
    "/ui/products/commerce/orders",
    "/ui/products/payments/payments",
    "/ui/access",
    "/ui/access?purpose=analytics",
    "/ui/access?purpose=analytics&port=marketing/customer_360:customer_360",
    "/ui/access?purpose=analytics&port=commerce/orders:orders",
    "/ui/graph",
    "/ui/graph/picture",
    "/ui/graph?question=impact&target=marketing/customer_360",
    "/ui/graph?question=impact&target=payments/payments:payments:status",
    "/ui/graph?question=impact&target=marketing/customer_360:customer_360:failed_payment_count",
    "/ui/graph?question=pii",
    "/ui/graph?question=paths&left=customer/customers&right=commerce/orders",
    "/ui/graph?question=upstream&target=marketing/customer_360",
    "/ui/graph?question=downstream&target=payments/payments",
    "/ui/graph?question=risk",
]


@pytest.fixture(scope="module")
def console_with_owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """The example console with one more token: a principal of the marketing domain."""
    tmp = tmp_path_factory.mktemp("columns")
    owner = {
        "id": "owner-marketing",
        "groups": ["marketing-owners"],
        "domain": "marketing",
        "attributes": {"region": "EU", "clearances": []},
    }
    text = (ROOT / "examples" / "tokens.yaml").read_text(encoding="utf-8")
    digest = hashlib.sha256(b"dev-owner-marketing").hexdigest()
    text += f"  - sha256: {digest}\n    principal: {json.dumps(owner)}\n"
    tokens = tmp / "tokens.yaml"
    tokens.write_text(text, encoding="utf-8")
    handle = start_console(tmp, tokens)
    try:
        yield handle
    finally:
        handle.stop()


def _pages(client: httpx.Client) -> dict[str, str]:
    seen = {}
    for page in PAGES:
        response = client.get(page)
        assert response.status_code in (200, 404), (page, response.status_code)
        seen[page] = response.text
    # A query of the product (the decision then on the decision pages).
    ran = client.post(
        "/ui/query",
        data={
            "sql": "SELECT * FROM marketing.customer_360",
            "purpose": "analytics",
            "csrf": csrf_of(client),
        },
    )
    assert ran.status_code == 200, ran.text
    seen["query"] = ran.text
    decisions = client.get("/ui/decisions")
    seen["decisions"] = decisions.text
    for link in sorted(set(decisions.text.split('href="/ui/decisions/')[1:]))[:30]:
        path = "/ui/decisions/" + link.split('"', 1)[0]
        seen[path] = client.get(path).text
    return seen


@contextmanager
def _login(console: ConsoleServer, who: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url, timeout=60) as client:
        assert client.post("/ui/login", data={"token": f"dev-{who}"}).status_code == 303
        yield client


def test_analyst_sees_no_hidden_column_name_on_any_page(console_with_owner: ConsoleServer) -> None:
    with _login(console_with_owner, "analyst-eu") as client:
        seen = _pages(client)
    for page, html in seen.items():
        for name in HIDDEN_FROM_ANALYSTS:
            # A page answering a search or a target the viewer typed echoes it in its form.
            typed = name in page or (name[:9] in page and "q=" in page)
            if typed and 'id="catalogue"' in html:
                html = html.split('id="catalogue"', 1)[1]
            elif typed:
                html = html.split("</form>")[-1].replace(f"no column &#39;{name}&#39;", "")
            assert name not in html, f"{name} on {page}"
    product = seen["/ui/products/marketing/customer_360"]
    assert "segment" in product and "customer_id" in product  # the visible columns are there
    # The query shows the hidden column counted, not named; the explorer too.
    assert "(not named)" in seen["query"]
    assert (
        "hidden from you (not named)"
        in seen["/ui/access?purpose=analytics&port=marketing/customer_360:customer_360"]
    )
    # Asking for the impact of a hidden column is answered as for a column that does not exist.
    impact = seen[
        "/ui/graph?question=impact&target=marketing/customer_360:customer_360:failed_payment_count"
    ]
    assert "has no column" in impact


def test_masked_columns_are_marked_and_unreadable_ports_show_no_columns(
    console_with_owner: ConsoleServer,
) -> None:
    with _login(console_with_owner, "analyst-eu") as client:
        customers = client.get("/ui/products/customer/customers?purpose=analytics").text
    with _login(console_with_owner, "nobody") as client:
        payments = client.get("/ui/products/payments/payments").text
    assert "masked for you: hash" in customers  # analyst-eu gets hashed e-mails
    # nobody has no grant: no column of the port is listed, not even the identifier.
    assert "card_number" not in payments and "payment_id" not in payments.split("<h2>Ports")[1]
    assert "You may not read this port" in payments


@pytest.mark.parametrize("who", ["guild", "owner-marketing"])
def test_guild_and_owner_see_every_column(console_with_owner: ConsoleServer, who: str) -> None:
    with _login(console_with_owner, who) as client:
        product = client.get("/ui/products/marketing/customer_360").text
        search = client.get("/ui/catalogue?q=failed_payment").text
        explorer = client.get(
            "/ui/access?purpose=analytics&port=marketing/customer_360:customer_360"
            + ("&principal=analyst-eu" if who == "guild" else "")
        ).text
        # The guild: the impact of payments' status reaches the derived column; the owner: the
        # impact of its own column is answered (payments' columns are not the owner's to see).
        target = (
            "payments/payments:payments:status"
            if who == "guild"
            else "marketing/customer_360:customer_360:failed_payment_count"
        )
        impact = client.get(f"/ui/graph?question=impact&target={target}").text
    assert "failed_payment_count" in product
    assert "has no column" not in impact
    assert "failed_payment_count" in impact.split('id="answer"', 1)[1]
    assert "marketing/customer_360" in search.split('id="catalogue"', 1)[1]
    assert "failed_payment_count" in explorer or who != "guild"


def test_the_catalogue_search_does_not_find_a_product_by_a_hidden_column(
    console_with_owner: ConsoleServer,
) -> None:
    with _login(console_with_owner, "analyst-eu") as client:
        hidden = client.get("/ui/catalogue?q=failed_payment").text
        shown = client.get("/ui/catalogue?q=total_spend").text
    assert "marketing/customer_360" not in hidden.split('id="catalogue"', 1)[1]
    assert "marketing/customer_360" in shown.split('id="catalogue"', 1)[1]


def test_column_matches_not_checked_in_time_are_left_out_and_checked_in_the_background(
    own_console: ConsoleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshgov.console import pages, visibility

    monkeypatch.setattr(pages, "COLUMN_CHECK_S", 0.0)
    busy = threading.Event()
    visibility.BACKGROUND.submit(busy.wait, 60)  # the background checker waits its turn
    with logged_in(own_console, "analyst-eu") as client:
        first = client.get("/ui/catalogue?q=total_spend").text
        busy.set()
        jobs = own_console.service.state.cache["console_column_jobs"]
        for job in list(jobs.values()):
            job.result(timeout=60)
        then = client.get("/ui/catalogue?q=total_spend").text
        hidden = client.get("/ui/catalogue?q=failed_payment").text
    # Unchecked: not listed (fail closed), counted, and the page says so.
    assert "marketing/customer_360" not in first.split('id="catalogue"', 1)[1]
    assert 'id="unchecked"' in first and "reload" in first
    # Checked in the background: the visible column finds the product, the hidden one does not.
    assert "marketing/customer_360" in then.split('id="catalogue"', 1)[1]
    assert 'id="unchecked"' not in then
    assert "marketing/customer_360" not in hidden.split('id="catalogue"', 1)[1]


def test_a_row_filter_or_a_text_naming_a_hidden_column_is_not_shown() -> None:
    from meshgov.console.visibility import HIDDEN, redact, redact_value, row_filter_shown

    assert row_filter_shown("region = {principal.region}", {"region"})
    assert not row_filter_shown("failed_payment_count > 0 AND region = 'EU'", {"region"})
    assert not row_filter_shown("(((", {"region"})  # unparsable: not shown (fail closed)
    reason = (
        "columns hidden (classified restricted, no clearance): fraud_score, failed_payment_count"
    )
    assert redact(reason, {"fraud_score"}) == reason.replace("fraud_score", HIDDEN)
    assert (
        redact("fraud_scores and fraud_score_x", {"fraud_score"})
        == "fraud_scores and fraud_score_x"
    )
    shown = redact_value({"hidden": ["fraud_score", "x"], "why": [reason]}, {"fraud_score"})
    assert shown["hidden"] == ["x"] and "fraud_score" not in str(shown)


def test_a_query_engine_may_not_read_another_principal_s_risk(
    console_with_owner: ConsoleServer,
) -> None:
    # trino may explore others' access (it speaks for them), but a risk answer names the columns
    # another principal sees: only the guild reads those.
    with _login(console_with_owner, "trino") as client:
        other = client.get("/ui/graph?question=risk&principal=analyst-eu")
        own = client.get("/ui/graph?question=risk")
    assert other.status_code == 403 and "only the guild" in other.text
    assert own.status_code == 200
