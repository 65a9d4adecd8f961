"""YAML 1.1's other booleans (``NO``, ``yes``, ``on``, ``off``…) are text, in every document
meshgov reads: a country code ``NO`` in a principal's attributes must reach a row filter as
``'NO'``, not as ``FALSE``."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgov.catalog import load_catalog
from meshgov.core.manifest import parse_manifest
from meshgov.core.principal import parse_principal
from meshgov.core.yaml_source import load_yaml

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
GOOD = (ROOT / "tests" / "fixtures" / "check" / "mesh" / "shop" / "customers.yaml").read_text()

YAML11_ONLY = ["NO", "No", "no", "YES", "Yes", "yes", "ON", "On", "on", "OFF", "Off", "off"]


@pytest.mark.parametrize("word", YAML11_ONLY)
def test_yaml11_booleans_are_text(word: str) -> None:
    assert load_yaml(f"x: {word}\ny: [{word}]\n", "f.yaml").data == {"x": word, "y": [word]}


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False),
     ("FALSE", False), ("!!bool yes", True), ("!!bool off", False)],
)  # fmt: skip
def test_yaml12_booleans_and_explicit_tags_are_booleans(word: str, value: bool) -> None:
    assert load_yaml(f"x: {word}\n", "f.yaml").data == {"x": value}


def test_principal_country_code_no_is_text() -> None:
    principal = parse_principal("id: a\nattributes:\n  country: NO\n  active: true\n", "p.yaml")
    assert principal.attributes == {"country": "NO", "active": True}


def test_principal_region_no_reaches_the_row_filter_as_text(tmp_path: Path) -> None:
    from meshgov.gateway import Gateway
    from meshgov.policy_backends import load_bundle_dir

    text = (MESH / "principals" / "analyst-eu.yaml").read_text().replace("region: EU", "region: NO")
    principal = parse_principal(text, "analyst-no.yaml")
    gateway = Gateway(load_catalog(MESH), load_bundle_dir(ROOT / "policies"))
    authorization = gateway.authorize(
        "SELECT order_id FROM commerce.orders", principal, "analytics", "duckdb"
    )
    assert authorization.allowed, authorization.reason
    assert authorization.sql is not None
    assert "\"region\" = 'NO'" in authorization.sql
    assert "FALSE" not in authorization.sql.upper()


def test_manifest_column_named_on_is_text() -> None:
    text = GOOD.replace(
        "      columns:\n", "      columns:\n        - {name: on, type: string}\n", 1
    )
    assert text != GOOD
    manifest = parse_manifest(text, "customers.yaml")
    names = [c.name for port in manifest.spec.output_ports for c in port.columns]
    assert "on" in names
