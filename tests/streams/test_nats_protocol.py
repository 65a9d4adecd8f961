"""``BulkParser`` (the relay's reader of what the NATS server sends) against nats-py's own parser:
the same messages, whatever the reads' boundaries; other subscriptions and control lines go to
nats-py's handlers; and the publish acknowledgement the real server writes is read on the fast
path with the values the JSON parser gives."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import nats
import pytest
from nats.protocol.parser import Parser

from meshgov.brokers.nats import _PUB_ACK, NatsBroker
from meshgov.brokers.nats_protocol import BulkParser, Delivery, header_lines


class RecordingClient:
    """What a parser calls on nats-py's client, recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.stats = {"in_msgs": 0, "in_bytes": 0}

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self.calls.append(("msg", sid, subject, reply, data, headers))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_err(self, text: str) -> None:
        self.calls.append(("err", text))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.calls.append(("info", info))


def wire(seed: int) -> bytes:
    """A server's output: deliveries (MSG and HMSG, with and without reply), payloads holding
    CRLF, empty and 70 kB payloads, and PING/PONG/+OK/INFO/-ERR between them; odd seeds give
    long runs of sid 7 (what the bulk split takes in one pass)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    sids = [7] * 30 + [1] if seed % 2 else [1, 2, 7]
    for n in range(300):
        sid = rng.choice(sids)
        payload = rng.choice([b"", b'{"n": %d}' % n, b"a\r\nMSG x 1 3\r\nabc\r\nb", b"z" * 70_000])
        reply = rng.choice([b"", b"$JS.ACK.S.C.1.%d.%d.1700000000000000000.0" % (n, n)])
        reply_part = reply + b" " if reply else b""
        if rng.random() < 0.4:
            block = b"NATS/1.0\r\nNats-Msg-Id: m%d\r\nKey: v\r\n\r\n" % n
            line = b"HMSG s.%d %d %s%d %d\r\n" % (
                n,
                sid,
                reply_part,
                len(block),
                len(block) + len(payload),
            )
            out.append(line + block + payload + b"\r\n")
        else:
            out.append(
                b"MSG s.%d %d %s%d\r\n" % (n, sid, reply_part, len(payload)) + payload + b"\r\n"
            )
        if rng.random() < 0.1:
            out.append(
                rng.choice(
                    [
                        b"PING\r\n",
                        b"PONG\r\n",
                        b"+OK\r\n",
                        b'INFO {"server_id":"x","max_payload":1048576}\r\n',
                        b"-ERR 'Permissions Violation for Publish to x'\r\n",
                    ]
                )
            )
    return b"".join(out)


async def feed(parser: Parser, data: bytes, chunks: list[int]) -> None:
    position = 0
    for size in chunks:
        await parser.parse(data[position : position + size])
        position += size
    await parser.parse(data[position:])


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_bulk_parser_gives_what_nats_py_gives_whatever_the_read_boundaries(seed: int) -> None:
    data = wire(seed)
    rng = random.Random(seed)
    chunks = [rng.choice([1, 2, 7, 100, 4096, 32768]) for _ in range(len(data) // 500)]

    async def scenario() -> None:
        expected = RecordingClient()
        await feed(Parser(expected), data, chunks)

        actual = RecordingClient()
        parser = BulkParser(actual)  # type: ignore[arg-type]
        taken: list[Delivery] = []
        parser.handlers[7] = taken.extend
        await feed(parser, data, chunks)

        # sid 7 is taken in bulk, in order; everything else went to nats-py's handlers as its
        # own parser sends it.
        assert [c for c in expected.calls if c[:2] != ("msg", 7)] == actual.calls
        assert [c[2:] for c in expected.calls if c[:2] == ("msg", 7)] == [
            (subject, reply, payload, headers) for subject, reply, payload, headers in taken
        ]
        assert actual.stats["in_msgs"] == len(taken)
        assert not parser.buf

    asyncio.run(scenario())


def test_a_handler_that_fails_does_not_stop_the_reader() -> None:
    async def scenario() -> None:
        client = RecordingClient()
        parser = BulkParser(client)  # type: ignore[arg-type]

        def broken(_: list[Delivery]) -> None:
            raise RuntimeError("handler bug")

        parser.handlers[7] = broken
        await parser.parse(b"MSG a 7 2\r\nhi\r\nPING\r\nMSG b 1 2\r\nho\r\n")
        assert client.calls == [("ping",), ("msg", 1, b"b", b"", b"ho", None)]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "line",
    [
        b"MSG a 7\r\n",
        b"MSG a x 3\r\nabc\r\n",
        b"HMSG a 7 9 3\r\nabc\r\n",
        b"BOGUS\r\n",
        b"MSG a 7 -15\r\nabc\r\n",  # a negative size looped for ever (the parser went back)
        b"MSG a 7 r -16\r\nabc\r\n",
    ],
)
def test_malformed_protocol_is_a_protocol_error(line: bytes) -> None:
    from nats.errors import ProtocolError

    async def scenario() -> None:
        parser = BulkParser(RecordingClient())  # type: ignore[arg-type]
        with pytest.raises(ProtocolError):
            await parser.parse(line)

    asyncio.run(scenario())


def test_status_headers_are_read_as_nats_py_names_them() -> None:
    assert header_lines(b"NATS/1.0 404 No Messages\r\n\r\n") == {
        "Status": "404",
        "Description": "No Messages",
    }
    assert header_lines(b"NATS/1.0\r\nA: 1\r\nA: 2\r\nB:x\r\n\r\n") == {"A": "2", "B": "x"}


def test_the_servers_publish_acknowledgements_take_the_fast_path(nats_url: str) -> None:
    """The PubAck this nats-server writes (first and duplicate) is matched by ``_PUB_ACK`` with
    the values JSON gives, and a broker publishing through it reads them."""
    name = f"PROTO_{uuid.uuid4().hex[:8].upper()}"
    subject = name.lower()

    async def scenario() -> None:
        client = await nats.connect(nats_url)
        js = client.jetstream()
        await js.add_stream(name=name, subjects=[subject])
        try:
            for _ in range(2):
                reply = await client.request(subject, b"x", headers={"Nats-Msg-Id": "one"})
                ack = json.loads(reply.data)
                match = _PUB_ACK.fullmatch(reply.data)
                assert match is not None, reply.data
                assert int(match[1]) == ack["seq"]
                assert (match[2] is not None) == bool(ack.get("duplicate"))
            broker = await NatsBroker.connect(nats_url)
            from meshgov.brokers.base import OutgoingMessage

            receipts = await broker.publish_many(
                [OutgoingMessage(subject, b"y", msg_id=m) for m in ("one", "two")]
            )
            assert [(r.sequence, r.duplicate) for r in receipts] == [(1, True), (2, False)]
            await broker.close()
        finally:
            await js.delete_stream(name)
            await client.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("reply", "headers", "outcome"),
    [
        (b"thanks", None, "pending"),  # a subscriber answering the reply subject: not a verdict
        (b"", None, "pending"),
        (b'{"seq": "4"}', None, "pending"),
        (b'{"stream":"S", "seq":4}', None, "done"),
        (b'{"stream":"S","seq":4,"domain":"hub","duplicate":true}', None, "done"),
        (b'{"error":{"code":503,"description":"no stream"}}', None, "failed"),
        (b"", b"NATS/1.0 503\r\n\r\n", "failed"),
    ],
)
def test_only_jetstreams_answer_settles_a_publish(
    reply: bytes, headers: bytes | None, outcome: str
) -> None:
    """What comes back on a publish's reply subject: JetStream's acknowledgement confirms it,
    its refusal (an error, a 503 status) fails the batch, anything else is ignored."""
    from meshgov.brokers.nats import _Batch

    async def scenario() -> str:
        broker = NatsBroker.__new__(NatsBroker)
        batch = _Batch(1, asyncio.get_running_loop().create_future())
        broker._batches = {"7": batch}
        broker._settle("_MESHGOV_INBOX.abc.7.0", reply, headers)
        if not batch.future.done():
            return "pending"
        return "failed" if batch.future.exception() else "done"

    assert asyncio.run(scenario()) == outcome
