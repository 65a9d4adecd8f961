"""Benchmark of `meshgov check`: one manifest from a cold process, and 1,000 manifests in one call,
under both in-process Rego engines (``--policy-engine embedded``, regopy, and ``regorus``).

Every figure is measured in the same run, beside two baselines on the same machine: the start of a
bare interpreter (``python -c pass``) and parsing the same YAML alone (PyYAML's safe loader, in a
cold process too). Targets (docs/benchmarks.md): one manifest ≤ 1 s wall, 1,000 manifests ≤ 20 s.

The single manifest is the example mesh's customer/customers with its Parquet snapshot (so the PII
scan is part of the figure). The 1,000 manifests are the 7 example products (snapshots included)
plus 993 generated consumer products spread over 50 domains, each reading customer/customers and
carrying its customer id under a declared mapping, so that the identity graph and every rule run.

    python bench/check_bench.py [--repeat 5] [--products 1000] [--check]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESH = ROOT / "examples" / "mesh"
POLICIES = ROOT / "policies"
MESHGOV = Path(sys.executable).parent / "meshgov"
ENGINES = ("embedded", "regorus")
TARGET_ONE_S = 1.0
TARGET_MANY_S = 20.0

CONSUMER = """\
apiVersion: meshgov/v1
kind: DataProduct
metadata:
  domain: {domain}
  name: {name}
  version: 1.{minor}.0
  owner: {domain}-data@acme.example
  description: Generated consumer product {index} of the benchmark mesh.
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
        - {{name: segment, type: string, classification: internal, enum: [a, b, c]}}
        - {{name: score, type: number, classification: internal}}
        - {{name: updated_at, type: timestamp, required: true, classification: internal}}
  access:
    grants:
      - to: {{groups: [analysts]}}
        purposes: [analytics]
"""


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds, what the target is about
    cpu: float  # user + system seconds of the child (all its threads): independent of load
    code: int


def measure(command: list[str], cwd: Path) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(elapsed, cpu, proc.returncode)


def median_of(command: list[str], cwd: Path, repeat: int) -> Timing:
    runs = sorted((measure(command, cwd) for _ in range(repeat)), key=lambda t: t.wall)
    return runs[len(runs) // 2]


def build_mesh(root: Path, products: int) -> Path:
    """The example mesh plus generated consumers, ``products`` manifests in all."""
    mesh = root / "mesh"
    shutil.copytree(MESH, mesh, ignore=shutil.ignore_patterns("principals"))
    for index in range(max(products - 7, 0)):
        domain = f"team{index % 50:02d}"
        name = f"audience_{index:04d}"
        path = mesh / "generated" / domain / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            CONSUMER.format(domain=domain, name=name, index=index, minor=index % 7),
            encoding="utf-8",
        )
    return mesh


def parse_only(paths_file: Path) -> list[str]:
    """A cold process that only parses the YAML files listed in ``paths_file``."""
    code = (
        "import sys, yaml\n"
        "for p in open(sys.argv[1]).read().split('\\n'):\n"
        "    p and yaml.load(open(p, encoding='utf-8'), Loader=yaml.CSafeLoader)\n"
    )
    return [sys.executable, "-c", code, str(paths_file)]


def row(label: str, timing: Timing, baseline: Timing | None = None, extra: str = "") -> str:
    ratio = f"{timing.wall / baseline.wall:7.1f}×" if baseline else " " * 8
    return (
        f"  {label:<46} {timing.wall * 1000:9.1f} ms wall {ratio} "
        f"{timing.cpu * 1000:9.1f} ms cpu  {extra}"
    )


def verdict(timing: Timing, target: float) -> str:
    met = "met" if timing.wall <= target else "MISSED"
    return f"exit {timing.code}; target ≤ {target:.0f} s: {met}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cold runs per single figure")
    parser.add_argument("--products", type=int, default=1000, help="manifests in the big run")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if not MESHGOV.exists():
        print(f"{MESHGOV} not found: install meshgov in this environment first", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="meshgov-bench-") as tmp:
        work = Path(tmp)
        mesh = build_mesh(work, args.products)
        one = mesh / "customer" / "customers.yaml"
        manifests = sorted(p for p in mesh.rglob("*.yaml"))
        list_one = work / "one.txt"
        list_one.write_text(str(one))
        list_all = work / "all.txt"
        list_all.write_text("\n".join(str(p) for p in manifests))
        base = [str(MESHGOV), "check", "--policies", str(POLICIES), "--format", "json"]
        checks = {engine: [*base, "--policy-engine", engine] for engine in ENGINES}

        # Warm the file cache and the bytecode caches before any timing.
        for check in checks.values():
            measure([*check, str(one)], work)
        load_before = os.getloadavg()[0]
        python_pass = median_of([sys.executable, "-c", "pass"], work, args.repeat)
        yaml_one = median_of(parse_only(list_one), work, args.repeat)
        check_one = {e: median_of([*c, str(one)], work, args.repeat) for e, c in checks.items()}
        yaml_all = median_of(parse_only(list_all), work, 3)
        check_all = {
            e: min((measure([*c, str(mesh)], work) for _ in range(2)), key=lambda t: t.wall)
            for e, c in checks.items()
        }
        load_after = os.getloadavg()[0]

    ok_one = all(t.wall <= TARGET_ONE_S for t in check_one.values())
    ok_all = all(t.wall <= TARGET_MANY_S for t in check_all.values())
    print(
        f"meshgov check benchmark ({sys.platform}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} → {load_after:.1f})"
    )
    print(f"one manifest, cold process, median of {args.repeat}:")
    print(row("python -c pass", python_pass))
    print(row("parse the YAML alone (cold process)", yaml_one, python_pass))
    for engine, timing in check_one.items():
        print(
            row(
                f"meshgov check customers.yaml [{engine}]",
                timing,
                python_pass,
                verdict(timing, TARGET_ONE_S),
            )
        )
    print(
        "  → check / parse-alone = "
        + ", ".join(f"{e} {t.wall / yaml_one.wall:.1f}×" for e, t in check_one.items())
    )
    print(f"{len(manifests)} manifests in one call (best of 2):")
    print(row(f"parse the {len(manifests)} YAML files alone", yaml_all, python_pass))
    for engine, timing in check_all.items():
        print(
            row(
                f"meshgov check ({len(manifests)} manifests) [{engine}]",
                timing,
                python_pass,
                verdict(timing, TARGET_MANY_S),
            )
        )
        print(
            f"  → {engine}: check / parse-alone = {timing.wall / yaml_all.wall:.1f}×; "
            f"{timing.wall / len(manifests) * 1000:.1f} ms wall and "
            f"{timing.cpu / len(manifests) * 1000:.1f} ms cpu per manifest"
        )
    if args.check and not (ok_one and ok_all):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
