"""An old durable relay consumer made with AckPolicy.ALL is recreated (explicit acks) from its
ack floor: the events it had not settled are relayed, none is lost."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from stream_world import (
    HASH_KEY,
    ORDERS,
    World,
    as_json,
    connect,
    publish_raw,
    read_all,
    relay_for,
)
from test_relay import drain

from meshgov.governed import GovernedRunner


def test_an_ack_all_consumer_is_recreated_from_its_ack_floor(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        broker = await connect(world)
        runner = GovernedRunner(HASH_KEY)
        relay = relay_for(broker, world, runner)  # the fraud analyst: sees every event
        subscriber = relay.subscribers[0]
        await publish_raw(broker, world, as_json(ORDERS[:10]))
        # The old consumer: policy all, long ack wait; 10 events delivered, the 4th acknowledged
        # (so the first 4 are settled), the other 6 delivered but never acknowledged.
        old = await broker.durable(
            world.raw_stream, world.raw_subject, relay.consumer, ack_wait=60.0, ack_all=True
        )
        delivered = await old.fetch(10, timeout=5.0)
        assert len(delivered) == 10
        await old.ack_many([delivered[3]])
        await old.close()

        with caplog.at_level(logging.WARNING, logger="meshgov.brokers.nats"):
            await relay.start()
        info = await broker._js.consumer_info(world.raw_stream, relay.consumer)
        assert info.config.ack_policy == "explicit"
        logged = [r.getMessage() for r in caplog.records]
        assert any("policy all" in m and "ack floor 4" in m for m in logged), logged
        await drain(relay, 6, timeout=10.0)  # the old one would hold them for its 60 s
        got = await read_all(world.url, relay.governed_stream, relay.subject_for(subscriber), 6)
        ids = sorted(json.loads(m.data)["order_id"] for m in got)
        assert ids == sorted(row["order_id"] for row in ORDERS[4:10])
        await relay.close()
        await broker.close()
        runner.close()

    asyncio.run(scenario())
