"""A decision whose text the store cannot hold as is (a NUL, a lone surrogate: a request's purpose
or product quoted in a reason) is still written, and does not hold back the decisions after it.

Found by a review: PostgreSQL refuses NUL in text and ``\\u0000`` or a lone surrogate in jsonb, and
a lone surrogate cannot be encoded at all (SQLite too); the writer retried the failing batch for
ever, so one such request stopped the decision log for every request after it."""

from __future__ import annotations

from typing import Any

import pytest

from meshgov.errors import BackendUnavailable
from meshgov.store.base import Store
from meshgov.store.decision_log import DecisionLog

STRANGE = ["a\0b", "a\ud800b", "\udfff", "a\u2028b\u2029", 'x"], "allow": true, "y": ["', "\\u0000"]


@pytest.mark.parametrize("text", STRANGE, ids=range(len(STRANGE)))
def test_a_decision_with_strange_text_is_written_with_those_after_it(
    store: Store, text: str
) -> None:
    log = DecisionLog(store, batch_size=1000, flush_seconds=0.05)
    try:
        strange = log.record(
            kind="access",
            principal=f"p{text}",
            product=f"d/{text}",
            document={"purpose": text},
            allowed=False,
            result={"allow": False, "reasons": [f"purpose '{text}' is not registered"], text: 1},
            revision="rev",
        )
        plain = log.record(
            kind="access",
            principal="p",
            product="d/p",
            document={"purpose": "analytics"},
            allowed=True,
            result={"allow": True},
            revision="rev",
        )
        assert log.flush(timeout=10)
    finally:
        log.close()
    assert store.decision(plain) is not None
    written = store.decision(strange)
    assert written is not None and written.allowed is False
    assert written.result["allow"] is False
    # Text the store can hold is kept exactly; the rest is replaced, never dropped silently.
    reason = written.result["reasons"][0]
    if "\0" not in text and not any(0xD800 <= ord(c) < 0xE000 for c in text):
        assert written.principal == f"p{text}" and reason == f"purpose '{text}' is not registered"
    else:
        assert written.principal.startswith("p") and "\0" not in written.principal
        assert reason.startswith("purpose '") and reason.endswith("' is not registered")


class RefusingStore:
    """A real store behind a constraint it enforces on write: any batch holding a record whose
    result has the key ``refused`` (or whose principal is ``refused-always``) fails as a whole,
    as a database refuses a transaction for one bad row."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def append_decisions(self, records: list[Any]) -> None:
        if any("refused" in r.result or r.principal == "refused-always" for r in records):
            raise BackendUnavailable("PostgreSQL: invalid input value")
        self.inner.append_decisions(records)


@pytest.mark.parametrize("principal", ["p", "refused-always"])
def test_a_record_the_store_refuses_does_not_stall_the_log(store: Store, principal: str) -> None:
    """The failed batch is written a record at a time: the others as they were, the refused one
    reduced (its result kept as ASCII JSON text), or dropped with an error if even that fails."""
    log = DecisionLog(RefusingStore(store), batch_size=1000, flush_seconds=0.05)  # type: ignore[arg-type]
    try:
        ids = [
            log.record(
                kind="access",
                principal=principal if index == 1 else "p",
                product="d/p",
                document={"n": index},
                allowed=index != 1,
                result={"refused": "é"} if index == 1 else {"allow": True, "n": index},
                revision="rev",
            )
            for index in range(4)
        ]
        assert log.flush(timeout=10)
    finally:
        log.close()
    for index in (0, 2, 3):
        record = store.decision(ids[index])
        assert record is not None and record.result == {"allow": True, "n": index}
    refused = store.decision(ids[1])
    if principal == "refused-always":
        assert refused is None
    else:
        assert refused is not None and refused.allowed is False and refused.revision == "rev"
        assert refused.result == {"unstorable_result": '{"refused": "\\u00e9"}'}


class DownStore:
    """Refuses every write until ``up`` is set, then delegates."""

    def __init__(self, inner: Store, failures: int) -> None:
        self.inner = inner
        self.failures_left = failures

    def append_decisions(self, records: list[Any]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise BackendUnavailable("store down")
        self.inner.append_decisions(records)


@pytest.mark.parametrize("failures", [1, 3, 4, 10])
def test_a_store_that_is_down_for_a_while_gets_every_record_as_it_was(
    store: Store, failures: int
) -> None:
    """Records that failed only because the store was down are never reduced nor dropped."""
    down = DownStore(store, failures)
    log = DecisionLog(down, batch_size=1000, flush_seconds=0.02)  # type: ignore[arg-type]
    try:
        ids = [
            log.record(
                kind="access",
                principal=f"p{index}",
                product="d/p",
                document={},
                allowed=True,
                result={"allow": True, "n": index},
                revision="rev",
            )
            for index in range(5)
        ]
        assert log.flush(timeout=10)
    finally:
        log.close()
    for index, decision_id in enumerate(ids):
        record = store.decision(decision_id)
        assert record is not None and record.result == {"allow": True, "n": index}
