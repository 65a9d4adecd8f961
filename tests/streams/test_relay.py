"""The relay against the real NATS JetStream server: governed subjects per subscriber, dead
letters, at-least-once delivery with duplicates dropped, policy failures and changes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from stream_world import (
    ANALYST_EU,
    ANALYST_US,
    FRAUD,
    HASH_KEY,
    ORDERS,
    ROOT,
    DropProxy,
    World,
    as_json,
    connect,
    order,
    publish_raw,
    read_all,
)

from meshgov.errors import BackendUnavailable
from meshgov.governed import GovernedRunner
from meshgov.streams import (
    RAW_SEQ_HEADER,
    REASON_HEADER,
    REVISION_HEADER,
    Relay,
    Subscriber,
)


def keyed(value: str) -> str:
    return hashlib.sha256(HASH_KEY + value.encode()).hexdigest()


async def drain(relay: Relay, expected: int, timeout: float = 15.0) -> int:
    """Run the relay until it handled ``expected`` raw events (or fail after ``timeout``)."""
    handled = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while handled < expected:
        assert asyncio.get_running_loop().time() < deadline, f"handled {handled}/{expected}"
        try:
            handled += await relay.run_once()
        except BackendUnavailable:
            await asyncio.sleep(0.1)
    return handled


def payloads(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]


SUBSCRIBERS = [
    Subscriber(ANALYST_EU, "analytics"),
    Subscriber(ANALYST_US, "analytics"),
    Subscriber(FRAUD, "fraud_detection"),
]


def test_each_subscriber_gets_its_governed_events(world: World) -> None:
    async def scenario() -> None:
        broker = await connect(world)
        gateway = world.gateway()
        runner = GovernedRunner(HASH_KEY)
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "shop/orders",
            "order_events",
            SUBSCRIBERS,
            world.config(),
        )
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS))
        await drain(relay, len(ORDERS))
        by_id = {row["order_id"]: row for row in ORDERS}
        eu_rows = [r for r in ORDERS if r["region"] == "EU"]
        stream = relay.governed_stream

        eu = await read_all(world.url, stream, relay.subject_for(SUBSCRIBERS[0]), len(eu_rows))
        assert len(eu) == len(eu_rows) == 20
        for message, event in zip(eu, payloads(eu), strict=True):
            raw = by_id[event["order_id"]]
            assert event["region"] == "EU"  # the grant's row filter, bound to the principal
            assert event["email"] == keyed(raw["email"])  # hash mask with the mesh key
            assert event["card"] == "*" * 12 + raw["card"][-4:]  # partial mask
            assert "risk_score" not in event  # restricted: hidden, not even a null
            assert event["amount"] == raw["amount"]
            assert event["placed_on"] == raw["placed_on"]
            assert message.headers[REVISION_HEADER] == gateway.policy.revision
            assert message.headers["Nats-Msg-Id"].endswith(":analytics:analyst-eu")
        us = await read_all(world.url, stream, relay.subject_for(SUBSCRIBERS[1]), 20)
        assert {e["region"] for e in payloads(us)} == {"US"}
        fraud = await read_all(world.url, stream, relay.subject_for(SUBSCRIBERS[2]), 40)
        events = payloads(fraud)
        assert sorted(e["email"] for e in events) == sorted(r["email"] for r in ORDERS)
        assert all("risk_score" not in e for e in events)
        # Nothing is left unacknowledged on the raw stream.
        info = await broker._js.consumer_info(world.raw_stream, relay.consumer)
        assert info.num_pending == 0
        assert info.num_ack_pending == 0
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_denied_subscriber_gets_nothing(world: World) -> None:
    async def scenario() -> None:
        broker = await connect(world)
        gateway = world.gateway()
        runner = GovernedRunner(HASH_KEY)
        denied = Subscriber(ANALYST_EU, "fraud_detection")
        seen: list[str | None] = []
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "shop/orders",
            "order_events",
            [denied],
            world.config(),
            on_decision=lambda _s, _g, reason: seen.append(reason),
        )
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS[:5]))
        await drain(relay, 5)
        got = await read_all(world.url, relay.governed_stream, relay.subject_for(denied), 0, 1.0)
        assert got == []
        assert len(seen) == 1
        assert seen[0] is not None
        assert "no grant" in seen[0]
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_malformed_and_oversize_events_are_dead_lettered_never_forwarded(world: World) -> None:
    wrong_type = order(101, "EU") | {"amount": "lots"}
    missing = {k: v for k, v in order(102, "EU").items() if k != "region"}
    bad_date = order(103, "EU") | {"placed_on": "yesterday"}
    float_quantity = order(104, "EU") | {"quantity": 1.5}
    oversize = order(105, "EU") | {"email": "x" * 3000 + "@example.com"}
    bad = [
        (b"not json at all {", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (json.dumps(wrong_type).encode(), "field 'amount': expected a number"),
        (json.dumps(missing).encode(), "missing required field 'region'"),
        (json.dumps(bad_date).encode(), "is not an ISO date"),
        (json.dumps(float_quantity).encode(), "field 'quantity': expected an integer"),
        (json.dumps(oversize).encode(), "exceeds the limit 2048"),
        (b"\xff\xfe\x00garbage", "not JSON"),
    ]
    good = [order(200 + n, "EU") for n in range(4)]
    sequence = [good[0], *[b for b, _ in bad[:4]], good[1], *[b for b, _ in bad[4:]], *good[2:]]
    raw = [item if isinstance(item, bytes) else json.dumps(item).encode() for item in sequence]

    async def scenario() -> None:
        broker = await connect(world)
        gateway = world.gateway()
        runner = GovernedRunner(HASH_KEY)
        subscriber = Subscriber(ANALYST_EU, "analytics")
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "shop/orders",
            "order_events",
            [subscriber],
            world.config(),
        )
        await relay.start()
        await publish_raw(broker, world, raw)
        await drain(relay, len(raw))
        governed = await read_all(
            world.url, relay.governed_stream, f"{world.config().governed_prefix}.>", 4
        )
        assert sorted(e["order_id"] for e in payloads(governed)) == [g["order_id"] for g in good]
        for message in governed:
            assert b"lots" not in message.data
            assert b"xxxx" not in message.data
        dead = await read_all(
            world.url, relay.dead_letter_stream, relay.dead_letter_subject, len(bad)
        )
        assert len(dead) == len(bad)
        reasons = {int(m.headers[RAW_SEQ_HEADER]): m.headers[REASON_HEADER] for m in dead}
        expected = {raw.index(payload) + 1: reason for payload, reason in bad}
        for seq, reason in expected.items():
            assert reason in reasons[seq], (seq, reasons[seq])
        # The dead letter keeps the payload: nothing is lost.
        assert {m.data for m in dead} == {payload for payload, _ in bad}
        info = await broker._js.consumer_info(world.raw_stream, relay.consumer)
        assert info.num_pending == 0
        assert info.num_ack_pending == 0
        assert relay.stats.dead_lettered == len(bad)
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


class FlakyPolicy:
    """The real prepared policy, failing while ``failing`` is set (an engine outage)."""

    def __init__(self, policy: Any) -> None:
        self._policy = policy
        self.failing = True
        self.calls = 0

    def evaluate(self, query: str, document: Any) -> Any:
        self.calls += 1
        if self.failing:
            raise BackendUnavailable("policy engine unreachable")
        return self._policy.evaluate(query, document)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)


def test_policy_engine_failure_forwards_nothing_and_loses_nothing(world: World) -> None:
    async def scenario() -> None:
        broker = await connect(world)
        gateway = world.gateway()
        flaky = FlakyPolicy(gateway.policy)
        gateway.policy = flaky  # type: ignore[assignment]
        runner = GovernedRunner(HASH_KEY)
        subscriber = Subscriber(FRAUD, "fraud_detection")
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "shop/orders",
            "order_events",
            [subscriber],
            world.config(),
        )
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS[:10]))
        for _ in range(3):  # the engine is down: every batch is refused and kept
            assert await relay.run_once() == 0
            await asyncio.sleep(0.3)  # the redelivery delay (retry_delay)
        assert flaky.calls >= 3
        assert relay.stats.retried_batches >= 3
        nothing = await read_all(
            world.url, relay.governed_stream, relay.subject_for(subscriber), 0, 0.5
        )
        assert nothing == []
        flaky.failing = False
        await drain(relay, 10)
        got = await read_all(world.url, relay.governed_stream, relay.subject_for(subscriber), 10)
        assert sorted(e["order_id"] for e in payloads(got)) == [r["order_id"] for r in ORDERS[:10]]
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_a_policy_change_applies_from_the_next_batch(world: World, tmp_path: Path) -> None:
    changed_policies = tmp_path / "policies-v2"
    shutil.copytree(ROOT / "policies", changed_policies)
    access = next(changed_policies.rglob("access.rego"))
    with access.open("a", encoding="utf-8") as handle:
        handle.write("\n# revision 2: the guild changed something\n")

    async def scenario() -> None:
        broker = await connect(world)
        current = {"gateway": world.gateway()}
        before = current["gateway"].policy.revision
        runner = GovernedRunner(HASH_KEY)
        subscriber = Subscriber(ANALYST_EU, "analytics")
        relay = Relay(
            broker,
            lambda: current["gateway"],
            runner,
            "shop/orders",
            "order_events",
            [subscriber],
            world.config(),
        )
        await relay.start()
        await publish_raw(broker, world, as_json([order(1, "EU"), order(2, "US")]))
        await drain(relay, 2)
        # The guild's new revision, and the owners now grant analysts US rows only.
        current["gateway"] = world.gateway("region = 'US'", changed_policies)
        after = current["gateway"].policy.revision
        assert after != before
        await publish_raw(broker, world, as_json([order(3, "EU"), order(4, "US")]))
        await drain(relay, 2)
        got = await read_all(world.url, relay.governed_stream, relay.subject_for(subscriber), 2)
        seen = [(json.loads(m.data)["order_id"], m.headers[REVISION_HEADER]) for m in got]
        assert seen == [("O00000001", before), ("O00000004", after)]
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_redelivered_events_are_republished_once(world: World) -> None:
    """An acknowledgement lost after the publishes: the raw events come again, their governed
    copies carry the same message ids, and JetStream drops the duplicates."""

    async def scenario() -> None:
        broker = await connect(world)
        gateway = world.gateway()
        runner = GovernedRunner(HASH_KEY)
        subscriber = Subscriber(FRAUD, "fraud_detection")
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "shop/orders",
            "order_events",
            [subscriber],
            world.config(),
        )
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS[:6]))
        ack_many = relay._subscription.ack_many

        async def losing_acks(messages: list[Any]) -> None:
            raise BackendUnavailable("ack lost")

        relay._subscription.ack_many = losing_acks
        await drain(relay, 6)
        relay._subscription.ack_many = ack_many
        await drain(relay, 6)  # redelivered after ack_wait
        assert relay.stats.duplicates == 6
        got = await read_all(world.url, relay.governed_stream, relay.subject_for(subscriber), 6)
        assert len(got) == 6
        assert len({m.headers["Nats-Msg-Id"] for m in got}) == 6
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_broker_connection_lost_mid_stream_loses_nothing(world: World) -> None:
    """The relay talks to NATS through a proxy that cuts every connection mid-stream (what a
    broker restart looks like to a client): every event still arrives, once."""
    from urllib.parse import urlparse

    from meshgov.brokers.nats import NatsBroker

    target = urlparse(world.url)
    total = 300

    async def scenario() -> None:
        proxy = DropProxy(target.hostname or "127.0.0.1", target.port or 4222)
        await proxy.start()
        direct = await connect(world)
        broker = await NatsBroker.connect(f"nats://127.0.0.1:{proxy.port}", publish_timeout=2.0)
        gateway = world.gateway()
        runner = GovernedRunner(HASH_KEY)
        subscriber = Subscriber(FRAUD, "fraud_detection")
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "shop/orders",
            "order_events",
            [subscriber],
            world.config(batch=20),
        )
        await relay.start()
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        rows = [order(n) for n in range(1, total + 1)]
        await publish_raw(direct, world, as_json(rows[:100]))
        await asyncio.sleep(0.3)
        await proxy.drop()
        await publish_raw(direct, world, as_json(rows[100:200]))
        await asyncio.sleep(0.2)
        await proxy.drop()
        await publish_raw(direct, world, as_json(rows[200:]))
        got: list[Any] = []
        for _ in range(60):
            got = await read_all(
                world.url, relay.governed_stream, relay.subject_for(subscriber), total, 1.0
            )
            if len(got) >= total:
                break
        stop.set()
        await asyncio.wait_for(task, 10)
        assert proxy.drops == 2
        ids = [json.loads(m.data)["order_id"] for m in got]
        assert sorted(ids) == sorted(r["order_id"] for r in rows)  # all, each exactly once
        await relay.close()
        await broker.close()
        await direct.close()
        await proxy.close()
        runner.close()

    asyncio.run(scenario())


def test_publishes_are_acknowledged_duplicates_flagged_and_unstored_subjects_fail(
    world: World,
) -> None:
    """The broker's own publish path: a receipt per message once JetStream persisted it, a
    republished message id flagged as a duplicate, and a subject no stream captures refused
    (never reported as published)."""
    from meshgov.brokers.base import BrokerError, OutgoingMessage

    async def scenario() -> None:
        broker = await connect(world)
        try:
            batch = [
                OutgoingMessage(world.raw_subject, b'{"n": %d}' % n, msg_id=f"m{n}")
                for n in range(500)
            ]
            receipts = await broker.publish_many(batch)
            assert [r.duplicate for r in receipts] == [False] * 500
            assert len({r.sequence for r in receipts}) == 500
            again = await broker.publish_many(
                [*batch[:3], OutgoingMessage(world.raw_subject, b"{}", msg_id="fresh")]
            )
            assert [r.duplicate for r in again] == [True, True, True, False]
            with pytest.raises(BrokerError):
                await broker.publish_many(
                    [OutgoingMessage(f"{world.ns}.nowhere", b"{}", msg_id="x")]
                )
        finally:
            await broker.close()

    asyncio.run(scenario())
