"""Decoding a batch of raw events in one call (pyarrow's JSON reader) gives exactly what the
event-by-event decoding gives, and any batch it cannot prove it decodes the same way is decoded
event by event: each malformed event named, the others kept with their own raw positions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from stream_world import ORDERS, make_world

from meshgov import event_batches
from meshgov.brokers.base import BrokerMessage
from meshgov.core.manifest import OutputPort
from meshgov.event_batches import SEQ_COLUMN, decode_events, events_port


class _Unsettled:
    """Decoding never settles a message."""

    async def ack(self, message: BrokerMessage) -> None:
        raise AssertionError("not settled here")

    async def nak(self, message: BrokerMessage, delay: float) -> None:
        raise AssertionError("not settled here")


def messages(bodies: list[bytes]) -> list[BrokerMessage]:
    return [
        BrokerMessage("raw", body, {}, sequence, _Unsettled())
        for sequence, body in enumerate(bodies, start=100)
    ]


@pytest.fixture
def port(tmp_path: Path) -> OutputPort:
    world = make_world(tmp_path, "nats://127.0.0.1:4222")
    return events_port(world.gateway(), "shop/orders", "order_events")[1]


def one_by_one(
    port: OutputPort, batch: list[BrokerMessage], monkeypatch: pytest.MonkeyPatch
) -> tuple[pa.Table, list[tuple[BrokerMessage, str]]]:
    with monkeypatch.context() as patched:
        patched.setattr(event_batches, "_decode_bulk", lambda *_: None)
        return decode_events(port, batch, 65536)


def test_bulk_decoding_equals_event_by_event(
    port: OutputPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[dict[str, Any]] = [dict(o) for o in ORDERS]
    rows[0]["email"] = 'caf\u00e9 \u2603 \\ " \t'  # escapes and non-ASCII text
    rows[1]["amount"] = 12  # an integer where a number is declared: a number
    rows[2].pop("risk_score")  # an optional field left out
    rows[3]["quantity"] = None  # an optional field null
    rows[4]["extra"] = {"nested": [1, 2]}  # a field the port does not declare: ignored
    batch = messages([json.dumps(r).encode() for r in rows])
    bulk = event_batches._decode_bulk(port, batch)
    assert bulk is not None  # this batch is decoded in one call
    table, bad = one_by_one(port, batch, monkeypatch)
    assert bad == []
    assert bulk.schema == table.schema
    assert bulk.to_pylist() == table.to_pylist()
    assert bulk.column(SEQ_COLUMN).to_pylist() == list(range(100, 100 + len(rows)))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"order_id": "X", "amount": 1, "region": "EU", "quantity": 1.0}', "integer"),
        (b'{"order_id": "X", "amount": "1", "region": "EU"}', "number"),
        (b'{"order_id": "X", "amount": true, "region": "EU"}', "number"),
        (b'{"order_id": 7, "amount": 1, "region": "EU"}', "string"),
        (b'{"order_id": "X", "amount": 1}', "missing required field 'region'"),
        (b'{"order_id": "X", "amount": 1, "region": null}', "missing required field 'region'"),
        (
            b'{"order_id": "X", "amount": 1, "region": "EU", "quantity": 99999999999999999999}',
            "range",
        ),
        (b'{"order_id": "X", "amount": 1e999999, "region": "EU"}', ""),  # inf: decided one by one
        (b'{"order_id": "X", "amount": 1, "region": "EU", "placed_on": "soon"}', "ISO date"),
        (b'{"order_id": "X", "amount": 1, "region": "\\ud800"}', "Unicode"),
        (b'{"order_id": "X", "amount": 1, "region": "EU"} {"order_id": "Y"}', "not JSON"),
        (b"", "not JSON"),
        (b"   ", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"order_id": "X", "amount": 1, "region": "\xff"}', "not JSON"),
    ],
)
def test_a_batch_with_one_bad_event_is_decoded_event_by_event(
    port: OutputPort, monkeypatch: pytest.MonkeyPatch, body: bytes, reason: str
) -> None:
    good = [json.dumps(o).encode() for o in ORDERS[:4]]
    batch = messages([good[0], good[1], body, good[2], good[3]])
    table, bad = decode_events(port, batch, 65536)
    expected_table, expected_bad = one_by_one(port, batch, monkeypatch)
    assert table.to_pylist() == expected_table.to_pylist()
    assert [(m.sequence, r) for m, r in bad] == [(m.sequence, r) for m, r in expected_bad]
    if reason:
        assert [m.sequence for m, _ in bad] == [102]
        assert reason in bad[0][1]
    kept = [o["order_id"] for o in ORDERS[:4]]
    assert [r for r in table.column("order_id").to_pylist() if r != "X"] == kept
    sequences = dict(
        zip(table.column("order_id").to_pylist(), table.column(SEQ_COLUMN).to_pylist(), strict=True)
    )
    assert [sequences[k] for k in kept] == [100, 101, 103, 104]  # each keeps its own position


def test_events_that_only_parse_together_are_not_glued(
    port: OutputPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two halves of one object in two events, and an event holding two objects: as lines
    they would still make one row per event; each is refused on its own."""
    halves = [b'{"order_id": "X", "region": "', b'", "amount": 1}']
    two = b'{"order_id": "Y", "region": "EU", "amount": 1}, {"order_id": "Z"}'
    pretty = json.dumps(ORDERS[5], indent=2).encode()  # newlines between tokens: valid
    batch = messages([*halves, two, json.dumps(ORDERS[0]).encode(), pretty])
    table, bad = decode_events(port, batch, 65536)
    assert [m.sequence for m, _ in bad] == [100, 101, 102]
    assert table.column("order_id").to_pylist() == [ORDERS[0]["order_id"], ORDERS[5]["order_id"]]
    assert table.to_pylist() == one_by_one(port, batch, monkeypatch)[0].to_pylist()


def test_duplicate_keys_are_decoded_as_json_does(
    port: OutputPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b'{"order_id": "X", "amount": 1, "region": "US", "region": "EU"}'
    table, bad = decode_events(port, messages([body]), 65536)
    assert bad == []
    assert table.column("region").to_pylist() == ["EU"]  # the last one, as json.loads
