"""Catalogue preparation at mesh scale: cold ``meshgov rewrite`` and ``meshgov query``, ``meshgov
serve`` until ready, and publications, over generated catalogues (1,000 and 10,000 products).

The catalogue is the example mesh plus generated products spread over 50 domains, each with two
grants (one with a row filter) and two masked PII columns (the check bench's consumer, grown).
Every command runs in a cold process with the default configuration, the policy engine set by
``MESHGOV_POLICY_ENGINE`` (``--engines auto,embedded``: regorus when installed, and regopy), in a
private cache directory:
- ``rewrite``/``query`` first with an empty cache (every manifest parsed), then again (the parsed
  manifests kept on disk); wall time, CPU time (user + system, independent of the machine's load)
  and peak memory (max RSS) of the process;
- ``serve``: from the command's start until ``/health`` answers 200 (a fresh SQLite store), with
  the server's CPU time and peak memory at that moment;
- publications: ``PUT /v1/products/customer/customers`` of new versions, each timed until the
  answer, which the service gives once the new catalogue revision serves; then the first query
  on the new revision (``POST /v1/query/execute``: its DuckDB engine loads the port it reads), and
  the served version checked (``GET /v1/products/customer/customers``).
Targets (issue 13, at 10,000 products): rewrite and query ≤ 20 s wall and ≤ 1.5 GB; serve ready
≤ 30 s; publication ≤ 2 s.

    python bench/catalog_bench.py [--products 1000,10000] [--engines auto,embedded]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESH = ROOT / "examples" / "mesh"
MESHGOV = Path(sys.executable).parent / "meshgov"
ANALYST = MESH / "principals" / "analyst-eu.yaml"
SQL = "SELECT customer_id, email, region FROM customer.customers LIMIT 5"
TARGET_CLI_S = 20.0
TARGET_CLI_MB = 1500.0
TARGET_SERVE_S = 30.0
TARGET_PUBLISH_S = 2.0

PRODUCT = """\
apiVersion: meshgov/v1
kind: DataProduct
metadata:
  domain: {domain}
  name: {name}
  version: 1.{minor}.0
  owner: {domain}-data@acme.example
  description: Generated product {index} of the catalogue benchmark.
  status: active
spec:
  inputs:
    - {{product: customer/customers, port: customers}}
  outputPorts:
    - name: {name}
      kind: table
      table: {domain}.{name}
      retention: 1y
      columns:
        - {{name: client_ref, type: string, required: true, entity: customer,
           classification: internal}}
        - {{name: email, type: string, classification: confidential, pii: true,
           piiCategory: email, mask: hash}}
        - {{name: phone, type: string, classification: confidential, pii: true,
           piiCategory: phone, mask: partial}}
        - {{name: region, type: string, classification: internal}}
        - {{name: score, type: number, classification: internal}}
        - {{name: updated_at, type: timestamp, required: true, classification: internal}}
  access:
    grants:
      - to: {{groups: [analysts]}}
        purposes: [analytics]
        rowFilter: "region = {{principal.region}}"
      - to: {{groups: [team{team:02d}]}}
        purposes: [analytics, operations]
"""


def build_catalogue(root: Path, products: int) -> Path:
    """The example mesh (snapshots included) plus generated products, ``products`` in all."""
    mesh = root / "mesh"
    shutil.copytree(MESH, mesh, ignore=shutil.ignore_patterns("principals"))
    for index in range(max(products - 7, 0)):
        domain = f"team{index % 50:02d}"
        name = f"product_{index:05d}"
        path = mesh / "generated" / domain / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            PRODUCT.format(
                domain=domain, name=name, index=index, minor=index % 7, team=(index * 7) % 50
            ),
            encoding="utf-8",
        )
    return mesh


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    peak_mb: float
    code: int


def run(command: list[str], env: dict[str, str]) -> Run:
    """One cold process: wall, CPU and peak memory of that process alone (``wait4``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and proc.stderr is not None:
        print(proc.stderr.read().decode(errors="replace")[-2000:], file=sys.stderr)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _request(
    url: str, token: str, *, method: str = "GET", body: bytes | None = None, kind: str = ""
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    if kind:
        headers["Content-Type"] = kind
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _process_cpu_and_peak(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system, waited children included) and peak RSS (MB) of a live
    process, from ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan"), float("nan")
    peak = next(
        (int(row.split()[1]) / 1024 for row in status.splitlines() if row.startswith("VmHWM")),
        float("nan"),
    )
    return ticks / os.sysconf("SC_CLK_TCK"), peak


@dataclass(frozen=True)
class Served:
    ready: float
    ready_cpu: float
    ready_peak_mb: float
    engine: str
    publications: list[float]
    publication_cpu: list[float]
    first_query: float
    served_version: str
    peak_mb: float


def serve_and_publish(mesh: Path, work: Path, env: dict[str, str], publications: int) -> Served:
    """Seconds until ``/health`` is 200 (and the server's CPU and memory then), seconds of each
    publication, of the first query after the last one, and the version then served."""
    port = free_port()
    store = work / "bench.db"
    store.unlink(missing_ok=True)
    command = [
        str(MESHGOV),
        "serve",
        "--catalog",
        str(mesh),
        "--policies",
        str(ROOT / "policies"),
        "--store",
        f"sqlite:///{store}",
        "--port",
        str(port),
        "--tokens",
        str(ROOT / "examples" / "tokens.yaml"),
    ]
    started = time.perf_counter()
    log = (work / "serve.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = started + 1200
        while time.perf_counter() < deadline:
            status, body = _get(f"{base}/health")
            if status == 200:
                break
            if proc.poll() is not None:
                raise SystemExit(
                    f"meshgov serve exited: {(work / 'serve.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)
        else:
            raise SystemExit("meshgov serve was not ready within 1200 s")
        ready = time.perf_counter() - started
        ready_cpu, ready_peak = _process_cpu_and_peak(proc.pid)
        engine = json.loads(body).get("policy_engine", "?")
        manifest = (mesh / "customer" / "customers.yaml").read_text(encoding="utf-8")
        if "version: 2.1.0" not in manifest:
            raise SystemExit("customer/customers is not at version 2.1.0: update the bench")
        timings: list[float] = []
        publish_cpu: list[float] = []
        version = "2.1.0"
        for number in range(1, publications + 1):
            version = f"2.1.{number}"
            bumped = manifest.replace("version: 2.1.0", f"version: {version}", 1)
            cpu_before, _ = _process_cpu_and_peak(proc.pid)
            started = time.perf_counter()
            status, answer = _request(
                f"{base}/v1/products/customer/customers",
                "dev-owner-customer",
                method="PUT",
                body=bumped.encode(),
                kind="text/yaml",
            )
            timings.append(time.perf_counter() - started)
            time.sleep(1.5)  # the refresher's next poll counts too (a second build, if any)
            publish_cpu.append(_process_cpu_and_peak(proc.pid)[0] - cpu_before)
            if status not in {200, 201} or not json.loads(answer).get("published"):
                raise SystemExit(f"publication refused: {status} {answer[:500]!r}")
        query = {"sql": SQL, "purpose": "analytics", "format": "json"}
        started = time.perf_counter()
        status, answer = _request(
            f"{base}/v1/query/execute",
            "dev-analyst-eu",
            method="POST",
            body=json.dumps(query).encode(),
            kind="application/json",
        )
        first_query = time.perf_counter() - started
        if status != 200:
            code = json.loads(answer).get("code", "?") if answer.startswith(b"{") else "?"
            print(f"  first query on the new revision failed: HTTP {status} {code}")
            first_query = float("nan")
        status, answer = _request(f"{base}/v1/products/customer/customers", "dev-analyst-eu")
        served = json.loads(answer).get("version", "?") if status == 200 else f"HTTP {status}"
        if served != version:
            raise SystemExit(f"served version {served}, published {version}")
        _, peak = _process_cpu_and_peak(proc.pid)
        return Served(
            ready, ready_cpu, ready_peak, engine, timings, publish_cpu, first_query, served, peak
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def line(label: str, result: Run) -> str:
    ok = result.wall <= TARGET_CLI_S and result.peak_mb <= TARGET_CLI_MB and result.code == 0
    return (
        f"  {label:<40} {result.wall:7.1f} s wall {result.cpu:7.1f} s cpu "
        f"{result.peak_mb:7.0f} MB peak  exit {result.code}  "
        f"{'met' if ok else 'MISSED'} (≤ {TARGET_CLI_S:.0f} s, ≤ {TARGET_CLI_MB:.0f} MB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", default="1000,10000", help="catalogue sizes, comma-separated")
    parser.add_argument(
        "--engines", default="auto", help="--policy-engine values, comma-separated (auto,embedded)"
    )
    parser.add_argument("--no-cli", action="store_true", help="skip rewrite and query")
    parser.add_argument("--no-serve", action="store_true", help="skip serve and publication")
    parser.add_argument("--publications", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.products.split(",") if size]
    engines = [name for name in args.engines.split(",") if name]
    print(f"{os.cpu_count()} CPUs; uptime: {_uptime()}")
    for products in sizes:
        with tempfile.TemporaryDirectory(prefix="meshgov-catalog-bench-") as tmp:
            work = Path(tmp)
            mesh = build_catalogue(work, products)
            for engine in engines:
                bench_one(mesh, work, products, engine, args)
    print(f"uptime after: {_uptime()}")
    return 0


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average {os.getloadavg()[0]:.1f}"


def bench_one(mesh: Path, work: Path, products: int, engine: str, args: argparse.Namespace) -> None:
    cache = work / f"cache-{engine}"
    env = {**os.environ, "MESHGOV_CACHE_DIR": str(cache), "MESHGOV_POLICY_ENGINE": engine}
    print(
        f"\n{products} products, --policy-engine {engine} (load average {os.getloadavg()[0]:.1f})"
    )
    if not args.no_cli:
        common = ["--catalog", str(mesh), "--principal", str(ANALYST), "--purpose", "analytics"]
        rewrite = [str(MESHGOV), "rewrite", SQL, *common]
        query = [str(MESHGOV), "query", SQL, *common, "--format", "json"]
        shutil.rmtree(cache, ignore_errors=True)
        print(line("rewrite, first (every manifest parsed)", run(rewrite, env)))
        print(line("rewrite, again (parsed manifests on disk)", run(rewrite, env)))
        shutil.rmtree(cache, ignore_errors=True)
        print(line("query, first (every manifest parsed)", run(query, env)))
        print(line("query, again (parsed manifests on disk)", run(query, env)))
    if not args.no_serve:
        shutil.rmtree(cache, ignore_errors=True)
        served = serve_and_publish(mesh, work, env, args.publications)
        print(
            f"  {'serve, ready (/health 200), fresh store':<40} {served.ready:7.1f} s wall "
            f"{served.ready_cpu:7.1f} s cpu {served.ready_peak_mb:7.0f} MB peak  "
            f"{'met' if served.ready <= TARGET_SERVE_S else 'MISSED'} "
            f"(≤ {TARGET_SERVE_S:.0f} s); engine {served.engine}"
        )
        worst = max(served.publications)
        shown = ", ".join(f"{t:.2f}" for t in served.publications)
        cpu = ", ".join(f"{t:.2f}" for t in served.publication_cpu)
        print(
            f"  {'publication of one product, servable':<40} {shown} s wall; server cpu {cpu} s "
            f"(the next 1.5 s included)  "
            f"{'met' if worst <= TARGET_PUBLISH_S else 'MISSED'} (≤ {TARGET_PUBLISH_S:.0f} s)"
        )
        print(
            f"  {'first query on the new revision':<40} {served.first_query:7.2f} s wall; "
            f"version served {served.served_version}; server peak {served.peak_mb:.0f} MB"
        )


if __name__ == "__main__":
    sys.exit(main())
