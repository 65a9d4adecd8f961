"""Bringing an existing durable NATS consumer to the relay's acknowledgement policy.

A durable consumer keeps its configuration: one made with ``AckPolicy.ALL`` (an acknowledgement
also settles every earlier event, so an event lost on its way can be settled by a later one) stays
so until it is recreated. Recreating it plain would start over (or at the newest event); instead
it starts right after the consumer's ack floor, the last stream sequence that it had settled: what
was acknowledged is not delivered again, nothing unacknowledged is skipped (at-least-once).
"""

from __future__ import annotations

import dataclasses
import logging

from nats.js import JetStreamContext, api

log = logging.getLogger("meshgov.brokers.nats")


async def recreate_from_ack_floor(
    js: JetStreamContext, stream: str, info: api.ConsumerInfo, config: api.ConsumerConfig
) -> None:
    """Delete the durable consumer of ``info`` and make it anew with ``config``, delivering from
    the stream sequence after its ack floor."""
    floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
    name = config.durable_name or info.name
    await js.delete_consumer(stream, name)
    await js.add_consumer(
        stream,
        dataclasses.replace(
            config,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=floor + 1,
        ),
    )
    log.warning(
        "NATS consumer %s of %s acknowledged with policy %s: recreated with policy %s, "
        "delivering from stream sequence %d (after its ack floor %d)",
        name,
        stream,
        api.AckPolicy(info.config.ack_policy).value,
        api.AckPolicy(config.ack_policy).value,
        floor + 1,
        floor,
    )
