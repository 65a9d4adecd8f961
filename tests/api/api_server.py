"""Helpers: a real meshgov server (uvicorn on a free port, in a thread) over the example mesh."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from meshgov.api.app import create_app
from meshgov.config import Settings
from meshgov.service import Service
from uvicorn_thread import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
# Clear-text development tokens of examples/tokens.yaml (only their digests are in the file).
TOKENS = {
    name: f"dev-{name}"
    for name in (
        "analyst-eu",
        "analyst-us",
        "fraud-investigator",
        "guild",
        "nobody",
        "owner-customer",
        "trino",
    )
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    service: Service
    settings: Settings

    def client(self, who: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKENS[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def settings_for(tmp: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "catalog_dir": ROOT / "examples" / "mesh",
        # MESHGOV_TEST_POLICIES: run against another policy tree (e.g. a clean checkout).
        "policies_dir": Path(os.environ.get("MESHGOV_TEST_POLICIES", ROOT / "policies")),
        "store_url": f"sqlite:///{tmp / 'meshgov.db'}",
        "tokens_file": ROOT / "examples" / "tokens.yaml",
        "decision_flush_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class ServerHandle:
    server: uvicorn.Server
    thread: threading.Thread
    running: RunningServer

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(settings: Settings, service: Service | None = None) -> ServerHandle:
    owned = service or Service(settings)
    app = create_app(settings, service=owned)
    server, thread = serve_in_thread(app, settings.host, settings.port)
    url = f"http://{settings.host}:{settings.port}"
    return ServerHandle(server, thread, RunningServer(url, owned, settings))
