"""Catalogue preparation at mesh scale: cold ``meshgov rewrite`` and ``meshgov query``, ``meshgov
serve`` until ready, and one publication, over a generated catalogue (default 10,000 products).

The catalogue is the example mesh plus generated products spread over 50 domains, each with two
grants (one with a row filter) and two masked PII columns (the check bench's consumer, grown).
Every command runs in a cold process with the default configuration (``--policy-engine auto``),
in a private cache directory:
- ``rewrite``/``query`` first with an empty cache (every manifest parsed), then again (the parsed
  manifests kept on disk); wall time, CPU time (user + system, independent of the machine's load)
  and peak memory (max RSS) of the process;
- ``serve``: from the command's start until ``/health`` answers 200 (a fresh SQLite store);
- publication: ``PUT /v1/products/customer/customers`` of a new version, timed until the answer,
  which the service gives once the new catalogue revision serves.
Targets (issue 13): rewrite and query ≤ 20 s wall and ≤ 1.5 GB; serve ready ≤ 30 s; publication
≤ 2 s.

    python bench/catalog_bench.py [--products 10000] [--engine auto]
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


def serve_and_publish(mesh: Path, work: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Seconds until ``/health`` is 200, seconds of one publication, and the engine it names."""
    port = free_port()
    command = [
        str(MESHGOV),
        "serve",
        "--catalog",
        str(mesh),
        "--policies",
        str(ROOT / "policies"),
        "--store",
        f"sqlite:///{work / 'bench.db'}",
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
        deadline = started + 600
        while time.perf_counter() < deadline:
            status, body = _get(f"{base}/health")
            if status == 200:
                break
            if proc.poll() is not None:
                raise SystemExit(
                    f"meshgov serve exited: {(work / 'serve.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)
        else:
            raise SystemExit("meshgov serve was not ready within 600 s")
        ready = time.perf_counter() - started
        engine = json.loads(body).get("policy_engine", "?")
        manifest = (mesh / "customer" / "customers.yaml").read_text(encoding="utf-8")
        bumped = manifest.replace("version: 2.1.0", "version: 2.1.1", 1)
        if bumped == manifest:
            raise SystemExit("customer/customers is not at version 2.1.0: update the bench")
        request = urllib.request.Request(
            f"{base}/v1/products/customer/customers",
            data=bumped.encode(),
            method="PUT",
            headers={"Authorization": "Bearer dev-owner-customer", "Content-Type": "text/yaml"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as answer:
            published = json.loads(answer.read())
        publish = time.perf_counter() - started
        if not published.get("published"):
            raise SystemExit(f"publication refused: {published}")
        return ready, publish, engine
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
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--engine", default="auto", help="--policy-engine of every command")
    parser.add_argument("--no-serve", action="store_true", help="skip serve and publication")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshgov-catalog-bench-") as tmp:
        work = Path(tmp)
        mesh = build_catalogue(work, args.products)
        env = {
            **os.environ,
            "MESHGOV_CACHE_DIR": str(work / "cache"),
            "MESHGOV_POLICY_ENGINE": args.engine,
        }
        common = ["--catalog", str(mesh), "--principal", str(ANALYST), "--purpose", "analytics"]
        load_before = os.getloadavg()[0]
        print(
            f"catalogue benchmark: {args.products} products, --policy-engine {args.engine} "
            f"({os.cpu_count()} CPUs, load average {load_before:.1f})"
        )
        rewrite = [str(MESHGOV), "rewrite", SQL, *common]
        query = [str(MESHGOV), "query", SQL, *common, "--format", "json"]
        print(line("rewrite, first (every manifest parsed)", run(rewrite, env)))
        print(line("rewrite, again (parsed manifests on disk)", run(rewrite, env)))
        shutil.rmtree(work / "cache", ignore_errors=True)
        print(line("query, first (every manifest parsed)", run(query, env)))
        print(line("query, again (parsed manifests on disk)", run(query, env)))
        if not args.no_serve:
            shutil.rmtree(work / "cache", ignore_errors=True)
            ready, publish, engine = serve_and_publish(mesh, work, env)
            print(
                f"  {'serve, ready (/health 200), fresh store':<40} {ready:7.1f} s wall  "
                f"{'met' if ready <= TARGET_SERVE_S else 'MISSED'} (≤ {TARGET_SERVE_S:.0f} s); "
                f"engine {engine}"
            )
            print(
                f"  {'publication of one product, servable':<40} {publish:7.2f} s wall  "
                f"{'met' if publish <= TARGET_PUBLISH_S else 'MISSED'} "
                f"(≤ {TARGET_PUBLISH_S:.0f} s)"
            )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
