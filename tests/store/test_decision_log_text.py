"""A decision whose text the store cannot hold as is (a NUL, a lone surrogate: a request's purpose
or product quoted in a reason) is still written, and does not hold back the decisions after it.

Found by a review: PostgreSQL refuses NUL in text and ``\\u0000`` or a lone surrogate in jsonb, and
a lone surrogate cannot be encoded at all (SQLite too); the writer retried the failing batch for
ever, so one such request stopped the decision log for every request after it."""

from __future__ import annotations

import pytest

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
