"""HTTP load benchmark of ``POST /v1/query/authorize``.

Starts ``meshgov serve`` (several uvicorn workers, a fresh SQLite store, the example mesh) as a
subprocess, then drives it from a separate process: 32 concurrent keep-alive clients send a fixed
number of requests (a mix of principals and queries, so decisions and rewrites are cached after
the first of each), and report throughput, p50/p99 latency and errors.

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


async def _client(
    host: str,
    port: int,
    payloads: list[bytes],
    count: int,
    latencies: list[float],
    errors: list[str],
) -> None:
    """One keep-alive connection sending ``count`` requests, one at a time (a minimal HTTP/1.1)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for index in range(count):
            payload = payloads[index % len(payloads)]
            started = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = status_line.split(b" ")[1] if b" " in status_line else b"?"
            if status != b"200":
                errors.append(status.decode(errors="replace"))
    finally:
        writer.close()


async def _drive(url: str, total: int, clients: int) -> dict[str, float]:
    host_port = url.removeprefix("http://").rstrip("/")
    host, _, port_text = host_port.partition(":")
    port = int(port_text)
    payloads = [request_bytes(host, port, t, sql, p) for t, sql, p in QUERIES]
    latencies: list[float] = []
    errors: list[str] = []
    # Warm every (principal, query) once per worker connection before timing.
    await asyncio.gather(
        *(_client(host, port, payloads, len(payloads) * 4, [], []) for _ in range(clients))
    )
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    started = time.perf_counter()
    await asyncio.gather(*(_client(host, port, payloads, n, latencies, errors) for n in per_client))
    elapsed = time.perf_counter() - started
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
