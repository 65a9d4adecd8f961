"""HTTP load benchmark of ``POST /v1/query/authorize``.

Starts ``meshgov serve`` (several uvicorn workers, a fresh SQLite store, the example mesh) as a
subprocess, then drives it from a separate process: 32 concurrent keep-alive clients send a fixed
number of requests (a mix of principals and queries, so decisions and rewrites are cached after
the first of each), and report throughput, p50/p99 latency and errors. The client is a minimal
asyncio HTTP/1.1 protocol (lean: it shares the cores with the service) that checks every
response: status 200 and the body contract (learnt and validated as JSON on the first answer to
each request; afterwards byte-identical but for a fresh 32-hex ``decision_id``).

Targets (PRODUCT.md): >= 1,000 requests/s on 2 cores, p99 <= 25 ms, no errors.

    python bench/service_bench.py [--requests 20000] [--clients 32] [--workers 2] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RPS = 1000.0
TARGET_P99_MS = 25.0
QUERIES = [
    ("dev-analyst-eu", "SELECT customer_id, email, region FROM customer.customers", "analytics"),
    (
        "dev-analyst-us",
        "SELECT order_id, amount FROM commerce.orders WHERE amount > 10",
        "analytics",
    ),
    (
        "dev-analyst-eu",
        "SELECT c.region, count(*) FROM customer.customers c GROUP BY 1",
        "analytics",
    ),
    ("dev-owner-customer", "SELECT * FROM customer.customers", "analytics"),
    ("dev-nobody", "SELECT * FROM payments.payments", "analytics"),
    ("dev-analyst-us", "SELECT product_id, category FROM commerce.products", "analytics"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_bytes(host: str, port: int, token: str, sql: str, purpose: str) -> bytes:
    body = json.dumps({"sql": sql, "purpose": purpose}).encode()
    head = (
        f"POST /v1/query/authorize HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


class _Expected:
    """The response contract, learnt from the first answer to each request and then checked on
    every response: status 200, JSON ``{allowed, sql, decision, decision_id, revision}`` with a
    32-hex ``decision_id``, and (once learnt) byte-identical to the first answer but for the id.
    """

    KEYS = frozenset({"allowed", "sql", "decision", "decision_id", "revision"})
    MARK = b'"decision_id":"'

    def __init__(self) -> None:
        self.parts: dict[int, tuple[bytes, bytes]] = {}

    def check(self, index: int, status: bytes, body: bytes) -> str | None:
        """None when the response is right, else what is wrong."""
        if status != b"200":
            return f"status {status.decode(errors='replace')}"
        at = body.find(self.MARK)
        if at < 0:
            return "no decision_id in the body"
        start = at + len(self.MARK)
        decision_id = body[start : start + 32]
        if len(decision_id) != 32 or any(c not in b"0123456789abcdef" for c in decision_id):
            return f"bad decision_id {decision_id!r}"
        head, tail = body[:start], body[start + 32 :]
        known = self.parts.get(index)
        if known is not None:
            return None if known == (head, tail) else f"unexpected body {body[:200]!r}"
        try:
            document = json.loads(body)
        except ValueError:
            return f"not JSON: {body[:200]!r}"
        if not isinstance(document, dict) or set(document) != self.KEYS:
            return f"wrong keys: {body[:200]!r}"
        if not isinstance(document["allowed"], bool) or not isinstance(document["decision"], dict):
            return f"wrong types: {body[:200]!r}"
        if document["allowed"] != (document["sql"] is not None):
            return "allowed without SQL (or SQL with a denial)"
        self.parts[index] = (head, tail)
        return None


class _Connection(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive client connection: one request in flight at a time,
    responses framed by Content-Length (what the service sends)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[bytes, bytes]] | None = None
        self.closed: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = exc or ConnectionError("connection closed by the server")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.closed)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.waiter.set_exception(ValueError("response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = head[9:12]
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((status, body))

    async def request(self, payload: bytes) -> tuple[bytes, bytes]:
        if self.closed is not None or self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


async def _client(
    host: str,
    port: int,
    payloads: list[bytes],
    count: int,
    latencies: list[float],
    errors: list[str],
    expected: _Expected,
    offset: int = 0,
) -> None:
    """One keep-alive connection sending ``count`` requests, one at a time; every response's
    status and body is checked."""
    loop = asyncio.get_running_loop()
    transport, connection = await loop.create_connection(_Connection, host, port)
    clock = time.perf_counter
    try:
        for step in range(count):
            index = (offset + step) % len(payloads)
            started = clock()
            status, body = await connection.request(payloads[index])
            latencies.append(clock() - started)
            problem = expected.check(index, status, body)
            if problem is not None:
                errors.append(problem)
    finally:
        transport.close()


async def _drive(url: str, total: int, clients: int) -> dict[str, float]:
    host_port = url.removeprefix("http://").rstrip("/")
    host, _, port_text = host_port.partition(":")
    port = int(port_text)
    payloads = [request_bytes(host, port, t, sql, p) for t, sql, p in QUERIES]
    latencies: list[float] = []
    errors: list[str] = []
    expected = _Expected()
    # Warm every (principal, query) once per worker connection before timing; learn the bodies.
    await asyncio.gather(
        *(
            _client(host, port, payloads, len(payloads) * 4, [], errors, expected)
            for _ in range(clients)
        )
    )
    if len(expected.parts) != len(payloads) or errors:
        raise SystemExit(f"warm-up failed: {errors[:5]}")
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _client(host, port, payloads, n, latencies, errors, expected, offset=i)
            for i, n in enumerate(per_client)
        )
    )
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  first errors: {errors[:3]}", file=sys.stderr)
    ordered = sorted(latencies)
    return {
        "requests": float(len(latencies)),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "max_ms": ordered[-1] * 1000,
        "errors": float(len(errors)),
    }


def drive(url: str, total: int, clients: int, out: multiprocessing.queues.Queue) -> None:  # type: ignore[type-arg]
    try:  # the client must not be the bottleneck: uvloop when available
        import uvloop

        out.put(uvloop.run(_drive(url, total, clients)))
    except ImportError:
        out.put(asyncio.run(_drive(url, total, clients)))


def start_service(workers: int, port: int, state: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-c", "from meshgov.cli import main; main()", "serve",
        "--catalog", str(ROOT / "examples" / "mesh"),
        "--policies", str(ROOT / "policies"),
        "--tokens", str(ROOT / "examples" / "tokens.yaml"),
        "--store", f"sqlite:///{state / 'meshgov.db'}",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise SystemExit(f"meshgov serve exited early:\n{stderr}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("meshgov serve did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--url", help="Drive an already running service instead of starting one.")
    args = parser.parse_args()

    process = None
    url = args.url
    with tempfile.TemporaryDirectory(prefix="meshgov-bench-") as tmp:
        try:
            if url is None:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                process = start_service(args.workers, port, Path(tmp))
                wait_ready(url, process)
            # The load comes from a separate process, as a real client would.
            results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
            driver = multiprocessing.Process(
                target=drive, args=(url, args.requests, args.clients, results)
            )
            driver.start()
            figures = results.get(timeout=600)
            driver.join()
        finally:
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
    ok = (
        figures["rps"] >= TARGET_RPS
        and figures["p99_ms"] <= TARGET_P99_MS
        and figures["errors"] == 0
    )
    print(
        f"service_bench: POST /v1/query/authorize, {int(figures['requests'])} requests, "
        f"{args.clients} clients, {args.workers} workers, {os.cpu_count()} CPUs"
    )
    print(
        f"  throughput {figures['rps']:,.0f} req/s (target >= {TARGET_RPS:,.0f})  "
        f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms "
        f"(target <= {TARGET_P99_MS:.0f})  max {figures['max_ms']:.1f} ms  "
        f"errors {int(figures['errors'])}"
    )
    print(f"  {'PASS' if ok else 'MISS'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
