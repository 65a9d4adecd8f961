"""How the relay settles a batch, against the real NATS JetStream server: a publish refused
mid-batch leaves the whole batch unacknowledged (and it comes again), a delivery lost on its way
is not acknowledged by the events after it, and a republish is recognised by its message id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from nats.js import api
from stream_world import (
    FRAUD,
    HASH_KEY,
    ORDERS,
    World,
    as_json,
    connect,
    publish_raw,
    read_all,
    relay_for,
)

from meshgov.brokers.base import BrokerError
from meshgov.brokers.nats import NatsBroker
from meshgov.governed import GovernedRunner
from meshgov.streams import Relay, Subscriber


async def consumer_state(
    broker: NatsBroker, relay: Relay, expected: tuple[int, int]
) -> tuple[int, int]:
    """(acknowledged floor in the raw stream, events delivered and not acknowledged), read
    until it is ``expected`` or 3 s passed (the server applies acknowledgements on its own
    time)."""
    deadline = asyncio.get_running_loop().time() + 3
    while True:
        info = await broker._js.consumer_info(relay.raw_stream, relay.consumer)
        state = (info.ack_floor.stream_seq or 0, info.num_ack_pending or 0)
        if state == expected or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.05)


def test_a_publish_refused_mid_batch_leaves_the_batch_unacknowledged(world: World) -> None:
    """The governed stream takes 3 messages and refuses the rest: the batch of 6 fails, none of
    its raw events is acknowledged; a new relay (the first one gone) gets all 6 again once the
    stream accepts them, the 3 already stored are recognised as duplicates by their message id,
    and each governed event is stored once."""

    async def scenario() -> None:
        broker = await connect(world)
        runner = GovernedRunner(HASH_KEY)
        first = relay_for(broker, world, runner)
        subjects = [f"{first.config.governed_prefix}.*.*.{first._path}"]
        await broker._js.add_stream(
            name=first.governed_stream,
            subjects=subjects,
            max_msgs=3,
            discard=api.DiscardPolicy.NEW,
            duplicate_window=120.0,
        )
        await first.start()
        await publish_raw(broker, world, as_json(ORDERS[:6]))
        with pytest.raises(BrokerError):
            await first.run_once()
        assert await consumer_state(broker, first, (0, 6)) == (0, 6)
        assert first.stats.events == 0
        await first.close()

        await broker._js.update_stream(
            api.StreamConfig(
                name=first.governed_stream,
                subjects=subjects,
                max_msgs=-1,
                discard=api.DiscardPolicy.NEW,
                duplicate_window=120.0,
            )
        )
        second = relay_for(broker, world, runner)
        await second.start()
        handled = 0
        deadline = asyncio.get_running_loop().time() + 15
        while handled < 6:  # redelivered after ack_wait (1 s here)
            assert asyncio.get_running_loop().time() < deadline, f"handled {handled}/6"
            handled += await second.run_once()
        assert second.stats.duplicates == 3
        assert await consumer_state(broker, second, (6, 0)) == (6, 0)
        got = await read_all(
            world.url, second.governed_stream, second.subject_for(second.subscribers[0]), 6
        )
        ids = sorted(json.loads(m.data)["order_id"] for m in got)
        assert ids == sorted(o["order_id"] for o in ORDERS[:6])
        await second.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_pipelined_relay_retries_a_refused_batch_before_later_ones_and_loses_nothing(
    world: World,
) -> None:
    """``Relay.run`` writes a batch before the previous one is confirmed. The governed stream
    takes 5 messages, then refuses: the batch in flight fails, it and every later batch stay
    unacknowledged (the raw ack floor stays below them) and nothing is stored twice; once the
    stream accepts again, every event arrives exactly once and all raw events are settled."""

    async def scenario() -> None:
        broker = await connect(world)
        runner = GovernedRunner(HASH_KEY)
        relay = relay_for(broker, world, runner, batch=4)
        subjects = [f"{relay.config.governed_prefix}.*.*.{relay._path}"]

        def governed_config(limit: int) -> api.StreamConfig:
            return api.StreamConfig(
                name=relay.governed_stream,
                subjects=subjects,
                max_msgs=limit,
                discard=api.DiscardPolicy.NEW,
                duplicate_window=120.0,
            )

        await broker._js.add_stream(governed_config(5))
        await relay.start()
        orders = ORDERS[:16]
        await publish_raw(broker, world, as_json(orders))
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(1.0)
        floor, _ = await consumer_state(broker, relay, (4, 12))
        assert floor <= 4  # nothing after the refused batch is acknowledged
        assert (await broker._js.stream_info(relay.governed_stream)).state.messages == 5
        assert relay.stats.retried_batches >= 1

        await broker._js.update_stream(governed_config(-1))
        subject = relay.subject_for(relay.subscribers[0])
        got: list[Any] = []
        for _ in range(40):
            got = await read_all(world.url, relay.governed_stream, subject, len(orders), 0.5)
            if len(got) >= len(orders):
                break
        stop.set()
        await asyncio.wait_for(task, 10)
        ids = [json.loads(m.data)["order_id"] for m in got]
        assert sorted(ids) == sorted(o["order_id"] for o in orders)  # all, each exactly once
        assert await consumer_state(broker, relay, (len(orders), 0)) == (len(orders), 0)
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_a_delivery_lost_on_its_way_is_not_acknowledged_by_later_events(world: World) -> None:
    """The first event of the batch is delivered by the server but never reaches the relay
    (what a cut connection does to messages in flight): acknowledging the five after it must
    not acknowledge it, so the server delivers it again and it is relayed."""

    async def scenario() -> None:
        broker = await connect(world)
        runner = GovernedRunner(HASH_KEY)
        relay = relay_for(broker, world, runner)
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS[:6]))
        fetch = relay._subscription.fetch
        lost: list[int] = []

        async def losing_first(batch: int, timeout: float) -> list[Any]:
            messages = await fetch(batch, timeout)
            if messages and not lost:
                lost.append(messages[0].sequence)
                return messages[1:]
            return messages

        relay._subscription.fetch = losing_first
        handled = 0
        deadline = asyncio.get_running_loop().time() + 15
        while handled < 6:
            assert asyncio.get_running_loop().time() < deadline, f"handled {handled}/6"
            handled += await relay.run_once()
        assert lost == [1]
        got = await read_all(
            world.url, relay.governed_stream, relay.subject_for(relay.subscribers[0]), 6
        )
        assert sorted(json.loads(m.data)["order_id"] for m in got) == sorted(
            o["order_id"] for o in ORDERS[:6]
        )
        assert await consumer_state(broker, relay, (6, 0)) == (6, 0)
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_pull_fetch_keeps_late_deliveries_and_acks_each_in_one_write(world: World) -> None:
    """The broker's own pull path: a full batch asks for the next one ahead; deliveries of that
    request are returned by the next fetch, in stream order (events with headers and without
    alike), none lost or repeated; ``ack_many`` acknowledges exactly the events it is given."""

    async def scenario() -> None:
        broker = await connect(world)
        try:
            for number in range(1, 26):
                headers = {"Trace": f"t{number}"} if number % 3 == 0 else None
                await broker._js.publish(world.raw_subject, b"{}", headers=headers)
            sub = await broker.durable(world.raw_stream, world.raw_subject, f"{world.ns}_pull")
            seen: list[int] = []
            first = await sub.fetch(10, 0.2)
            assert [m.sequence for m in first] == list(range(1, 11))
            seen += [m.sequence for m in first]
            await sub.ack_many(first[:5])
            while len(seen) < 25:
                batch = await sub.fetch(10, 0.2)
                assert batch, f"got {len(seen)}/25"
                seen += [m.sequence for m in batch]
            assert seen == list(range(1, 26))
            assert [dict(m.headers) for m in first[:3]] == [{}, {}, {"Trace": "t3"}]
            assert await sub.fetch(10, 0.1) == []
            info = await broker._js.consumer_info(world.raw_stream, f"{world.ns}_pull")
            assert (info.ack_floor.stream_seq, info.num_ack_pending) == (5, 20)
            await sub.close()
        finally:
            await broker.close()

    asyncio.run(scenario())


async def _after_an_intruder(
    world: World, name: str, intrude: Callable[[str, Any], Awaitable[None]]
) -> tuple[list[Any], Any]:
    """Six raw events; a fetch of 3 (the next 3 are asked for ahead and queue up), then
    ``intrude`` publishes on the consumer's inbox from another connection; returns the next
    fetch and the subscription (open, with its broker)."""
    import nats

    broker = await connect(world)
    other = await nats.connect(world.url)
    try:
        for _ in range(6):
            await broker._js.publish(world.raw_subject, b"{}")
        sub = await broker.durable(
            world.raw_stream, world.raw_subject, f"{world.ns}_{name}", ack_wait=30.0
        )
        first = await sub.fetch(3, 0.2)  # a full batch: the next 3 are asked for ahead
        assert [m.sequence for m in first] == [1, 2, 3]
        await asyncio.sleep(0.2)  # the 3 asked ahead are queued now
        await intrude(sub._inbox, other)
        await other.flush()
        await asyncio.sleep(0.2)
        return await sub.fetch(10, 0.2), sub
    finally:
        await other.close()


def test_a_stray_message_on_the_pull_inbox_does_not_drop_the_deliveries_around_it(
    world: World,
) -> None:
    """Something that is not a JetStream delivery reaches the consumer's inbox (a message with
    a reply subject that is not an acknowledgement subject) after deliveries were queued: the
    fetch returns those deliveries in order and skips the stray message; it does not drop
    them (they would come again only after ``ack_wait``, behind later events)."""

    async def intrude(inbox: str, other: Any) -> None:
        await other.publish(f"{inbox}.stray", b"{}", reply="not.an.ack.subject")

    async def scenario() -> None:
        second, sub = await _after_an_intruder(world, "stray", intrude)
        assert [m.sequence for m in second] == [4, 5, 6]
        await sub.close()
        await sub._broker.close()

    asyncio.run(scenario())


def test_a_409_status_after_deliveries_keeps_them_and_is_reported_next(world: World) -> None:
    """A 409 status (the consumer deleted, a leadership change) reaching the inbox after some
    deliveries were queued: the fetch returns the deliveries, and the following fetch reports
    the 409 (``BrokerError``)."""

    async def intrude(inbox: str, other: Any) -> None:
        status = {"Status": "409", "Description": "Consumer Deleted"}
        await other.publish(f"{inbox}.0", b"", headers=status)

    async def scenario() -> None:
        second, sub = await _after_an_intruder(world, "409", intrude)
        assert [m.sequence for m in second] == [4, 5, 6]
        with pytest.raises(BrokerError):
            await sub.fetch(10, 0.2)
        await sub.close()
        await sub._broker.close()

    asyncio.run(scenario())


def test_a_batch_whose_confirmation_is_cancelled_is_retried_first(world: World) -> None:
    """The task awaiting a written batch's receipts is cancelled (a relay task cancelled, a
    timeout around it): the batch is neither acknowledged nor forgotten; the next step
    publishes it again before anything newer and acknowledges it."""

    async def scenario() -> None:
        broker = await connect(world)
        runner = GovernedRunner(HASH_KEY)
        relay = relay_for(broker, world, runner, ack_wait=30.0)
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS[:6]))
        assert await relay._step(pipelined=True) == 6
        assert relay._inflight is not None
        messages, pending = relay._inflight

        class SlowPersist:  # the broker takes its time to persist the batch
            async def receipts(self) -> Any:
                await asyncio.sleep(0.5)
                return await pending.receipts()

        relay._inflight = (messages, SlowPersist())
        confirming = asyncio.create_task(relay._confirm_inflight())
        await asyncio.sleep(0.05)
        confirming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await confirming
        await publish_raw(broker, world, as_json(ORDERS[6:8]))
        assert await relay.run_once() == 6  # the cancelled batch, before the 2 newer events
        assert relay.stats.duplicates == 6  # persisted the first time: stored once
        assert await consumer_state(broker, relay, (6, 0)) == (6, 0)
        assert await relay.run_once() == 2
        assert await consumer_state(broker, relay, (8, 0)) == (8, 0)
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_governing_longer_than_the_publish_timeout_does_not_time_out_persisted_batches(
    world: World,
) -> None:
    """Governing a batch (a slow policy engine here) holds the event loop longer than the
    broker's publish timeout while the previous batch's acknowledgements wait unread in the
    socket: that time is not the broker's, so the previous batch is still confirmed. (Once a
    batch had been refused, its retry was timed out so on every attempt, for ever: the next
    batch, already fetched, was governed before the retry's acknowledgements were read.)"""

    async def scenario() -> None:
        import time

        broker = await NatsBroker.connect(world.url, publish_timeout=0.3)
        await broker.ensure_stream(world.raw_stream, [world.raw_subject])
        runner = GovernedRunner(HASH_KEY)
        gateway = world.gateway()

        def slow_gateway() -> Any:
            time.sleep(0.4)  # a policy engine that takes longer than the publish timeout
            return gateway

        relay = Relay(
            broker,
            slow_gateway,
            runner,
            "shop/orders",
            "order_events",
            [Subscriber(FRAUD, "fraud_detection")],
            world.config(batch=4, ack_wait=30.0, retry_delay=0.1),
        )
        subjects = [f"{relay.config.governed_prefix}.*.*.{relay._path}"]

        def governed_config(limit: int) -> api.StreamConfig:
            return api.StreamConfig(
                name=relay.governed_stream,
                subjects=subjects,
                max_msgs=limit,
                discard=api.DiscardPolicy.NEW,
                duplicate_window=120.0,
            )

        await broker._js.add_stream(governed_config(4))  # the second batch is refused
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS[:16]))
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while relay.stats.retried_batches == 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert relay.stats.retried_batches >= 1
        await broker._js.update_stream(governed_config(-1))
        deadline = loop.time() + 12
        while relay.stats.events < 16 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert relay.stats.events == 16, relay.stats
        assert await consumer_state(broker, relay, (16, 0)) == (16, 0)
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())


def test_a_governed_event_over_the_brokers_limit_is_dead_lettered_and_the_stream_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One event's governed form is larger than the broker carries (here a limit lowered to
    600 bytes of payload): it goes to the owners' dead letters with the reason, the other events
    are relayed, nothing is retried for ever."""
    from meshgov import streams

    monkeypatch.setattr(NatsBroker, "max_payload", property(lambda _: streams._HEADER_ROOM + 600))

    async def scenario() -> None:
        broker = await connect(world)
        runner = GovernedRunner(HASH_KEY)
        relay = relay_for(broker, world, runner)
        await relay.start()
        rows = [dict(o) for o in ORDERS[:6]]
        rows[2]["order_id"] = "X" * 900
        await publish_raw(broker, world, as_json(rows))
        handled = 0
        deadline = asyncio.get_running_loop().time() + 15
        while handled < 6:
            assert asyncio.get_running_loop().time() < deadline, f"handled {handled}/6"
            handled += await relay.run_once()
        assert relay.stats.retried_batches == 0
        got = await read_all(
            world.url, relay.governed_stream, relay.subject_for(relay.subscribers[0]), 5
        )
        assert sorted(json.loads(m.data)["order_id"] for m in got) == sorted(
            r["order_id"] for r in rows if r is not rows[2]
        )
        dead = await read_all(world.url, relay.dead_letter_stream, relay.dead_letter_subject, 1)
        assert len(dead) == 1
        assert "over the broker's limit" in dead[0].headers["Meshgov-Reason"]
        assert dead[0].headers["Meshgov-Raw-Sequence"] == "3"
        assert await consumer_state(broker, relay, (6, 0)) == (6, 0)
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())
