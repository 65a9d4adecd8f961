"""A real meshgov process (HTTP API + console) on a free loopback port, over the example mesh."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from meshgov.api.app import create_app
from meshgov.config import Settings
from meshgov.console import install_console
from meshgov.service import Service
from uvicorn_thread import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
# Clear-text development tokens of examples/tokens.yaml (only their digests are in the file).
TOKENS = {
    name: f"dev-{name}"
    for name in ("analyst-eu", "analyst-us", "fraud-investigator", "guild", "owner-customer")
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ConsoleServer:
    url: str
    service: Service
    server: uvicorn.Server
    thread: threading.Thread
    app: Any

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_console(tmp: Path, tokens_file: Path | None = None) -> ConsoleServer:
    settings = Settings(
        host="127.0.0.1",
        port=free_port(),
        catalog_dir=ROOT / "examples" / "mesh",
        policies_dir=ROOT / "policies",
        store_url=f"sqlite:///{tmp / 'meshgov.db'}",
        tokens_file=tokens_file or ROOT / "examples" / "tokens.yaml",
        decision_flush_seconds=0.05,
    )
    service = Service(settings)
    app = install_console(create_app(settings, service=service))
    server, thread = serve_in_thread(app, settings.host, settings.port)
    return ConsoleServer(f"http://{settings.host}:{settings.port}", service, server, thread, app)


def login(page: Any, console: ConsoleServer, who: str) -> None:
    """Log ``who`` in through the console's form in a browser page (Playwright)."""
    page.goto(f"{console.url}/ui/login")
    page.get_by_label("Token").fill(TOKENS[who])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/catalogue")
    assert page.locator("#whoami").inner_text() == who
