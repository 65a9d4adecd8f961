"""What the adversarial suite knows: the secrets of the example mesh, the key, the principals."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from meshgov.core.principal import Principal, parse_principal

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
# A key unlike anything in the data, so that finding it in an output is unambiguous.
HASH_KEY = b"adversarial-suite-key-5c1f9e2a"
CUSTOMER_ID = re.compile(r"C\d{7}")


@dataclass
class Secrets:
    """Everything an EU analyst must never receive, read straight from the snapshots."""

    raw_values: set[str] = field(default_factory=set)  # emails, phones, names, card numbers
    us_customer_ids: set[str] = field(default_factory=set)
    us_email_hashes: set[str] = field(default_factory=set)
    eu_customer_ids: set[str] = field(default_factory=set)
    eu_emails: list[str] = field(default_factory=list)
    us_emails: list[str] = field(default_factory=list)
    eu_names: list[str] = field(default_factory=list)
    eu_count: int = 0


def keyed_hash(value: str) -> str:
    return hashlib.sha256(HASH_KEY + value.encode()).hexdigest()


def read_secrets() -> Secrets:
    found = Secrets()
    customers = pq.read_table(MESH / "customer" / "data" / "customers.parquet").to_pylist()
    for row in customers:
        found.raw_values.update(
            str(row[c]) for c in ("email", "phone", "full_name") if row[c] is not None
        )
        if row["region"] == "US":
            found.us_customer_ids.add(row["customer_id"])
            if row["email"]:
                found.us_emails.append(row["email"])
                found.us_email_hashes.add(keyed_hash(row["email"]))
        else:
            found.eu_customer_ids.add(row["customer_id"])
            found.eu_count += 1
            if row["email"]:
                found.eu_emails.append(row["email"])
            if row["full_name"]:
                found.eu_names.append(row["full_name"])
    audience = pq.read_table(MESH / "marketing" / "data" / "campaign_audience.parquet")
    found.raw_values.update(e for e in audience.column("email").to_pylist() if e)
    for table, id_column in (
        ("marketing/data/campaign_audience.parquet", "client_id"),
        ("marketing/data/customer_360.parquet", "customer_id"),
        ("payments/data/payments.parquet", "cust_ref"),
        ("commerce/data/orders.parquet", "customer_id"),
    ):
        rows = pq.read_table(MESH / table, columns=[id_column, "region"]).to_pylist()
        found.us_customer_ids.update(r[id_column] for r in rows if r["region"] == "US")
    cards = pq.read_table(MESH / "payments" / "data" / "payments.parquet", columns=["card_number"])
    found.raw_values.update(c for c in cards.column("card_number").to_pylist() if c)
    # Short values (empty strings, bare digits) would match anywhere; secrets are long.
    found.raw_values = {v for v in found.raw_values if len(v) >= 6}
    return found


def principal(name: str) -> Principal:
    path = MESH / "principals" / f"{name}.yaml"
    return parse_principal(path.read_text(encoding="utf-8"), str(path))
