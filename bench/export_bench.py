"""Governed export of a large snapshot against a plain pyarrow copy of the same file.

Writes an N-row customers-like Parquet snapshot (default 1,000,000 rows, 8 row groups), then in
one run, alternating, best of ``--repeat``:
- baseline: a plain pyarrow copy, the dataset scanned in batches and written with ParquetWriter;
- governed: ``meshgov.exports`` for an EU analyst (row filter region = 'EU', e-mail hashed with the
  mesh key, phone partial, name redacted, birth date to its year, a restricted column hidden),
  through the same gateway decision and secure SQL as a query.
Also measured, to say where the time goes: the keyed hash alone (``engines.keyed_hash``, in
bulk) on the e-mails the governed export hashes (in the export it overlaps with writing), and
peak RSS growth of each path (memory stays bounded: batches, never the whole file).

Target (issue 16): governed ≤ 1.5× the plain copy.

    python bench/export_bench.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from meshgov.catalog import load_catalog
from meshgov.core.principal import Principal
from meshgov.engines.keyed_hash import keyed_hash
from meshgov.exports import ExportFormat, export_to, plan_export
from meshgov.gateway import Gateway
from meshgov.governed import GovernedRunner
from meshgov.policy_backends import load_bundle_dir

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5
KEY = b"bench-mesh-key"
MANIFEST = """apiVersion: meshgov/v1
kind: DataProduct
metadata: {domain: bench, name: customers, version: 1.0.0, owner: b@acme.example,
           description: Bench customers., status: active}
spec:
  outputPorts:
    - name: customers
      kind: table
      table: bench.customers
      data: data/customers.parquet
      retention: 1y
      columns:
        - {name: customer_id, type: string, required: true, classification: internal}
        - {name: email, type: string, classification: confidential, pii: true,
           piiCategory: email, mask: hash}
        - {name: phone, type: string, classification: confidential, pii: true,
           piiCategory: phone, mask: partial}
        - {name: full_name, type: string, classification: confidential, pii: true,
           piiCategory: name, mask: redact}
        - {name: birth_date, type: date, classification: confidential, pii: true,
           piiCategory: birth_date, mask: year}
        - {name: region, type: string, required: true, classification: internal}
        - {name: lifetime_value, type: number, classification: internal}
        - {name: risk_score, type: integer, classification: restricted}
  access:
    grants:
      - to: {groups: [analysts]}
        purposes: [analytics]
        rowFilter: "region = {principal.region}"
      - to: {groups: [auditors]}
        purposes: [analytics]
"""


def write_snapshot(root: Path, rows: int) -> Path:
    rng = np.random.default_rng(16)
    ids = np.arange(rows)
    table = pa.table(
        {
            "customer_id": pc.binary_join_element_wise("C", pa.array(ids.astype(str)), ""),
            "email": pc.binary_join_element_wise(
                "user", pa.array(ids.astype(str)), "@example.com", ""
            ),
            "phone": pc.binary_join_element_wise(
                "+4930", pa.array(rng.integers(1_000_000, 9_999_999, rows).astype(str)), ""
            ),
            "full_name": pc.binary_join_element_wise("Name ", pa.array(ids.astype(str)), ""),
            "birth_date": pa.array(rng.integers(-10_000, 15_000, rows), pa.int32()).cast(
                pa.date32()
            ),
            "region": pa.array(np.where(rng.random(rows) < 0.5, "EU", "US")),
            "lifetime_value": pa.array(rng.random(rows) * 1000),
            "risk_score": pa.array(rng.integers(0, 100, rows)),
        }
    )
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "data" / "customers.parquet"
    pq.write_table(table, path, row_group_size=max(rows // 8, 1))
    (root / "customers.yaml").write_text(MANIFEST, encoding="utf-8")
    return path


def plain_copy(source: Path, target: Path) -> int:
    dataset = ds.dataset(source, format="parquet")
    rows = 0
    with pq.ParquetWriter(target, dataset.schema) as writer:
        for batch in dataset.to_batches(batch_size=65_536):
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


PRINCIPALS = {
    # Half the rows (region = 'EU'), masks on every PII column, one column hidden.
    "analyst-eu": Principal(id="analyst-eu", groups=["analysts"], attributes={"region": "EU"}),
    # Every row, the same masks: the e-mail of all 1M rows hashed.
    "auditor": Principal(id="auditor", groups=["auditors"], attributes={}),
}


def governed_copy(root: Path, who: str, target: Path) -> int:
    gateway = Gateway(load_catalog(root), load_bundle_dir(ROOT / "policies"))
    runner = GovernedRunner(KEY)
    plan = plan_export(
        gateway, PRINCIPALS[who], "analytics", "bench/customers", "customers", "b" * 32
    )
    try:
        return export_to(plan, runner, ExportFormat.parquet, target)  # as `meshgov export -o`
    finally:
        runner.close()


def measured(kind: str, root: str, who: str) -> tuple[float, int, float]:
    """One run in this (fresh) process: (seconds, rows, peak RSS in MB)."""
    base = Path(root)
    if kind == "governed":
        # The decision and the plan are prepared outside the timing (cached in a service).
        governed_copy(base, who, base / "warm.parquet")
    started = time.perf_counter()
    if kind == "plain":
        rows = plain_copy(base / "data" / "customers.parquet", base / "plain.parquet")
    else:
        rows = governed_copy(base, who, base / "governed.parquet")
    return time.perf_counter() - started, rows, peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = write_snapshot(root, args.rows)
        size_mb = source.stat().st_size / 1e6
        runs: dict[str, list[tuple[float, int, float]]] = {}
        for _ in range(args.repeat):
            for kind, who in (("plain", ""), ("governed", "analyst-eu"), ("governed", "auditor")):
                with ProcessPoolExecutor(1, mp_context=context) as pool:
                    result = pool.submit(measured, kind, tmp, who).result()
                runs.setdefault(f"{kind} {who}".strip(), []).append(result)
        emails = pq.read_table(source, columns=["email"])["email"].combine_chunks()
        hash_udf = keyed_hash(KEY)
        started = time.perf_counter()
        for offset in range(0, len(emails), 65_536):
            hash_udf(emails.slice(offset, 65_536))
        udf_per_row = (time.perf_counter() - started) / len(emails)
    best = {name: min(results) for name, results in runs.items()}
    plain = best["plain"][0]
    print(f"snapshot: {args.rows:,} rows, {size_mb:.1f} MB Parquet; best of {args.repeat}")
    print(
        f"plain pyarrow copy       : {plain * 1000:8.1f} ms  {best['plain'][1]:>9,} rows  "
        f"peak RSS {best['plain'][2]:.0f} MB"
    )
    verdict = True
    for name in ("governed analyst-eu", "governed auditor"):
        seconds, rows, rss = best[name]
        ratio = seconds / plain
        udf = udf_per_row * rows
        verdict &= ratio <= TARGET_RATIO
        print(
            f"{name:25}: {seconds * 1000:8.1f} ms  {rows:>9,} rows  peak RSS {rss:.0f} MB  "
            f"ratio {ratio:.2f}x (target <= {TARGET_RATIO}x); keyed hash alone on "
            f"{rows:,} e-mails {udf * 1000:.0f} ms, without it {(seconds - udf) / plain:.2f}x"
        )
    print("PASS" if verdict else "MISS")


if __name__ == "__main__":
    main()
