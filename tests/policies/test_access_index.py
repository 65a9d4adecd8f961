"""The access view's index (``data.catalog.access``): small levels at any size, and the access
policy finds every product through it, on both engines, and nothing else (fail closed)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from meshgov.access_data import ACCESS_INDEX_DEPTH, access_index, catalog_policy_data, indexed_view
from meshgov.catalog import load_catalog
from meshgov.gateway import ACCESS_ENTRYPOINT, ACCESS_QUERY
from meshgov.policy_backends import engine_from_url, load_bundle_dir

ROOT = Path(__file__).resolve().parents[2]


def _levels(index: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each level's objects that Rego walks: the ``by`` of every node, then the leaves."""
    nodes = [index]
    levels = []
    for _ in range(ACCESS_INDEX_DEPTH):
        levels.append([node["by"] for node in nodes])
        nodes = [child for node in nodes for child in node["by"].values()]
    return [*levels, nodes]


def test_every_level_of_ten_thousand_products_holds_few_keys() -> None:
    ids = [f"d{i // 100:03d}/p{i:05d}" for i in range(10_000)]
    index = access_index({pid: {"id": pid} for pid in ids})
    *levels, leaves = _levels(index)
    assert max(len(node) for level in levels for node in level) <= 10
    assert max(len(leaf) for leaf in leaves) <= 10
    assert all(indexed_view(index, pid) == {"id": pid} for pid in ids)
    assert indexed_view(index, "d000/p10000") is None
    assert indexed_view(index, "") is None


def test_ids_of_other_lengths_and_alphabets_are_grouped_too() -> None:
    names = ["customers", "orders", "order_items", "payments", "customer_360", "audience"]
    ids = [
        f"{domain}/{name}_{n}"
        for domain in ("sales", "hr", "marketing")
        for name in names
        for n in range(40)
    ]
    index = access_index({pid: pid for pid in ids})
    assert max(len(leaf) for leaf in _levels(index)[-1]) <= len(ids) // 20
    assert all(indexed_view(index, pid) == pid for pid in ids)


def test_an_empty_catalogue_has_an_index_that_finds_nothing() -> None:
    index = access_index({})
    assert indexed_view(index, "customer/customers") is None


@pytest.mark.parametrize("engine", ["embedded", "regorus"])
def test_the_policy_finds_every_product_of_a_larger_mesh_and_nothing_else(engine: str) -> None:
    catalog = load_catalog(str(ROOT / "examples" / "mesh"))
    template = catalog.manifests["customer/customers"].policy_document()
    products: dict[str, Any] = {}
    for i in range(150):
        domain, name = f"d{i % 7}", f"{['customers', 'orders', 'items'][i % 3]}_{i}"
        doc = copy.deepcopy(template)
        doc["id"] = f"{domain}/{name}"
        doc["metadata"] = {**doc["metadata"], "domain": domain, "name": name}
        products[doc["id"]] = doc
    data = {"catalog": {"access": catalog_policy_data(products)["catalog"]["access"]}}
    policy = engine_from_url(engine).prepare(
        load_bundle_dir(ROOT / "policies"), data, entrypoints=[ACCESS_ENTRYPOINT]
    )
    request = {
        "principal": {
            "id": "ann",
            "groups": ["analysts"],
            "domain": "analytics",
            "attributes": {"region": "EU", "clearances": []},
        },
        "purpose": "analytics",
        "port": "customers",
    }
    for pid in products:
        decision = policy.evaluate(ACCESS_QUERY, {**request, "product": pid})
        assert decision["allow"] is True, (pid, decision["reasons"])
    for missing in [
        "d0/customers_1",
        "d0/customers_0x",
        "d0/customers_",
        "customer/customers",
        "",
        7,
    ]:
        decision = policy.evaluate(ACCESS_QUERY, {**request, "product": missing})
        assert decision["allow"] is False
        assert decision["reasons"][0].startswith("unknown product "), decision["reasons"]


def _random_ids(seed: int, count: int) -> list[str]:
    """Ids of odd shapes: any characters (slashes, dots, quotes, combining marks, letters
    outside the BMP, ones that differ only by case or normalisation), empty, long, and ids that
    are prefixes of others."""
    import random

    rng = random.Random(seed)
    alphabet = [*"ab/._-'\"\\ 0", "é", "e\u0301", "É", "ß", "😀", "中", "\u200b"]
    ids: set[str] = set()
    while len(ids) < count:
        length = rng.choice([0, 1, 2, 3, 5, 8, 13, 40, 300])
        pid = "".join(rng.choice(alphabet) for _ in range(length))
        ids.add(pid)
        if pid and rng.random() < 0.3:
            ids.add(pid[:-1])  # a prefix of another id
    return sorted(ids)


@pytest.mark.parametrize("engine", ["embedded", "regorus"])
def test_random_ids_find_exactly_their_own_view(engine: str) -> None:
    """Brute force: for every id and every port name, the decision finds the product iff the id
    is one, and then its own view (each product has a port of its own name). On the embedded
    engine an id that JSON escapes or that is not ASCII may be not found (rego-cpp's substring
    counts in a string's JSON text): a denial, never another product's view."""
    import json

    catalog = load_catalog(str(ROOT / "examples" / "mesh"))
    template = catalog.manifests["customer/customers"].policy_document()
    ids = _random_ids(7, 240)
    products: dict[str, Any] = {}
    ports: dict[str, str] = {}
    for i, pid in enumerate(ids[::2]):  # every other id is a product; the others are not
        doc = copy.deepcopy(template)
        doc["id"] = pid
        port = copy.deepcopy(doc["spec"]["outputPorts"][0])
        port["name"] = ports[pid] = f"port{i}"
        doc["spec"]["outputPorts"] = [port]
        products[pid] = doc
    data = {"catalog": {"access": catalog_policy_data(products)["catalog"]["access"]}}
    policy = engine_from_url(engine).prepare(
        load_bundle_dir(ROOT / "policies"), data, entrypoints=[ACCESS_ENTRYPOINT]
    )
    request = {"principal": {"id": "ann", "groups": [], "attributes": {}}, "purpose": "x"}
    port_names = sorted(set(ports.values()))
    probes = [*ids, *(pid.upper() for pid in ids), *(pid + "\u0301" for pid in ids[:20])]
    for pid in probes:
        own = ports.get(pid)
        for port in {own or port_names[0], port_names[len(pid) % len(port_names)]}:
            reason = policy.evaluate(ACCESS_QUERY, {**request, "product": pid, "port": port})[
                "reasons"
            ][0]
            if pid not in products or (
                engine == "embedded"
                and json.dumps(pid)[1:-1] != pid
                and reason.startswith("unknown product ")
            ):
                assert reason.startswith("unknown product "), (pid, port, reason)
            elif port != own:
                assert "has no output port" in reason, (pid, port, reason)
            else:
                assert "unknown product" not in reason and "no output port" not in reason, (
                    pid,
                    reason,
                )
