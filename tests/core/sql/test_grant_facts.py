"""Row filters that cannot be applied, found at release (the gate's row_filter_facts)."""

from __future__ import annotations

from pathlib import Path

import yaml

from meshgov.core.manifest import Manifest
from meshgov.core.sql.grant_facts import grant_label, row_filter_facts

ROOT = Path(__file__).resolve().parents[3]
CUSTOMERS = ROOT / "examples" / "mesh" / "customer" / "customers.yaml"


def _with_grants(grants: list[dict[str, object]]) -> Manifest:
    document = yaml.safe_load(CUSTOMERS.read_text(encoding="utf-8"))
    document["spec"]["access"]["grants"] = grants
    return Manifest.model_validate(document)


def test_the_example_filters_are_applicable() -> None:
    assert (
        row_filter_facts(
            _with_grants(yaml.safe_load(CUSTOMERS.read_text())["spec"]["access"]["grants"])
        )
        == []
    )


def test_an_unknown_column_is_named_per_port_and_placeholders_are_not_columns() -> None:
    manifest = _with_grants(
        [
            {
                "to": {"groups": ["analysts"], "ids": ["ann"]},
                "rowFilter": "regoin = {principal.region} AND region <> {principal.id}",
            }
        ]
    )
    assert row_filter_facts(manifest) == [
        {
            "grant": "ids ann; groups analysts",
            "index": 0,
            "port": "customers",
            "column": "regoin",
            "problem": "column 'regoin' is not a column of port 'customers'",
        }
    ]


def test_a_filter_outside_the_allow_list_or_unparseable_is_one_fact() -> None:
    manifest = _with_grants(
        [
            {"to": {"groups": ["a"]}, "rowFilter": "region IN (SELECT region FROM secrets)"},
            {"to": {"groups": ["b"]}, "rowFilter": "region = = 'EU'"},
            {
                "to": {"groups": ["c"]},
                "rowFilter": "REGION = 'EU'",
            },  # names match case-insensitively
        ]
    )
    facts = row_filter_facts(manifest)
    assert [(f["grant"], f["port"]) for f in facts] == [("groups a", None), ("groups b", None)]
    assert "subqueries and table references are not allowed" in facts[0]["problem"]
    assert "cannot be parsed" in facts[1]["problem"]


def test_grant_label_matches_the_release_policy() -> None:
    manifest = _with_grants([{"to": {"domains": ["marketing"], "groups": ["x", "y"]}}])
    assert grant_label(manifest.spec.access.grants[0]) == "groups x, y; domains marketing"
