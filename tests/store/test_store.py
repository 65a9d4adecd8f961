"""The same behaviour from the SQLite and the PostgreSQL store."""

from __future__ import annotations

import time

import pytest

from meshgov.errors import Conflict
from meshgov.store.base import (
    REVISION_FAILED,
    REVISION_VALID,
    ConsoleSessionRecord,
    DecisionFilter,
    DecisionRecord,
    PolicyRevision,
    ProductVersion,
    Store,
    open_store,
)


def _version(version: str, at: float, name: str = "customers") -> ProductVersion:
    return ProductVersion("customer", name, version, f"version: {version}\n", "alice", at)


def test_publish_lists_latest_and_versions(store: Store) -> None:
    store.publish(_version("1.0.0", 1.0))
    store.publish(_version("1.1.0", 2.0))
    store.publish(_version("0.1.0", 3.0, name="segments"))
    latest = {p.product_id: p.version for p in store.latest_products()}
    assert latest == {"customer/customers": "1.1.0", "customer/segments": "0.1.0"}
    versions = store.product_versions("customer", "customers")
    assert [v.version for v in versions] == ["1.0.0", "1.1.0"]
    assert versions[0].manifest == "version: 1.0.0\n"
    assert store.product_versions("customer", "nope") == []


def test_publishing_the_same_version_twice_conflicts(store: Store) -> None:
    store.publish(_version("1.0.0", 1.0))
    with pytest.raises(Conflict, match=r"customer/customers version 1\.0\.0"):
        store.publish(_version("1.0.0", 2.0))


def test_revisions_and_activation_history(store: Store) -> None:
    good = PolicyRevision(
        "aaa", "guild-gina", 1.0, {"a.rego": "package a"}, {"x": 1}, REVISION_VALID
    )
    bad = PolicyRevision("bbb", "guild-gina", 2.0, {"a.rego": "package"}, {}, REVISION_FAILED)
    store.save_revision(good)
    store.save_revision(bad)
    assert store.revision("aaa") == good
    assert store.revision("missing") is None
    assert [r.id for r in store.revisions()] == ["aaa", "bbb"]
    assert not store.revision("bbb").activatable  # type: ignore[union-attr]
    first = store.activate("aaa", "guild-gina", 5.0)
    second = store.activate("aaa", "guild-gina", 6.0)
    assert second.seq > first.seq
    assert [a.revision for a in store.activations()] == ["aaa", "aaa"]


def test_decisions_filter_by_principal_product_allowed_and_time(store: Store) -> None:
    now = time.time()
    records = [
        DecisionRecord(
            f"d{i}",
            now + i,
            "authorize",
            f"p{i % 2}",
            "customer/customers" if i % 3 == 0 else None,
            "digest",
            i % 2 == 0,
            {"reasons": [f"r{i}"]},
            "rev1",
        )
        for i in range(6)
    ]
    store.append_decisions(records)
    store.append_decisions(records[:2])  # replays are idempotent
    assert store.count_decisions() == 6
    assert [r.id for r in store.decisions(DecisionFilter(principal="p0"))] == ["d4", "d2", "d0"]
    assert [r.id for r in store.decisions(DecisionFilter(product="customer/customers"))] == [
        "d3",
        "d0",
    ]
    assert {r.id for r in store.decisions(DecisionFilter(allowed=False))} == {"d1", "d3", "d5"}
    window = store.decisions(DecisionFilter(since=now + 1, until=now + 2))
    assert [r.id for r in window] == ["d2", "d1"]
    assert store.decisions(DecisionFilter(limit=1))[0].result == {"reasons": ["r5"]}
    assert store.decision("d3") == records[3]
    assert store.decision("missing") is None


def test_console_sessions_expire_are_deleted_and_purged(store_url: tuple[str, str | None]) -> None:
    url, schema = store_url
    first = open_store(url, schema=schema)
    live = ConsoleSessionRecord("a" * 64, "guild", "b" * 64, 100.0, 200.0)
    old = ConsoleSessionRecord("c" * 64, "analyst-eu", "d" * 64, 10.0, 50.0)
    first.save_session(live)
    first.save_session(old)
    first.close()
    store = open_store(url, schema=schema)  # sessions survive a restart
    try:
        assert store.session("a" * 64, 150.0) == live
        assert store.session("a" * 64, 200.0) is None  # expired at its expiry
        assert store.session("c" * 64, 150.0) is None
        assert store.session("e" * 64, 150.0) is None
        assert store.purge_sessions(150.0) == 1
        assert store.session("c" * 64, 20.0) is None  # purged, gone for good
        store.delete_session("a" * 64)
        assert store.session("a" * 64, 150.0) is None
    finally:
        store.close()


def test_state_survives_a_restart(store_url: tuple[str, str | None]) -> None:
    url, schema = store_url
    first = open_store(url, schema=schema)
    first.publish(_version("2.0.0", 1.0))
    first.save_revision(PolicyRevision("rev", "g", 1.0, {}, {}, REVISION_VALID))
    first.activate("rev", "g", 2.0)
    first.close()
    second = open_store(url, schema=schema)
    try:
        assert [p.version for p in second.latest_products()] == ["2.0.0"]
        assert second.activations()[-1].revision == "rev"
    finally:
        second.close()


def test_latest_is_the_highest_version_not_the_last_published(store: Store) -> None:
    store.publish(_version("2.2.0", 1.0))
    store.publish(_version("2.1.5", 2.0))  # a fix on an older line, published later
    assert [p.version for p in store.latest_products()] == ["2.2.0"]
    store.publish(_version("2.3.0-rc.1", 3.0))
    assert [p.version for p in store.latest_products()] == ["2.3.0-rc.1"]
    store.publish(_version("2.3.0", 4.0))
    assert [p.version for p in store.latest_products()] == ["2.3.0"]


def test_the_policy_audit_trail_is_durable_and_filterable(
    store_url: tuple[str, str | None],
) -> None:
    url, schema = store_url
    first = open_store(url, schema=schema)
    first.append_audit("guild-gina", "staged", "rev2", None, 1.0)
    first.append_audit("guild-gina", "activated", "rev2", "rev1", 2.0)
    first.append_audit("guild-omar", "rolled_back", "rev1", "rev2", 3.0)
    first.close()
    second = open_store(url, schema=schema)
    try:
        trail = second.audit()
        assert [(e.actor, e.action, e.revision, e.previous) for e in trail] == [
            ("guild-gina", "staged", "rev2", None),
            ("guild-gina", "activated", "rev2", "rev1"),
            ("guild-omar", "rolled_back", "rev1", "rev2"),
        ]
        assert [e.at for e in second.audit("rev2")] == [1.0, 2.0]
        assert trail[0].seq < trail[1].seq < trail[2].seq
    finally:
        second.close()
