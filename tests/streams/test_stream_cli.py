"""`meshgov stream serve` relays where the service's relay does: MESHGOV_STREAM_NAMESPACE."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import meshgov.core.collection
import meshgov.streams
from meshgov.cli import app
from meshgov.streams import RelayConfig

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"


def stream_serve(*extra: str) -> Result:
    """``meshgov stream serve`` of the example mesh for the EU analyst (the relay itself faked)."""
    return CliRunner().invoke(
        app,
        [
            "stream",
            "serve",
            "--catalog",
            str(MESH),
            "--policies",
            str(ROOT / "policies"),
            "--principal",
            str(MESH / "principals" / "analyst-eu.yaml"),
            *extra,
        ],
    )


@pytest.mark.parametrize(("namespace", "governed"), [("", "gov"), ("team7", "team7gov")])
def test_stream_serve_uses_the_stream_namespace_and_the_batch(
    monkeypatch: pytest.MonkeyPatch, namespace: str, governed: str
) -> None:
    seen: list[RelayConfig] = []

    async def fake_run_relays(*args: Any, **kwargs: Any) -> None:
        seen.append(args[6])
        await asyncio.sleep(0)

    monkeypatch.setattr(meshgov.streams, "run_relays", fake_run_relays)
    monkeypatch.setattr(meshgov.core.collection, "tune_for_batches", lambda: None)
    monkeypatch.setenv("MESHGOV_STREAM_NAMESPACE", namespace)
    result = stream_serve("--purpose", "analytics", "--batch", "123")
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    assert seen[0].governed_prefix == governed
    assert seen[0].dead_letter_prefix == f"{namespace}dlq"
    assert seen[0].stream_prefix == f"{namespace.upper()}MESHGOV"
    assert seen[0].batch == 123


def test_stream_serve_warns_at_start_about_a_subscriber_the_policy_denies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = SimpleNamespace(
        product="commerce/orders",
        port="order_events",
        raw_subject="commerce.orders.events",
        subject_for=lambda s: f"gov.{s.purpose}.{s.principal.id}.commerce.orders.order_events",
    )

    async def fake_run_relays(*args: Any, **kwargs: Any) -> None:
        kwargs["on_started"]([relay])
        await asyncio.sleep(0)

    monkeypatch.setattr(meshgov.streams, "run_relays", fake_run_relays)
    monkeypatch.setattr(meshgov.core.collection, "tune_for_batches", lambda: None)
    result = stream_serve(
        "--purpose", "analytics", "--purpose", "marketing", "commerce/orders:order_events"
    )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert (
        "warning nothing is relayed to gov.marketing.analyst-eu.commerce.orders.order_events: "
        "commerce/orders:order_events: no grant" in output
    )
    assert "nothing is relayed to gov.analytics" not in output
