"""Helpers: a real ``meshgov serve`` process app with the PostgreSQL listener, on a free port.

The governed catalogue databases are created on the test PostgreSQL server under a prefix unique
to this run, and dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from meshgov.config import Settings
from meshgov.process import create_process_app
from uvicorn_thread import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WireServer:
    """A running service: HTTP on ``http_port``, PostgreSQL protocol on ``pg_port``."""

    http_port: int
    pg_port: int
    settings: Settings
    app: object

    def dsn(self, user: str = "analyst-eu", purpose: str = "analytics", **extra: str) -> str:
        params = {
            "host": "127.0.0.1",
            "port": str(self.pg_port),
            "dbname": purpose,
            "user": user,
            "password": f"dev-{user}",
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in params.items())

    def url(self, user: str = "analyst-eu", purpose: str = "analytics", scheme: str = "") -> str:
        return f"postgresql{scheme}://{user}:dev-{user}@127.0.0.1:{self.pg_port}/{purpose}"

    @property
    def service(self) -> object:
        return self.app.state.service  # type: ignore[attr-defined]


def _start(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, object]:
    app = create_process_app(settings)
    server, thread = serve_in_thread(app, "127.0.0.1", settings.port)
    return server, thread, app


def serve(tmp: Path, pg_admin_dsn: str, prefix: str, **overrides: object) -> Iterator[WireServer]:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "catalog_dir": MESH,
        "policies_dir": Path(os.environ.get("MESHGOV_TEST_POLICIES", ROOT / "policies")),
        "store_url": f"sqlite:///{tmp / 'meshgov.db'}",
        "tokens_file": ROOT / "examples" / "tokens.yaml",
        "decision_flush_seconds": 0.05,
        "pg_port": free_port(),
        "pg_catalog_dsn": pg_admin_dsn,
        "pg_catalog_prefix": prefix,
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    server, thread, app = _start(settings)
    try:
        yield WireServer(settings.port, settings.pg_port or 0, settings, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
