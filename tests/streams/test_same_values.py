"""One decision, three kinds of port: a principal sees the same rows and values of one product
through SQL (table port), an export (its snapshot) and the governed stream (its events port)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pyarrow.parquet as pq
from stream_world import (
    ANALYST_EU,
    ANALYST_US,
    FRAUD,
    HASH_KEY,
    ORDERS,
    World,
    as_json,
    connect,
    publish_raw,
    read_all,
)

from meshgov.core.principal import Principal
from meshgov.engines.duckdb import DuckDBEngine
from meshgov.execution import execute_query
from meshgov.exports import ExportFormat, export_to, plan_export
from meshgov.governed import GovernedRunner
from meshgov.streams import Relay, Subscriber

VIEWERS = [(ANALYST_EU, "analytics"), (ANALYST_US, "analytics"), (FRAUD, "fraud_detection")]


def normalised(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows by order id, values as JSON text would carry them (dates as ISO strings)."""
    return {
        row["order_id"]: {
            k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()
        }
        for row in rows
    }


def through_sql(world: World, who: Principal, purpose: str) -> dict[str, dict[str, Any]]:
    gateway = world.gateway()
    engine = DuckDBEngine.from_catalog(gateway.catalog, HASH_KEY)
    try:
        result = execute_query(gateway, engine, "SELECT * FROM shop.orders", who, purpose)
    finally:
        engine.close()
    return normalised(result.table.to_pylist())


def through_export(world: World, who: Principal, purpose: str) -> dict[str, dict[str, Any]]:
    gateway = world.gateway()
    runner = GovernedRunner(HASH_KEY)
    plan = plan_export(gateway, who, purpose, "shop/orders", "orders", "d" * 32)
    sink = io.BytesIO()
    export_to(plan, runner, ExportFormat.parquet, sink)
    runner.close()
    return normalised(pq.read_table(io.BytesIO(sink.getvalue())).to_pylist())


def through_stream(world: World) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    subscribers = [Subscriber(who, purpose) for who, purpose in VIEWERS]

    async def scenario() -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        broker = await connect(world)
        gateway = world.gateway()
        runner = GovernedRunner(HASH_KEY)
        relay = Relay(
            broker,
            lambda: gateway,
            runner,
            "shop/orders",
            "order_events",
            subscribers,
            world.config(),
        )
        await relay.start()
        await publish_raw(broker, world, as_json(ORDERS))
        handled = 0
        while handled < len(ORDERS):
            handled += await relay.run_once()
        seen: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for subscriber in subscribers:
            messages = await read_all(
                world.url, relay.governed_stream, relay.subject_for(subscriber), 1, 2.0
            )
            key = (subscriber.principal.id, subscriber.purpose)
            seen[key] = normalised([json.loads(m.data) for m in messages])
        await relay.close()
        await broker.close()
        runner.close()
        return seen

    result: dict[tuple[str, str], dict[str, dict[str, Any]]] = asyncio.run(scenario())
    return result


def test_sql_export_and_stream_show_the_same_values(world: World) -> None:
    streamed = through_stream(world)
    for who, purpose in VIEWERS:
        sql = through_sql(world, who, purpose)
        exported = through_export(world, who, purpose)
        events = streamed[(who.id, purpose)]
        assert sql, f"{who.id} sees nothing through SQL"
        assert exported == sql, who.id
        assert events == sql, who.id  # the hashed e-mail included, value for value
        emails = {row["email"] for row in sql.values()}
        if who is FRAUD:
            assert emails == {row["email"] for row in ORDERS}  # cleared: clear text
        else:
            assert all(len(e) == 64 for e in emails)  # hashed with the mesh key
            assert {row["region"] for row in sql.values()} == {who.attributes["region"]}
        assert all("risk_score" not in row for row in sql.values())
