"""One naming model everywhere: default schemas and the purpose as catalogue qualify a port."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from meshgov.catalog import load_catalog
from meshgov.core.principal import Principal
from meshgov.gateway import Gateway
from meshgov.policy_backends import load_bundle_dir

ROOT = Path(__file__).resolve().parents[1]
MESH = ROOT / "examples" / "mesh"
ANALYST = Principal(id="analyst-eu", groups=["analysts"], attributes={"region": "EU"})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Gateway:
    """The example mesh with commerce/products declared unqualified (``table: products``)."""
    mesh = tmp_path_factory.mktemp("mesh") / "mesh"
    shutil.copytree(MESH, mesh)
    manifest = mesh / "commerce" / "products.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert "table: commerce.products" in text
    manifest.write_text(text.replace("table: commerce.products", "table: products"), "utf-8")
    return Gateway(load_catalog(mesh), load_bundle_dir(ROOT / "policies"))


@pytest.mark.parametrize(
    "name",
    [
        "products",
        "public.products",
        "main.products",
        '"public"."products"',
        "analytics.public.products",
        "analytics.main.products",
    ],
)
def test_an_unqualified_port_is_named_with_or_without_its_default_schema(
    gateway: Gateway, name: str
) -> None:
    result = gateway.authorize(f"SELECT product_id FROM {name}", ANALYST, "analytics", "postgres")
    assert result.allowed, result.reason
    assert [t.product for t in result.tables] == ["commerce/products"]


@pytest.mark.parametrize(
    "name",
    ["customer.customers", "analytics.customer.customers", "marketing.customer.customers"],
)
def test_a_purpose_as_catalogue_qualifies_a_schema_qualified_port(
    gateway: Gateway, name: str
) -> None:
    result = gateway.authorize(f"SELECT region FROM {name}", ANALYST, "analytics", "postgres")
    assert result.allowed, result.reason


@pytest.mark.parametrize(
    "name",
    [
        "public.customers",  # the port is customer.customers, not in the default schema
        "other.public.products",  # a catalogue that is no purpose
        "crm.products",  # a schema that is not a default one
        '"Products"',  # quoted: case-sensitive in postgres
    ],
)
def test_other_qualifications_are_unknown_tables(gateway: Gateway, name: str) -> None:
    result = gateway.authorize(f"SELECT 1 FROM {name}", ANALYST, "analytics", "postgres")
    assert not result.allowed
    assert "unknown table" in (result.reason or "")
