"""A small mesh with one product served three ways (table + snapshot, events), uniquely named.

Each test gets its own subjects, stream names and relay prefixes (``World.ns``) on the shared
NATS server, and deletes every stream it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from meshgov.brokers.nats import NatsBroker
from meshgov.catalog import load_catalog
from meshgov.core.principal import Principal
from meshgov.gateway import Gateway
from meshgov.governed import GovernedRunner
from meshgov.policy_backends import load_bundle_dir
from meshgov.streams import Relay, RelayConfig, Subscriber

ROOT = Path(__file__).resolve().parents[2]
HASH_KEY = b"test-mesh-key"

ANALYST_EU = Principal(
    id="analyst-eu", groups=["analysts"], domain="analytics", attributes={"region": "EU"}
)
ANALYST_US = Principal(
    id="analyst-us", groups=["analysts"], domain="analytics", attributes={"region": "US"}
)
FRAUD = Principal(
    id="fraud-eu",
    groups=["fraud"],
    domain="payments",
    attributes={"region": "EU", "clearances": ["pii"]},
)

COLUMNS = """
        - {name: order_id, type: string, required: true, classification: internal}
        - {name: email, type: string, classification: confidential, pii: true,
           piiCategory: email, mask: hash}
        - {name: card, type: string, classification: restricted, pii: true, piiCategory: card,
           mask: partial}
        - {name: amount, type: number, required: true, classification: internal}
        - {name: quantity, type: integer, classification: internal}
        - {name: region, type: string, required: true, classification: internal}
        - {name: placed_on, type: date, classification: internal}
        - {name: risk_score, type: integer, classification: restricted}
"""


def manifest(ns: str, row_filter: str = "region = {principal.region}") -> str:
    return f"""apiVersion: meshgov/v1
kind: DataProduct
metadata:
  domain: shop
  name: orders
  version: 1.2.0
  owner: shop@acme.example
  description: Orders, as a table, a snapshot and events.
  status: active
spec:
  outputPorts:
    - name: orders
      kind: table
      table: shop.orders
      data: data/orders.parquet
      retention: 1y
      columns:{COLUMNS}
    - name: order_events
      kind: events
      stream: {{subject: {ns}.shop.orders, name: {ns.upper()}_RAW, maxEventBytes: 2048}}
      retention: 30d
      columns:{COLUMNS}
  access:
    grants:
      - to: {{groups: [analysts]}}
        purposes: [analytics]
        rowFilter: "{row_filter}"
      - to: {{groups: [fraud]}}
        purposes: [fraud_detection]
"""


def order(number: int, region: str | None = None) -> dict[str, Any]:
    return {
        "order_id": f"O{number:08d}",
        "email": f"buyer{number}@example.com",
        "card": f"4111111111{number:06d}",
        "amount": round(10 + number * 1.25, 2),
        "quantity": number % 5 + 1,
        "region": region or ("EU" if number % 2 else "US"),
        "placed_on": f"2026-01-{number % 28 + 1:02d}",
        "risk_score": number * 7 % 100,
    }


ORDERS = [order(n) for n in range(1, 41)]


@dataclass
class World:
    root: Path
    ns: str
    url: str
    streams: list[str] = field(default_factory=list)

    @property
    def raw_subject(self) -> str:
        return f"{self.ns}.shop.orders"

    @property
    def raw_stream(self) -> str:
        return f"{self.ns.upper()}_RAW"

    def config(self, **overrides: Any) -> RelayConfig:
        values: dict[str, Any] = {
            "governed_prefix": f"{self.ns}gov",
            "dead_letter_prefix": f"{self.ns}dlq",
            "stream_prefix": self.ns.upper(),
            "batch": 100,
            "fetch_timeout": 0.05,
            "retry_delay": 0.2,
            "ack_wait": 1.0,
        }
        values.update(overrides)
        return RelayConfig(**values)

    def gateway(self, row_filter: str | None = None, policies: Path | None = None) -> Gateway:
        if row_filter is not None:
            (self.root / "orders.yaml").write_text(manifest(self.ns, row_filter), encoding="utf-8")
        return Gateway(load_catalog(self.root), load_bundle_dir(policies or ROOT / "policies"))


def make_world(tmp: Path, url: str) -> World:
    ns = "t" + uuid.uuid4().hex[:10]
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    (tmp / "orders.yaml").write_text(manifest(ns), encoding="utf-8")
    table = pa.Table.from_pylist(ORDERS)
    table = table.set_column(
        table.column_names.index("placed_on"),
        "placed_on",
        pa.array([row["placed_on"] for row in ORDERS]).cast(pa.date32()),
    )
    pq.write_table(table, tmp / "data" / "orders.parquet")
    return World(tmp, ns, url)


async def connect(world: World) -> NatsBroker:
    broker = await NatsBroker.connect(world.url, publish_timeout=3.0)
    await broker.ensure_stream(world.raw_stream, [world.raw_subject])
    world.streams.append(world.raw_stream)
    return broker


async def publish_raw(broker: NatsBroker, world: World, payloads: list[bytes]) -> None:
    js = broker._js
    for payload in payloads:
        await js.publish(world.raw_subject, payload)


def as_json(rows: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(row).encode() for row in rows]


async def read_all(
    url: str, stream: str, subject: str, expected: int, wait: float = 5.0
) -> list[Any]:
    """Every message of ``stream`` on ``subject`` (waits up to ``wait`` s for ``expected``)."""
    import nats

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        sub = await js.pull_subscribe(subject, stream=stream)
        got: list[Any] = []
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            try:
                batch = await sub.fetch(500, timeout=0.3)
            except Exception:
                batch = []
            got.extend(batch)
            if len(got) >= expected and not batch:
                break
        return got
    finally:
        await client.close()


async def cleanup(world: World) -> None:
    import nats

    client = await nats.connect(world.url)
    try:
        js = client.jetstream()
        names = await js.streams_info()
        for info in names:
            if info.config.name and info.config.name.startswith(world.ns.upper()):
                with contextlib.suppress(Exception):
                    await js.delete_stream(info.config.name)
    finally:
        await client.close()


class DropProxy:
    """A TCP proxy on a free loopback port in front of the NATS server; ``drop()`` cuts every
    connection (what a broker restart looks like to its clients) and refuses new ones for a
    moment."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.refusing = False
        self.port = 0
        self.drops = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def drop(self, refuse_for: float = 0.5) -> None:
        self.drops += 1
        self.refusing = True
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.close()
        self._writers.clear()
        await asyncio.sleep(refuse_for)
        self.refusing = False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.close()


def run(coro_factory: Callable[[], Any]) -> Any:
    return asyncio.run(coro_factory())


def relay_for(broker: NatsBroker, world: World, runner: GovernedRunner, **config: Any) -> Relay:
    """The relay of the world's events port for the fraud analyst (all rows, e-mails hashed)."""
    gateway = world.gateway()
    return Relay(
        broker,
        lambda: gateway,
        runner,
        "shop/orders",
        "order_events",
        [Subscriber(FRAUD, "fraud_detection")],
        world.config(**config),
    )
