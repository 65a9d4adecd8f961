from __future__ import annotations

import pytest

from meshgov.core.manifest import Classification, parse_manifest
from meshgov.errors import ManifestError

GOOD = """\
apiVersion: meshgov/v1
kind: DataProduct
metadata:
  domain: customer
  name: customers
  version: 2.1.0
  owner: customer-data@acme.example
  description: One row per customer.
  status: active
spec:
  inputs:
    - {product: commerce/orders, port: orders}
  outputPorts:
    - name: customers
      kind: table
      table: customer.customers
      retention: 3y
      columns:
        - {name: customer_id, type: string, required: true, unique: true, entity: customer,
           classification: internal}
        - {name: email, type: string, classification: restricted, pii: true, piiCategory: email,
           mask: hash}
  access:
    grants:
      - to: {groups: [analysts]}
        purposes: [analytics]
        rowFilter: "region = {principal.region}"
"""


def test_parses_the_product_brief_example() -> None:
    manifest = parse_manifest(GOOD, "customers.yaml")
    assert manifest.id == "customer/customers"
    email = manifest.spec.output_ports[0].columns[1]
    assert email.pii and email.pii_category == "email"
    assert email.classification is Classification.restricted
    doc = manifest.policy_document()
    assert doc["spec"]["outputPorts"][0]["columns"][1]["piiCategory"] == "email"
    assert doc["semver_valid"] is True


def _alias_bomb(levels: int = 12) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


ALIAS_BOMB = _alias_bomb()


def test_unknown_key_names_key_and_line() -> None:
    text = GOOD.replace("      retention: 3y\n", "      retention: 3y\n      retension: 2y\n")
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "customers.yaml")
    assert "retension" in str(info.value)
    assert info.value.location is not None and info.value.location.line == 18


def test_wrong_type_names_the_path() -> None:
    with pytest.raises(ManifestError, match=r"columns\.0\.type"):
        parse_manifest(GOOD.replace("type: string, required", "type: varchar, required"), "c.yaml")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty document"),
        ("a: [1, 2", "invalid YAML"),
        ("- 1\n- 2\n", "must be a YAML mapping"),
        (ALIAS_BOMB, "alias bomb"),
    ],
)
def test_bad_documents_are_clear_errors(text: str, needle: str) -> None:
    with pytest.raises(ManifestError, match=needle):
        parse_manifest(text, "bad.yaml")
