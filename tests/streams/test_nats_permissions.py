"""The NATS permissions of docs/enforcement.md on a NATS server of this test's own (the Debian
``nats-server``, started with the documented accounts): the relay works with its user's
permissions alone, and a consumer allowed NATS's usual ``_INBOX.>`` sees none of the raw events
the relay pulls (they come to meshgov's own inbox prefix) and cannot answer the relay's
publishes."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from stream_world import FRAUD, HASH_KEY, ORDERS, World, as_json, make_world, relay_for

from meshgov.brokers.nats import INBOX_PREFIX, NatsBroker
from meshgov.governed import GovernedRunner


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(world: World, port: int, store: Path) -> str:
    ns = world.ns
    governed = f"{ns}gov.fraud_detection.{FRAUD.id}.>"
    return f"""
port: {port}
host: 127.0.0.1
jetstream {{ store_dir: "{store}" }}
accounts {{
  MESH {{
    jetstream: enabled
    users = [
      {{user: admin, password: admin}}
      {{user: producer, password: producer,
        permissions: {{publish: ["{world.raw_subject}"], subscribe: ["_INBOX.>"]}}}}
      {{user: meshgov-relay, password: relay,
        permissions: {{publish: ["{ns}gov.>", "{ns}dlq.>", "$JS.API.>", "$JS.ACK.>"],
                      subscribe: ["{world.raw_subject}", "{INBOX_PREFIX}.>"]}}}}
      {{user: consumer, password: consumer,
        permissions: {{publish: ["$JS.API.>", "$JS.ACK.>", "_INBOX.>"],
                      subscribe: ["{governed}", "_INBOX.>"]}}}}
    ]
  }}
}}
"""


@pytest.fixture
def private_nats(tmp_path: Path, world: World) -> Iterator[int]:
    """A nats-server of this test only, with the documented accounts (port returned)."""
    binary = shutil.which("nats-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary is None:
        message = "nats-server is not installed (apt-get install nats-server)"
        if os.environ.get("MESHGOV_REQUIRE_NATS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    config = tmp_path / "nats.conf"
    config.write_text(_config(world, port, tmp_path / "js"), encoding="utf-8")
    server = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the private nats-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path / "mesh", "nats://unused")


def test_raw_events_reach_the_relay_only_and_its_publishes_cannot_be_answered(
    world: World, private_nats: int
) -> None:
    url = f"nats://127.0.0.1:{private_nats}"

    async def scenario() -> None:
        admin = await nats.connect(url, user="admin", password="admin")
        await admin.jetstream().add_stream(name=world.raw_stream, subjects=[world.raw_subject])
        seen: list[tuple[str, bytes]] = []
        snoop = await nats.connect(url, user="consumer", password="consumer")

        async def record(msg: Any) -> None:
            seen.append((msg.subject, msg.data))

        await snoop.subscribe("_INBOX.>", cb=record)
        answered: list[str] = []

        async def answer(msg: Any) -> None:
            # A forged acknowledgement to the relay's reply subject: meshgov's inbox is not in
            # what the consumer may publish, so the server refuses it.
            if msg.reply:
                answered.append(msg.reply)
                await snoop.publish(msg.reply, b'{"stream":"X","seq":1}')

        await snoop.subscribe(f"{world.ns}gov.fraud_detection.{FRAUD.id}.>", cb=answer)
        await snoop.flush()

        broker = await NatsBroker.connect(url.replace("://", "://meshgov-relay:relay@"))
        runner = GovernedRunner(HASH_KEY)
        relay = relay_for(broker, world, runner, batch=10)
        await relay.start()
        producer = await nats.connect(url, user="producer", password="producer")
        rows = ORDERS[:25]
        for payload in as_json(rows):
            await producer.publish(world.raw_subject, payload)
        await producer.flush()

        handled = 0
        deadline = asyncio.get_running_loop().time() + 20
        while handled < len(rows):
            assert asyncio.get_running_loop().time() < deadline, f"relayed {handled}"
            handled += await relay.run_once()
        info = await admin.jetstream().stream_info(relay.governed_stream)
        assert info.state.messages == len(rows)  # every event, each once
        await asyncio.sleep(0.3)
        raw_texts = {row["order_id"] for row in rows}
        leaked = [
            subject
            for subject, data in seen
            if any(order_id.encode() in data for order_id in raw_texts)
        ]
        assert leaked == []
        assert not any(subject.startswith(INBOX_PREFIX) for subject, _ in seen)
        assert answered and all(reply.startswith(f"{INBOX_PREFIX}.") for reply in answered)

        await relay.close()
        await broker.close()
        runner.close()
        for client in (producer, snoop, admin):
            await client.close()

    asyncio.run(scenario())
