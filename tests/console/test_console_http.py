"""The console over HTTP: sessions, cookie flags, CSRF, authorisation, no secrets in pages."""

from __future__ import annotations

import httpx
from console_http import csrf_of, logged_in
from console_server import TOKENS, ConsoleServer

from meshgov.config import DEVELOPMENT_HASH_KEY

PAGES = ["/ui/catalogue", "/ui/access", "/ui/query", "/ui/policies", "/ui/decisions", "/ui/graph"]


def test_pages_need_a_session(console: ConsoleServer) -> None:
    with httpx.Client(base_url=console.url) as client:
        for page in [*PAGES, "/ui/products/customer/customers"]:
            response = client.get(page)
            assert response.status_code == 303, page
            assert response.headers["location"] == "/ui/login"
        assert client.get("/ui/login").status_code == 200


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(console: ConsoleServer) -> None:
    with httpx.Client(base_url=console.url) as client:
        refused = client.post("/ui/login", data={"token": "dev-wrong"})
        response = client.post("/ui/login", data={"token": TOKENS["analyst-eu"]})
        cookie = response.headers["set-cookie"]
        assert refused.status_code == 401
        assert response.status_code == 303
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/ui" in cookie
        assert "Secure" not in cookie  # plain HTTP here; set when the request came over TLS
        assert "analyst-eu" in client.get("/ui/catalogue").text
        token = csrf_of(client)
        assert client.post("/ui/logout", data={"csrf": token}).status_code == 303
        assert client.get("/ui/catalogue").status_code == 303


def test_state_changing_forms_need_the_csrf_token(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-eu") as client:
        sql = "SELECT product_id FROM commerce.products LIMIT 1"
        without = client.post("/ui/query", data={"sql": sql, "purpose": "analytics"})
        wrong = client.post("/ui/query", data={"sql": sql, "csrf": "forged"})
        cross_origin = client.post(
            "/ui/query",
            data={"sql": sql, "csrf": csrf_of(client)},
            headers={"Origin": "https://evil.example"},
        )
        logout = client.post("/ui/logout")
        accepted = client.post(
            "/ui/query", data={"sql": sql, "purpose": "analytics", "csrf": csrf_of(client)}
        )
    assert without.status_code == 403 and "CSRF" in without.text
    assert wrong.status_code == 403
    assert cross_origin.status_code == 403
    assert logout.status_code == 403
    assert accepted.status_code == 200 and 'id="result"' in accepted.text


def test_only_the_guild_changes_policies(own_console: ConsoleServer) -> None:
    active = own_console.service.active_revision_id()
    with logged_in(own_console, "analyst-eu") as client:
        token = csrf_of(client, "/ui/policies")
        page = client.get("/ui/policies").text
        stage = client.post(
            "/ui/policies/stage",
            data={"csrf": token, "path": "meshgov/extra/x.rego", "content": "package x"},
        )
        activate = client.post(
            "/ui/policies/activate", data={"csrf": token, "revision": active, "confirm": "yes"}
        )
        rollback = client.post("/ui/policies/rollback", data={"csrf": token, "confirm": "yes"})
    assert "Stage a change" not in page
    for response in (stage, activate, rollback):
        assert response.status_code == 403
        assert "only the &#39;guild&#39; group may change policies" in response.text
    assert own_console.service.active_revision_id() == active


def test_analyst_eu_reads_hashed_emails_of_eu_customers_only(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-eu") as client:
        page = client.post(
            "/ui/query",
            data={
                "sql": "SELECT email, region FROM customer.customers",
                "purpose": "analytics",
                "csrf": csrf_of(client),
            },
        ).text
    cells = _cells(page, "result")
    assert cells, page
    assert {row[1] for row in cells} == {"EU"}
    assert all("@" not in row[0] for row in cells)


def test_a_denied_query_shows_the_reason(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-eu") as client:
        response = client.post(
            "/ui/query",
            data={"sql": "SELECT * FROM customer.customers", "csrf": csrf_of(client)},
        )
    assert response.status_code == 403
    assert 'id="denial"' in response.text
    assert "purpose" in response.text.lower()


def test_access_explorer_is_own_access_only_except_for_the_guild(console: ConsoleServer) -> None:
    query = {"purpose": "analytics", "port": "customer/customers:customers"}
    with logged_in(console, "analyst-eu") as client:
        own = client.get("/ui/access", params={**query, "principal": "analyst-eu"})
        other = client.get("/ui/access", params={**query, "principal": "analyst-us"})
    with logged_in(console, "guild") as client:
        compared = client.get(
            "/ui/access", params={**query, "principal": "analyst-eu", "other": "analyst-us"}
        )
    assert own.status_code == 200
    assert "region = " in own.text and "email: hash" in own.text
    assert other.status_code == 403
    assert compared.status_code == 200
    assert "analyst-eu: " in compared.text and "analyst-us: " in compared.text
    assert "&#39;EU&#39;" in compared.text and "&#39;US&#39;" in compared.text


def test_decisions_of_others_are_for_the_guild(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-us") as client:
        client.post(
            "/ui/query",
            data={
                "sql": "SELECT product_id FROM commerce.products LIMIT 1",
                "purpose": "analytics",
                "csrf": csrf_of(client),
            },
        )
    with logged_in(console, "analyst-eu") as client:
        asked = client.get("/ui/decisions", params={"principal": "analyst-us"}).text
    with logged_in(console, "guild") as client:
        guild = client.get("/ui/decisions", params={"principal": "analyst-us"}).text
    assert "<td>analyst-us</td>" not in asked
    assert "<td>analyst-us</td>" in guild


def test_no_page_shows_tokens_or_the_hash_key(console: ConsoleServer) -> None:
    secrets = [*TOKENS.values(), DEVELOPMENT_HASH_KEY.decode(errors="replace")]
    for who in ("guild", "analyst-eu"):
        with logged_in(console, who) as client:
            for page in [
                *PAGES,
                "/ui/products/customer/customers",
                "/ui/access?purpose=analytics&port=customer/customers:customers",
                "/ui/graph/picture",
            ]:
                text = client.get(page).text
                for secret in secrets:
                    assert secret not in text, (who, page)
                assert "sha256" not in text.lower() or page == "/ui/policies", (who, page)


def _cells(page: str, table_id: str) -> list[list[str]]:
    """The body cells of the table with ``table_id`` (the stdlib HTML parser)."""
    from html.parser import HTMLParser

    rows: list[list[str]] = []

    class Cells(HTMLParser):
        inside = False
        in_body = False
        cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "table" and ("id", table_id) in attrs:
                self.inside = True
            elif self.inside and tag == "tbody":
                self.in_body = True
            elif self.in_body and tag == "tr":
                rows.append([])
            elif self.in_body and tag == "td":
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.cell is not None:
                rows[-1].append("".join(self.cell))
                self.cell = None
            elif tag == "table":
                self.inside = self.in_body = False

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    Cells().feed(page)
    return rows


def test_without_a_port_the_explorer_says_what_i_may_read(console: ConsoleServer) -> None:
    with logged_in(console, "analyst-eu") as client:
        mine = client.get("/ui/access", params={"purpose": "analytics"})
        others = client.get("/ui/access", params={"principal": "guild", "purpose": "analytics"})
    rows = {row[0]: row for row in _cells(mine.text, "overview")}
    customers = rows["customer/customers:customers"]
    assert "email (hash)" in customers[1]
    assert "'EU'" in customers[3]
    assert others.status_code == 403
