"""The guild's day over HTTP: change a rule and its test together, see the impact, activate,
roll back, and read who did what when (issue 12, points 1-3)."""

from __future__ import annotations

from api_server import ROOT, RunningServer

RULE = "meshgov/pii/pii.rego"
TEST = "meshgov/pii/pii_test.rego"


def _warning_to_error() -> dict[str, str]:
    """`pii/undeclared-name` from warning to error, in the rule and in its test."""
    rule = (ROOT / "policies" / RULE).read_text(encoding="utf-8")
    test = (ROOT / "policies" / TEST).read_text(encoding="utf-8")
    new_rule = rule.replace(
        "#     pii/undeclared-name: warning", "#     pii/undeclared-name: error"
    )
    new_rule = new_rule.replace(
        '"pii/undeclared-name",\n\t\t"warning",', '"pii/undeclared-name",\n\t\t"error",'
    )
    new_test = test.replace(
        '"pii/undeclared-name")\n\tv.severity == "warning"',
        '"pii/undeclared-name")\n\tv.severity == "error"',
    )
    assert new_rule != rule and new_test != test
    return {RULE: new_rule, TEST: new_test}


def _put(client, path: str, content: str, base: str | None = None):  # type: ignore[no-untyped-def]
    return client.put(
        f"/v1/policies/{path}",
        params={"base": base} if base else None,
        content=content,
        headers={"Content-Type": "text/plain"},
    )


def test_a_rule_and_its_test_change_together(own_server: RunningServer) -> None:
    change = _warning_to_error()
    with own_server.client("guild") as client:
        # One file at a time on the active revision: each misses the other's new version.
        alone = _put(client, RULE, change[RULE]).json()
        assert alone["status"] == "failed"
        # The same two files in one change: one revision, compiled, tested, linted.
        staged = client.post("/v1/policies/changes", json={"files": change})
        assert staged.status_code == 200, staged.text
        body = staged.json()
        assert body["status"] == "valid", body["report"].get("tests")
        assert body["report"]["tests"]["failed"] == 0
        assert "lint" in body["report"]
        # Or one file, then the other on top of the staged revision (`?base=`).
        on_top = _put(client, TEST, change[TEST], base=alone["id"]).json()
        assert on_top["id"] == body["id"]
        assert on_top["status"] == "valid"
        missing_base = _put(client, TEST, change[TEST], base="nope")
        assert missing_base.status_code == 404
        assert "nope" in missing_base.text
        activation = client.post("/v1/policies/activate", json={"revision": body["id"]})
        assert activation.status_code == 200, activation.text
    assert own_server.service.state.revision == body["id"]


def test_the_impact_report_names_catalogue_files_with_lines(own_server: RunningServer) -> None:
    # A new name hint makes `segment` columns look like PII: the impact names where they are.
    categories = (ROOT / "policies" / "data" / "pii_categories.yaml").read_text(encoding="utf-8")
    hinted = categories.replace(
        "name_hints: ['^(first|last|full", "name_hints: ['^segment$', '^(first|last|full", 1
    )
    assert hinted != categories
    files = {**_warning_to_error(), "data/pii_categories.yaml": hinted}
    with own_server.client("guild") as client:
        body = client.post("/v1/policies/changes", json={"files": files}).json()
    assert body["status"] == "valid", body["report"].get("tests")
    impact = body["report"]["impact"]
    assert impact, "the change fails the products with a `segment` column"
    assert all(entry["passes_before"] and not entry["passes_after"] for entry in impact)
    locations = [f["location"] for entry in impact for f in entry["added"] + entry["removed"]]
    assert locations
    catalog = str((ROOT / "examples" / "mesh").resolve())
    for location in locations:
        assert not location["file"].startswith("/"), location
        assert catalog not in location["file"]
        assert (ROOT / "examples" / "mesh" / location["file"]).is_file(), location
        assert isinstance(location["line"], int) and location["line"] > 0, location


def test_who_staged_activated_and_rolled_back_is_recorded(own_server: RunningServer) -> None:
    first = own_server.service.state.revision
    with own_server.client("guild") as client:
        staged = client.post("/v1/policies/changes", json={"files": _warning_to_error()}).json()
        client.post("/v1/policies/activate", json={"revision": staged["id"]}).raise_for_status()
        client.post("/v1/policies/rollback").raise_for_status()
    with own_server.client("analyst-eu") as client:
        trail = client.get("/v1/policies/audit").json()["events"]
        detail = client.get(f"/v1/policies/revisions/{staged['id']}").json()
        only = client.get("/v1/policies/audit", params={"revision": staged["id"]}).json()["events"]
    acts = [(e["action"], e["revision"], e["actor"], e["previous"]) for e in trail]
    assert ("activated", first, "system:startup", None) in acts
    assert acts[-3:] == [
        ("staged", staged["id"], "guild", None),
        ("activated", staged["id"], "guild", first),
        ("rolled_back", first, "guild", staged["id"]),
    ]
    assert [e["action"] for e in detail["audit"]] == ["staged", "activated"]
    assert [e["action"] for e in only] == ["staged", "activated"]
    assert all(e["at"].endswith("Z") or "+00:00" in e["at"] for e in trail)
    # Durable: the store, not the process, holds it.
    from meshgov.store.base import open_store

    reopened = open_store(own_server.settings.resolved_store_url())
    try:
        assert [(e.action, e.revision) for e in reopened.audit()][-3:] == [
            (a, r) for a, r, _, _ in acts[-3:]
        ]
    finally:
        reopened.close()
