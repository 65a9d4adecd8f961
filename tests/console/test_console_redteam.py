"""Red-team probes of the console and the API behind it: a staged revision's access impact names
other principals' decisions (their row filters, what they see unmasked), which only the guild
may read, in the API as in the console."""

from __future__ import annotations

from pathlib import Path

import httpx
from console_http import logged_in
from console_server import TOKENS, ConsoleServer

ROOT = Path(__file__).resolve().parents[2]


def _stage_fraud_without_pii(console: ConsoleServer) -> str:
    """Stage a revision that narrows what fraud-investigator sees (fraud_detection loses PII)."""
    text = (ROOT / "policies" / "data" / "purposes.yaml").read_text(encoding="utf-8")
    changed = text.replace(
        "description: Detecting and investigating fraud.\n  pii: true",
        "description: Detecting and investigating fraud.\n  pii: false",
    )
    assert changed != text
    response = httpx.put(
        f"{console.url}/v1/policies/data/purposes.yaml",
        content=changed,
        headers={"Authorization": f"Bearer {TOKENS['guild']}", "Content-Type": "text/plain"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    revision = response.json()
    assert {a["principal"] for a in revision["report"]["access"]} == {"fraud-investigator"}
    return str(revision["id"])


def _access_impact(console: ConsoleServer, who: str, revision: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{console.url}/v1/policies/revisions/{revision}",
        headers={"Authorization": f"Bearer {TOKENS[who]}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    access: list[dict[str, object]] = response.json()["report"]["access"]
    return access


def test_only_the_guild_reads_other_principals_access_impact(own_console: ConsoleServer) -> None:
    revision = _stage_fraud_without_pii(own_console)
    assert _access_impact(own_console, "analyst-eu", revision) == []
    assert [a["principal"] for a in _access_impact(own_console, "guild", revision)] == [
        "fraud-investigator"
    ]
    own = _access_impact(own_console, "fraud-investigator", revision)
    assert [a["principal"] for a in own] == ["fraud-investigator"]
    with logged_in(own_console, "analyst-eu") as client:
        page = client.get(f"/ui/policies/{revision}")
    assert page.status_code == 200
    assert "fraud-investigator" not in page.text
    assert "No access decision changes." in page.text
    with logged_in(own_console, "guild") as client:
        page = client.get(f"/ui/policies/{revision}")
    assert "fraud-investigator" in page.text
