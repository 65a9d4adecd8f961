"""Write the Parquet snapshots of the example mesh (deterministic: seeded, no network).

The manifests under ``examples/mesh/`` are hand-written; this script only produces the data they
point to (``data/<product>.parquet`` next to each manifest). Identifiers join across products: every
order belongs to a generated customer, every payment to an order, and so on.

    python examples/generate_mesh.py [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_SEED = 20260601
MESH_DIR = Path(__file__).resolve().parent / "mesh"
BROKEN_DIR = Path(__file__).resolve().parent / "broken"

CUSTOMER_COUNT = 3000
PRODUCT_COUNT = 1200
ORDER_COUNT = 8000
CENTS = Decimal("0.01")
MONEY = pa.decimal128(12, 2)
LAST_DAY = dt.date(2026, 6, 30)

FIRST_NAMES = [
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karla",
    "Leon", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Samuel", "Tara", "Uma", "Victor",
    "Wendy", "Xavier", "Yara", "Zoe", "Liam", "Emma", "Lucas", "Sofia", "Mateo", "Chloe",
]  # fmt: skip
LAST_NAMES = [
    "Schmidt", "Martin", "Rossi", "Garcia", "Smith", "Johnson", "Brown", "Muller", "Dubois",
    "Novak", "Jansen", "Silva", "Kowalski", "Lindqvist", "Walsh", "Murphy", "Lee", "Nguyen",
    "Patel", "Kim", "Lopez", "Fischer", "Weber", "Moreau", "Costa", "Bauer", "Evans", "Clark",
]  # fmt: skip
EMAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example"]
# (country calling code, area code, local digits) for EU phone numbers.
EU_PHONE_PREFIXES = [("+49", "30", 7), ("+33", "1", 8), ("+31", "20", 7), ("+39", "06", 8)]
US_AREA_CODES = ["212", "415", "312", "617", "206", "512"]
CATEGORIES = {
    "books": (8, 60),
    "electronics": (25, 900),
    "garden": (5, 250),
    "kitchen": (6, 180),
    "sports": (10, 400),
    "toys": (5, 120),
    "fashion": (12, 300),
}
ADJECTIVES = ["Classic", "Compact", "Deluxe", "Eco", "Smart", "Ultra", "Urban", "Vintage", "Pro"]
NOUNS = {
    "books": ["Novel", "Cookbook", "Atlas", "Guide", "Anthology"],
    "electronics": ["Headphones", "Speaker", "Tablet", "Charger", "Camera"],
    "garden": ["Hose", "Planter", "Shears", "Lantern", "Seed Kit"],
    "kitchen": ["Kettle", "Pan", "Knife Set", "Blender", "Mug"],
    "sports": ["Racket", "Yoga Mat", "Helmet", "Bottle", "Backpack"],
    "toys": ["Puzzle", "Robot", "Board Game", "Kite", "Blocks"],
    "fashion": ["Jacket", "Scarf", "Sneakers", "Hat", "Belt"],
}
ORDER_STATUSES = ["delivered"] * 14 + ["shipped"] * 3 + ["placed"] * 2 + ["cancelled", "returned"]
CAMPAIGNS = [
    "spring-sale-2026",
    "summer-outdoor-2026",
    "back-to-school-2025",
    "black-friday-2025",
    "holiday-gifts-2025",
    "loyalty-vip-2026",
    "win-back-2026",
    "newsletter-weekly",
]


@dataclass(frozen=True)
class Customer:
    customer_id: str
    full_name: str
    email: str
    phone: str | None
    birth_date: dt.date
    postcode: str
    gender: str
    region: str
    signup_date: dt.date


@dataclass(frozen=True)
class Order:
    order_id: str
    customer: Customer
    order_date: dt.date
    status: str
    currency: str
    amount: Decimal


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def _luhn_complete(digits: str) -> str:
    """Append the Luhn check digit, so that card numbers look real to a scanner."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return digits + str((10 - total % 10) % 10)


def _phone(rng: random.Random, region: str) -> str:
    if region == "US":
        return f"+1 {rng.choice(US_AREA_CODES)}-555-{rng.randint(0, 9999):04d}"
    country, area, length = rng.choice(EU_PHONE_PREFIXES)
    local = "".join(str(rng.randint(0, 9)) for _ in range(length))
    return f"{country} {area} {local}"


def make_customers(rng: random.Random) -> list[Customer]:
    customers = []
    for index in range(CUSTOMER_COUNT):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        region = "EU" if rng.random() < 0.55 else "US"
        customers.append(
            Customer(
                customer_id=f"C{1_000_000 + index:07d}",
                full_name=f"{first} {last}",
                email=f"{first}.{last}{index}@{rng.choice(EMAIL_DOMAINS)}".lower(),
                phone=_phone(rng, region) if rng.random() < 0.9 else None,
                birth_date=_random_date(rng, dt.date(1945, 1, 1), dt.date(2006, 12, 31)),
                postcode=f"{rng.randint(1000, 99999):05d}",
                gender=rng.choices(["F", "M", "X"], weights=[48, 48, 4])[0],
                region=region,
                signup_date=_random_date(rng, dt.date(2019, 1, 1), dt.date(2025, 12, 31)),
            )
        )
    return customers


def make_products(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for index in range(PRODUCT_COUNT):
        category = rng.choice(sorted(CATEGORIES))
        low, high = CATEGORIES[category]
        price = Decimal(rng.uniform(low, high)).quantize(CENTS)
        rows.append(
            {
                "product_id": f"P{10_000 + index:05d}",
                "product_name": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS[category])}",
                "category": category,
                "list_price": price,
                "currency": "EUR",
                "active": rng.random() < 0.92,
                "launched_on": _random_date(rng, dt.date(2018, 1, 1), dt.date(2026, 3, 31)),
            }
        )
    return rows


def make_orders(
    rng: random.Random, customers: Sequence[Customer], products: Sequence[dict[str, Any]]
) -> tuple[list[Order], list[dict[str, Any]]]:
    # A few loyal customers order often; most order a handful of times.
    weights = [rng.paretovariate(2.0) for _ in customers]
    orders: list[Order] = []
    items: list[dict[str, Any]] = []
    picked = rng.choices(list(customers), weights=weights, k=ORDER_COUNT)
    for index, customer in enumerate(picked):
        order_id = f"O{10_000_000 + index:08d}"
        currency = "EUR" if customer.region == "EU" else "USD"
        rate = Decimal("1.00") if currency == "EUR" else Decimal("1.08")
        amount = Decimal("0.00")
        for line in range(1, rng.randint(1, 4) + 1):
            product = rng.choice(products)
            quantity = rng.choices([1, 2, 3, 5], weights=[70, 20, 7, 3])[0]
            unit_price = (product["list_price"] * rate).quantize(CENTS)
            amount += unit_price * quantity
            items.append(
                {
                    "order_id": order_id,
                    "line_number": line,
                    "product_id": product["product_id"],
                    "quantity": quantity,
                    "unit_price": unit_price,
                    "currency": currency,
                }
            )
        orders.append(
            Order(
                order_id=order_id,
                customer=customer,
                order_date=_random_date(rng, customer.signup_date, LAST_DAY),
                status=rng.choice(ORDER_STATUSES),
                currency=currency,
                amount=amount,
            )
        )
    orders.sort(key=lambda order: (order.order_date, order.order_id))
    return orders, items


def make_payments(
    rng: random.Random, orders: Sequence[Order], customers: Sequence[Customer]
) -> list[dict[str, Any]]:
    # One card per customer, so that fraud investigators can follow a card across orders.
    cards = {
        c.customer_id: _luhn_complete("4" + "".join(str(rng.randint(0, 9)) for _ in range(14)))
        for c in customers
    }
    rows: list[dict[str, Any]] = []
    for order in orders:
        if order.status == "cancelled" and rng.random() < 0.7:
            continue  # cancelled before payment
        attempts = ["failed"] if rng.random() < 0.05 else []
        attempts.append("refunded" if order.status == "returned" else "captured")
        paid_at = dt.datetime.combine(order.order_date, dt.time()) + dt.timedelta(
            minutes=rng.randint(1, 24 * 60 - 30)
        )
        for status in attempts:
            rows.append(
                {
                    "payment_id": f"PAY{len(rows) + 1:08d}",
                    "order_id": order.order_id,
                    "cust_ref": order.customer.customer_id,
                    "card_number": cards[order.customer.customer_id],
                    "amount": order.amount,
                    "currency": order.currency,
                    "status": status,
                    "paid_at": paid_at,
                    "region": order.customer.region,
                }
            )
            paid_at += dt.timedelta(minutes=rng.randint(1, 20))
    return rows


def _segment(order_count: int, spend: Decimal, last_order: dt.date | None) -> str:
    if last_order is None:
        return "new"
    if (LAST_DAY - last_order).days > 365:
        return "dormant"
    if order_count >= 6 or spend >= Decimal("1500"):
        return "vip"
    return "regular"


def make_marketing(
    rng: random.Random,
    customers: Sequence[Customer],
    orders: Sequence[Order],
    payments: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    stats: dict[str, dict[str, Any]] = {
        c.customer_id: {"orders": 0, "spend": Decimal("0.00"), "last": None, "failed": 0}
        for c in customers
    }
    for order in orders:
        entry = stats[order.customer.customer_id]
        entry["orders"] += 1
        if order.status not in ("cancelled", "returned"):
            entry["spend"] += order.amount
        if entry["last"] is None or order.order_date > entry["last"]:
            entry["last"] = order.order_date
    for payment in payments:
        if payment["status"] == "failed":
            stats[payment["cust_ref"]]["failed"] += 1

    audience: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for customer in customers:
        entry = stats[customer.customer_id]
        segment = _segment(entry["orders"], entry["spend"], entry["last"])
        consent = rng.random() < 0.72
        consent_date = _random_date(rng, customer.signup_date, LAST_DAY)
        if consent or rng.random() < 0.1:  # withdrawn consents stay listed, flagged
            for campaign in rng.sample(CAMPAIGNS, k=rng.choice([1, 1, 2])):
                audience.append(
                    {
                        "client_id": customer.customer_id,
                        "campaign": campaign,
                        "email": customer.email,
                        "segment": segment,
                        "consent": consent,
                        "consent_date": consent_date,
                        "region": customer.region,
                    }
                )
        profiles.append(
            {
                "customer_id": customer.customer_id,
                "region": customer.region,
                "signup_year": customer.signup_date.year,
                "order_count": entry["orders"],
                "total_spend": entry["spend"],
                "spend_currency": "EUR" if customer.region == "EU" else "USD",
                "last_order_date": entry["last"],
                "failed_payment_count": entry["failed"],
                "segment": segment,
                "marketing_consent": consent,
            }
        )
    audience.sort(key=lambda row: (row["campaign"], row["client_id"]))
    return audience, profiles


def _customer_rows(customers: Sequence[Customer]) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": c.customer_id,
            "email": c.email,
            "phone": c.phone,
            "full_name": c.full_name,
            "birth_date": c.birth_date,
            "postcode": c.postcode,
            "gender": c.gender,
            "region": c.region,
            "signup_date": c.signup_date,
        }
        for c in customers
    ]


def _order_rows(orders: Sequence[Order]) -> list[dict[str, Any]]:
    return [
        {
            "order_id": o.order_id,
            "customer_id": o.customer.customer_id,
            "amount": o.amount,
            "currency": o.currency,
            "order_date": o.order_date,
            "status": o.status,
            "region": o.customer.region,
        }
        for o in orders
    ]


STRING = pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    "customer/customers": pa.schema(
        [
            pa.field("customer_id", STRING, nullable=False),
            ("email", STRING),
            ("phone", STRING),
            ("full_name", STRING),
            ("birth_date", pa.date32()),
            ("postcode", STRING),
            ("gender", STRING),
            ("region", STRING),
            ("signup_date", pa.date32()),
        ]
    ),
    "commerce/products": pa.schema(
        [
            pa.field("product_id", STRING, nullable=False),
            ("product_name", STRING),
            ("category", STRING),
            ("list_price", MONEY),
            ("currency", STRING),
            ("active", pa.bool_()),
            ("launched_on", pa.date32()),
        ]
    ),
    "commerce/orders": pa.schema(
        [
            pa.field("order_id", STRING, nullable=False),
            ("customer_id", STRING),
            ("amount", MONEY),
            ("currency", STRING),
            ("order_date", pa.date32()),
            ("status", STRING),
            ("region", STRING),
        ]
    ),
    "commerce/order_items": pa.schema(
        [
            pa.field("order_id", STRING, nullable=False),
            pa.field("line_number", pa.int64(), nullable=False),
            ("product_id", STRING),
            ("quantity", pa.int64()),
            ("unit_price", MONEY),
            ("currency", STRING),
        ]
    ),
    "payments/payments": pa.schema(
        [
            pa.field("payment_id", STRING, nullable=False),
            ("order_id", STRING),
            ("cust_ref", STRING),
            ("card_number", STRING),
            ("amount", MONEY),
            ("currency", STRING),
            ("status", STRING),
            ("paid_at", pa.timestamp("us")),
            ("region", STRING),
        ]
    ),
    "marketing/campaign_audience": pa.schema(
        [
            pa.field("client_id", STRING, nullable=False),
            pa.field("campaign", STRING, nullable=False),
            ("email", STRING),
            ("segment", STRING),
            ("consent", pa.bool_()),
            ("consent_date", pa.date32()),
            ("region", STRING),
        ]
    ),
    "marketing/customer_360": pa.schema(
        [
            pa.field("customer_id", STRING, nullable=False),
            ("region", STRING),
            ("signup_year", pa.int64()),
            ("order_count", pa.int64()),
            ("total_spend", MONEY),
            ("spend_currency", STRING),
            ("last_order_date", pa.date32()),
            ("failed_payment_count", pa.int64()),
            ("segment", STRING),
            ("marketing_consent", pa.bool_()),
        ]
    ),
}


def generate_tables(seed: int = DEFAULT_SEED) -> dict[str, pa.Table]:
    """Every snapshot of the mesh, keyed by product id (``domain/name``)."""
    rng = random.Random(seed)
    customers = make_customers(rng)
    products = make_products(rng)
    orders, items = make_orders(rng, customers, products)
    payments = make_payments(rng, orders, customers)
    audience, profiles = make_marketing(rng, customers, orders, payments)
    rows: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "customer/customers": lambda: _customer_rows(customers),
        "commerce/products": lambda: products,
        "commerce/orders": lambda: _order_rows(orders),
        "commerce/order_items": lambda: items,
        "payments/payments": lambda: payments,
        "marketing/campaign_audience": lambda: audience,
        "marketing/customer_360": lambda: profiles,
    }
    return {
        product: pa.Table.from_pylist(make(), schema=SCHEMAS[product])
        for product, make in rows.items()
    }


def snapshot_path(root: Path, product: str) -> Path:
    """Where a product's snapshot lives: ``<domain>/data/<name>.parquet`` under the mesh."""
    domain, name = product.split("/")
    return root / domain / "data" / f"{name}.parquet"


def write_mesh(root: Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    written = {}
    for product, table in generate_tables(seed).items():
        path = snapshot_path(root, product)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        written[product] = path
    return written


def broken_snapshots(seed: int = DEFAULT_SEED) -> dict[str, list[dict[str, str]]]:
    """Small CSV snapshots for ``examples/broken``: PII where the manifests do not declare it."""
    rng = random.Random(seed + 1)
    customers = make_customers(random.Random(seed))[:40]
    topics = ["delivery", "refund", "invoice", "account", "damaged item"]
    tickets = [
        {
            "ticket_id": f"T{500_000 + index}",
            "contact": customer.email,
            "topic": rng.choice(topics),
            "opened_on": _random_date(rng, dt.date(2026, 1, 1), LAST_DAY).isoformat(),
        }
        for index, customer in enumerate(customers)
    ]
    callbacks = [
        {
            "callback_id": f"CB{700_000 + index}",
            "contact": _phone(rng, customer.region),
            "requested_on": _random_date(rng, dt.date(2026, 1, 1), LAST_DAY).isoformat(),
        }
        for index, customer in enumerate(customers)
    ]
    return {"ticket_log": tickets, "callback_log": callbacks}


def write_broken_snapshots(root: Path, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    written = {}
    for name, rows in broken_snapshots(seed).items():
        path = root / "data" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written[name] = path
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=MESH_DIR, help="mesh root (default: %(default)s)"
    )
    parser.add_argument(
        "--broken-out", type=Path, default=BROKEN_DIR, help="broken examples (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    for product, path in write_mesh(args.out, args.seed).items():
        rows = pq.read_metadata(path).num_rows
        print(f"{product:30} {rows:6} rows  {path}")
    for name, path in write_broken_snapshots(args.broken_out, args.seed).items():
        print(f"{'broken: ' + name:30}     40 rows  {path}")


if __name__ == "__main__":
    main()
