"""One way the tests run a real meshgov app: uvicorn in a daemon thread, on a loopback port."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


def serve_in_thread(app: Any, host: str, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    """Start ``app`` (its lifespan included) and return once it accepts connections."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 90
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("meshgov server did not start")
        time.sleep(0.05)
    return server, thread
