"""Policy lifecycle: stage (compile, test, impact), activate, roll back; bad revisions never run."""

from __future__ import annotations

import copy
import threading

import yaml
from api_server import ROOT, RunningServer

FAILING_TEST = """package meshgov.extra_test

import rego.v1

test_always_fails if {
\t1 == 2
}
"""


def _stage(client, path: str, content: str):  # type: ignore[no-untyped-def]
    return client.put(
        f"/v1/policies/{path}", content=content, headers={"Content-Type": "text/plain"}
    )


def test_list_and_read_revisions(server: RunningServer) -> None:
    with server.client("analyst-eu") as client:
        listed = client.get("/v1/policies").json()
        active = listed["active"]
        detail = client.get(f"/v1/policies/revisions/{active}").json()
        missing = client.get("/v1/policies/revisions/nope")
    assert active == server.service.state.revision
    assert any(r["id"] == active and r["active"] for r in listed["revisions"])
    assert detail["status"] == "valid"
    assert detail["report"]["tests"]["failed"] == 0
    assert any(path.endswith("access.rego") for path in detail["files"])
    assert missing.status_code == 404


def test_a_revision_that_does_not_compile_cannot_be_activated(own_server: RunningServer) -> None:
    before = own_server.service.state.revision
    with own_server.client("guild") as client:
        staged = _stage(client, "meshgov/extra/extra.rego", "package meshgov.extra\n\nnot rego {")
        body = staged.json()
        activation = client.post("/v1/policies/activate", json={"revision": body["id"]})
    assert staged.status_code == 200
    assert body["status"] == "failed"
    assert body["activatable"] is False
    assert body["report"]["compile"]["ok"] is False
    assert activation.status_code == 409
    assert own_server.service.state.revision == before


def test_a_revision_whose_tests_fail_cannot_be_activated(own_server: RunningServer) -> None:
    with own_server.client("guild") as client:
        body = _stage(client, "meshgov/extra/extra_test.rego", FAILING_TEST).json()
        activation = client.post("/v1/policies/activate", json={"revision": body["id"]})
    assert body["status"] == "failed"
    failures = body["report"]["tests"]["failures"]
    assert [f["test"] for f in failures] == ["meshgov.extra_test.test_always_fails"]
    assert activation.status_code == 409


def _stricter_address(server: RunningServer) -> str:
    """data/pii_categories.yaml with postal addresses required to be `restricted`."""
    categories = copy.deepcopy(server.service.state.bundle.data["registry"]["pii_categories"])
    categories["address"]["minimum"] = "restricted"
    return yaml.safe_dump(categories)


def test_stage_shows_impact_then_activate_and_roll_back(own_server: RunningServer) -> None:
    original = own_server.service.state.revision
    with own_server.client("guild") as client:
        staged = _stage(client, "data/pii_categories.yaml", _stricter_address(own_server)).json()
        assert staged["status"] == "valid", staged["report"]
        impact = {c["product"]: c for c in staged["report"]["impact"]}
        activated = client.post("/v1/policies/activate", json={"revision": staged["id"]})
        health = client.get("/health").json()
        rolled = client.post("/v1/policies/rollback").json()
        after = client.get("/health").json()
    # A stricter tier changes the gate, not what anybody reads.
    assert staged["report"]["access"] == []
    customers = impact["customer/customers"]
    assert customers["passes_before"] is True
    assert customers["passes_after"] is False
    assert {f["location"]["column"] for f in customers["added"]} == {"postcode"}
    assert activated.status_code == 200
    assert activated.json() == {"active": staged["id"], "previous": original}
    assert health["revision"] == staged["id"]
    assert rolled == {"active": original, "previous": staged["id"]}
    assert after["revision"] == original


def test_publishing_follows_the_active_revision(own_server: RunningServer) -> None:
    """After activation the stricter rule gates publishing; after rollback it no longer does."""
    manifest = (ROOT / "examples/mesh/customer/customers.yaml").read_text(encoding="utf-8")
    manifest = manifest.replace("version: 2.1.0", "version: 2.1.1").replace(
        "      data: data/customers.parquet\n", ""
    )
    with own_server.client("guild") as client:
        staged = _stage(client, "data/pii_categories.yaml", _stricter_address(own_server)).json()
        client.post("/v1/policies/activate", json={"revision": staged["id"]})
    with own_server.client("owner-customer") as client:
        refused = client.put(
            "/v1/products/customer/customers",
            content=manifest,
            headers={"Content-Type": "application/yaml"},
        )
    with own_server.client("guild") as client:
        client.post("/v1/policies/rollback")
    with own_server.client("owner-customer") as client:
        accepted = client.put(
            "/v1/products/customer/customers",
            content=manifest,
            headers={"Content-Type": "application/yaml"},
        )
    assert refused.status_code == 422
    assert refused.json()["revision"] == staged["id"]
    assert accepted.status_code == 201, accepted.text


def test_data_files_are_staged_too(own_server: RunningServer) -> None:
    registry = own_server.service.state.bundle.data["registry"]
    purposes = yaml.safe_dump(registry["purposes"])
    with own_server.client("guild") as client:
        same = _stage(client, "data/purposes.yaml", purposes).json()
        bad_path = _stage(client, "data/nested/x.yaml", "x: 1")
        bad_kind = _stage(client, "meshgov/notes.txt", "x")
    assert same["id"] == own_server.service.state.revision  # same content, same revision
    assert bad_path.status_code == 400
    assert bad_kind.status_code == 400


def test_activation_is_atomic_for_concurrent_requests(own_server: RunningServer) -> None:
    """Requests during activate/rollback each see one whole revision, never a mix or an error."""
    with own_server.client("guild") as client:
        staged = _stage(client, "data/pii_categories.yaml", _stricter_address(own_server)).json()
    revisions = {own_server.service.state.revision, staged["id"]}
    seen: list[str] = []
    errors: list[int] = []

    def ask() -> None:
        with own_server.client("analyst-eu") as client:
            for _ in range(15):
                response = client.post(
                    "/v1/query/authorize",
                    json={
                        "sql": "SELECT product_id FROM commerce.products",
                        "purpose": "analytics",
                    },
                )
                if response.status_code != 200:
                    errors.append(response.status_code)
                else:
                    seen.append(response.json()["revision"])

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    with own_server.client("guild") as client:
        for _ in range(2):
            assert (
                client.post("/v1/policies/activate", json={"revision": staged["id"]}).status_code
                == 200
            )
            assert client.post("/v1/policies/rollback").status_code == 200
    for thread in threads:
        thread.join()
    assert not errors
    assert set(seen) <= revisions


def test_removing_a_module_is_staged_and_checked(own_server: RunningServer) -> None:
    with own_server.client("guild") as client:
        missing = client.delete("/v1/policies/meshgov/none/none.rego")
        # Removing a concern that the gate imports breaks compilation: never activatable.
        removed = client.delete("/v1/policies/meshgov/pii/pii.rego").json()
    assert missing.status_code == 404
    assert removed["status"] == "failed"
    assert removed["activatable"] is False


def test_a_misshapen_registry_file_is_refused_before_anything_is_stored(
    own_server: RunningServer,
) -> None:
    before = own_server.service.state.revision
    with own_server.client("guild") as client:
        revisions = len(client.get("/v1/policies").json()["revisions"])
        as_list = _stage(client, "data/purposes.yaml", "- just a list\n")
        wrong_type = _stage(client, "data/purposes.yaml", "analytics:\n  pii: maybe\n")
        unknown_mask = _stage(
            client,
            "data/pii_categories.yaml",
            "email:\n  default_mask: hash\n  allowed_masks: [hash, scramble]\n",
        )
        after = len(client.get("/v1/policies").json()["revisions"])
    assert as_list.status_code == 400
    assert "purposes" in as_list.json()["message"]
    assert wrong_type.status_code == 400
    assert "analytics.pii" in wrong_type.json()["message"]
    assert wrong_type.json()["errors"][0]["location"]["line"] == 2
    assert unknown_mask.status_code == 400
    assert "scramble" in unknown_mask.json()["message"]
    assert after == revisions
    assert own_server.service.state.revision == before


def test_stage_shows_the_access_decisions_that_would_change(own_server: RunningServer) -> None:
    purposes = copy.deepcopy(own_server.service.state.bundle.data["registry"]["purposes"])
    del purposes["operations"]
    with own_server.client("guild") as client:
        staged = _stage(client, "data/purposes.yaml", yaml.safe_dump(purposes)).json()
    access = staged["report"]["access"]
    assert access
    assert {(c["purpose"], c["change"]) for c in access} == {("operations", "closed")}
    principals = {p.id for p in own_server.service.principals}
    assert {c["principal"] for c in access} <= principals
    assert all(c["before"]["allow"] and not c["after"]["allow"] for c in access)


def test_rolling_back_twice_walks_back_two_revisions(own_server: RunningServer) -> None:
    original = own_server.service.state.revision
    purposes = copy.deepcopy(own_server.service.state.bundle.data["registry"]["purposes"])
    with own_server.client("guild") as client:
        purposes["analytics"]["description"] = "first change"
        first = _stage(client, "data/purposes.yaml", yaml.safe_dump(purposes)).json()["id"]
        client.post("/v1/policies/activate", json={"revision": first})
        purposes["analytics"]["description"] = "second change"
        second = _stage(client, "data/purposes.yaml", yaml.safe_dump(purposes)).json()["id"]
        client.post("/v1/policies/activate", json={"revision": second})
        back_once = client.post("/v1/policies/rollback").json()
        back_twice = client.post("/v1/policies/rollback").json()
        no_further = client.post("/v1/policies/rollback")
    assert back_once == {"active": first, "previous": second}
    assert back_twice == {"active": original, "previous": first}
    assert no_further.status_code == 409
    assert own_server.service.state.revision == original


def test_a_revision_that_breaks_the_guilds_conventions_cannot_be_activated(
    own_server: RunningServer,
) -> None:
    """What `meshgov policy lint` rejects (package not matching its directory, no tests, no
    METADATA) fails staging too."""
    with own_server.client("guild") as client:
        body = _stage(
            client, "meshgov/qa/qa.rego", "package other.pkg\n\nimport rego.v1\n\ny := 1\n"
        ).json()
        activation = client.post("/v1/policies/activate", json={"revision": body["id"]})
    assert body["status"] == "failed"
    assert body["report"]["compile"]["ok"] is True
    rules = {f["rule"] for f in body["report"]["lint"] if f["severity"] == "error"}
    assert "directory-package-mismatch" in rules
    assert activation.status_code == 409
