"""ODCS v3 contracts read into the meshgov model, and errors that name the place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshgov.catalog import load_manifest
from meshgov.cli import app
from meshgov.core.manifest import Classification, LogicalType, MaskKind, Status, parse_manifest
from meshgov.errors import ManifestError

ROOT = Path(__file__).resolve().parents[2]

# The example of manifest-standards.md section 1, verbatim apart from indentation.
REFERENCE_EXAMPLE = """\
apiVersion: v3.1.0
kind: DataContract
id: sales-orders
name: orders
version: 2.1.0
status: active
domain: sales
description: {purpose: Confirmed customer orders for analytics., usage: Aggregated reporting only.}
team: {name: sales-data, members: [{username: alice@acme.example, role: owner}]}
roles: [{role: sales_orders_reader, access: read, firstLevelApprovers: sales-data owner}]
slaProperties: [{property: latency, value: 4, unit: h}, {property: retention, value: 3, unit: y}]
schema:
  - id: orders_obj
    name: orders
    physicalName: sales.orders_v2
    physicalType: table
    logicalType: object
    customProperties: [{property: classification, value: confidential}]
    properties:
      - {id: order_id_prop, name: order_id, logicalType: string, primaryKey: true,
         primaryKeyPosition: 1, required: true, unique: true, classification: internal}
      - id: customer_id_prop
        name: customer_id
        logicalType: string
        required: true
        classification: confidential
        authoritativeDefinitions: [{type: semantics, url: "https://id.acme.example/entity/Customer"}]
        relationships: [{to: "crm-customers.odcs.yaml#/schema/customers_obj/properties/cid"}]
        customProperties:
          - {property: pii, value: true}
          - {property: entityIdentifier, value: "https://id.acme.example/entity/Customer"}
      - id: email_prop
        name: customer_email
        logicalType: string
        logicalTypeOptions: {format: email}
        classification: restricted
        customProperties: [{property: pii, value: true}]
        quality: [{metric: nullValues, mustBe: 0, severity: error}]
      - {id: note_prop, name: note, logicalType: string}
"""

MINIMAL = """\
apiVersion: {version}
kind: DataContract
id: c1
name: things
version: 1.0.0
status: {status}
domain: shop
team: {team}
schema:
  - name: things
    physicalName: shop.things
    properties:
{properties}
"""


def _minimal(
    properties: str = "      - {name: thing_id, logicalType: string}",
    *,
    version: str = "v3.1.0",
    status: str = "active",
    team: str = "{name: shop-team}",
) -> str:
    return MINIMAL.format(version=version, status=status, team=team, properties=properties)


def _without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


def test_sample_contract_normalises_to_the_equivalent_meshgov_manifest() -> None:
    odcs = load_manifest(ROOT / "examples" / "odcs" / "payments.odcs.yaml")
    native = load_manifest(ROOT / "examples" / "mesh" / "payments" / "payments.yaml")
    odcs_doc = odcs.policy_document()
    native_doc = native.policy_document()
    assert odcs_doc["sourceFormat"] == "odcs/v3.1.0"
    assert native_doc["sourceFormat"] == "meshgov/v1"
    # ODCS has no snapshot file: the only difference in the model is the port's `data`.
    for doc in (odcs_doc, native_doc):
        for port in doc["spec"]["outputPorts"]:
            port.pop("data")
    assert _without(odcs_doc, "source", "sourceFormat") == _without(
        native_doc, "source", "sourceFormat"
    )


def test_unknown_custom_properties_are_kept_outside_the_policy_input() -> None:
    manifest = load_manifest(ROOT / "examples" / "odcs" / "payments.odcs.yaml")
    kept = manifest.extensions["customProperties"]
    assert kept["contract"] == {"costCenter": "CC-4711"}
    assert kept["columns"]["payments.card_number"] == {"pciScope": True}
    assert manifest.extensions["contract"]["id"] == "5b0f3c4e-payments-payments"
    assert "costCenter" not in str(manifest.policy_document())


def test_reads_the_reference_example() -> None:
    manifest = parse_manifest(REFERENCE_EXAMPLE, "orders.odcs.yaml")
    assert manifest.id == "sales/orders"
    assert manifest.metadata.owner == "alice@acme.example"
    assert manifest.metadata.description == "Confirmed customer orders for analytics."
    assert manifest.metadata.status is Status.active
    port = manifest.spec.output_ports[0]
    assert port.table == "sales.orders_v2"
    assert port.retention == "3y"
    assert port.sla is not None
    assert port.sla.latency == "4h"
    columns = {c.name: c for c in port.columns}
    assert columns["order_id"].primary_key
    assert columns["order_id"].classification is Classification.internal
    customer = columns["customer_id"]
    assert customer.entity == "customer"
    assert customer.pii
    assert customer.classification is Classification.confidential
    email = columns["customer_email"]
    assert email.pii
    assert email.format == "email"
    assert email.classification is Classification.restricted
    # The object-level classification is the default for properties that declare none.
    assert columns["note"].classification is Classification.confidential
    grant = manifest.spec.access.grants[0]
    assert grant.to.groups == ["sales_orders_reader"]
    assert manifest.extensions["description"] == {"usage": "Aggregated reporting only."}


def test_reads_v3_2_enums_and_the_v3_0_team_list() -> None:
    properties = (
        "      - {name: colour, logicalType: string, enum: [{value: red, label: Red}, "
        "{value: blue}]}\n"
        "      - {name: price, logicalType: number, physicalType: 'NUMERIC(10,2)',\n"
        "         logicalTypeOptions: {minimum: 0, maximum: 1000, exclusiveMaximum: true}}\n"
        "      - {name: weight, physicalType: double}\n"
        "      - {name: opened, logicalType: time}"
    )
    text = _minimal(
        properties,
        version="v3.2.0",
        status="proposed",
        team="[{username: bob@acme.example, role: Owner}, {username: eve@acme.example, role: dev}]",
    )
    manifest = parse_manifest(text, "things.yaml")
    columns = {c.name: c for c in manifest.spec.output_ports[0].columns}
    assert columns["colour"].enum == ["red", "blue"]
    assert columns["price"].type is LogicalType.decimal
    assert (columns["price"].minimum, columns["price"].maximum) == (0, 1000)
    assert columns["weight"].type is LogicalType.number
    assert columns["opened"].type is LogicalType.string
    assert manifest.metadata.owner == "bob@acme.example"
    assert manifest.metadata.status is Status.draft
    assert manifest.extensions["logicalTypeOptions"] == {
        "schema[0].properties[1]": {"exclusiveMaximum": True}
    }


def test_pii_flags_written_as_strings_and_masks_are_read() -> None:
    properties = (
        "      - name: phone\n"
        "        logicalType: string\n"
        "        classification: Confidential\n"
        "        customProperties:\n"
        "          - {property: pii, value: 'true'}\n"
        "          - {property: piiCategory, value: phone}\n"
        "          - {property: mask, value: partial}"
    )
    column = parse_manifest(_minimal(properties), "x.yaml").spec.output_ports[0].columns[0]
    assert column.pii
    assert column.pii_category == "phone"
    assert column.mask is MaskKind.partial
    assert column.classification is Classification.confidential


def _error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "contract.yaml")
    return caught.value


def test_unknown_top_level_key_names_key_and_line() -> None:
    error = _error(_minimal() + "owner: someone\n")
    assert "unknown ODCS key 'owner'" in error.message
    assert error.location is not None
    assert error.location.file == "contract.yaml"
    assert error.location.line == 14


@pytest.mark.parametrize(
    ("prop_line", "expected"),
    [
        (
            "{name: a, logicalType: string, classification: secret}",
            "unknown classification 'secret'",
        ),
        ("{name: a, logicalType: text}", "unknown logicalType 'text'"),
        ("{name: a}", "logicalType is required"),
        ("{name: a, logicalType: string, colour: red}", "unknown ODCS key 'colour'"),
        (
            "{name: a, logicalType: string, customProperties: [{property: mask, value: blur}]}",
            "unknown mask 'blur'",
        ),
        (
            "{name: a, logicalType: string, customProperties: [{property: pii, value: maybe}]}",
            "expected true or false",
        ),
    ],
)
def test_bad_property_names_the_property_line(prop_line: str, expected: str) -> None:
    error = _error(_minimal(f"      - {{name: ok, logicalType: string}}\n      - {prop_line}"))
    assert expected in error.message
    assert "schema[0].properties[1]" in error.message
    assert error.location is not None
    assert error.location.line == 14


def test_conflicting_entity_links_are_an_error() -> None:
    properties = (
        "      - name: cid\n"
        "        logicalType: string\n"
        "        authoritativeDefinitions:\n"
        "          - {type: semantics, url: 'https://id.acme.example/entity/Customer'}\n"
        "        customProperties:\n"
        "          - {property: entityIdentifier, value: 'https://id.acme.example/entity/Order'}"
    )
    error = _error(_minimal(properties))
    assert "several entities (customer, order)" in error.message
    assert error.location is not None
    assert error.location.line == 18


def test_model_validation_errors_point_into_the_contract() -> None:
    properties = (
        "      - {name: dup, logicalType: string}\n      - {name: DUP, logicalType: string}"
    )
    error = _error(_minimal(properties))
    assert "duplicate column 'DUP'" in error.message
    assert error.location is not None
    assert error.location.line == 14


@pytest.mark.parametrize(
    ("text", "expected", "line"),
    [
        (_minimal(version="v3.9.0"), "unsupported ODCS version 'v3.9.0'", 1),
        (_minimal(status="archived"), "unknown status 'archived'", 6),
        (_minimal().replace("domain: shop", "domain: Shop Floor"), "not a meshgov domain", 7),
        (_minimal().replace("version: 1.0.0\n", ""), "version: is required", None),
        (
            _minimal().replace("    properties:\n", "    properties: []\n#"),
            "at least one property",
            12,
        ),
    ],
)
def test_bad_contract_level_fields(text: str, expected: str, line: int | None) -> None:
    error = _error(text)
    assert expected in error.message
    assert error.location is not None
    if line is not None:
        assert error.location.line == line


def test_sla_element_scopes_retention_to_one_port() -> None:
    text = _minimal().replace(
        "schema:\n",
        "slaProperties:\n"
        "  - {property: retention, value: 90, unit: days, element: things.thing_id}\n"
        "  - {property: retention, value: 1, unit: y, element: other}\n"
        "schema:\n",
    )
    port = parse_manifest(text, "x.yaml").spec.output_ports[0]
    assert port.retention == "90d"


def test_duplicate_ports_and_bad_port_names_point_at_the_schema_object() -> None:
    error = _error(_minimal().replace("  - name: things\n", "  - name: Things Table\n"))
    assert "String should match pattern" in error.message
    assert "schema[0]" in error.message
    assert error.location is not None
    assert error.location.line == 10


# What the ODCS JSON Schema itself rejects is an error here too (manifest-standards.md section 1).


def test_contract_id_is_required() -> None:
    error = _error(_minimal().replace("id: c1\n", ""))
    assert "id: is required" in error.message
    assert error.location is not None
    assert error.location.file == "contract.yaml"
    assert error.location.line == 1


@pytest.mark.parametrize("bad_id", ["'order id'", "order.id", "'id#1'", "ünïcode", "''"])
def test_property_id_must_match_the_odcs_pattern(bad_id: str) -> None:
    error = _error(
        _minimal(
            "      - {id: ok_id-1, name: ok, logicalType: string}\n"
            f"      - {{id: {bad_id}, name: a, logicalType: string}}"
        )
    )
    assert "schema[0].properties[1].id" in error.message
    assert "^[A-Za-z0-9_-]+$" in error.message
    assert error.location is not None
    assert error.location.file == "contract.yaml"
    assert error.location.line == 14


def test_top_level_quality_is_rejected() -> None:
    error = _error(_minimal() + "quality:\n  - {metric: rowCount, mustBeGreaterThan: 0}\n")
    assert error.message.startswith("quality: a top-level 'quality' block is not allowed")
    assert error.location is not None
    assert error.location.line == 14


def test_quality_on_objects_and_properties_is_accepted() -> None:
    text = _minimal(
        "      - {name: thing_id, logicalType: string,\n"
        "         quality: [{metric: nullValues, mustBe: 0}]}"
    ).replace(
        "    physicalName: shop.things\n",
        "    physicalName: shop.things\n    quality: [{metric: rowCount, mustBeGreaterThan: 0}]\n",
    )
    assert parse_manifest(text, "x.yaml").spec.output_ports[0].columns[0].name == "thing_id"


@pytest.mark.parametrize("version", ["v3.0.2", "v3.1.0"])
@pytest.mark.parametrize("logical", ["map", "vector"])
def test_v3_2_logical_types_are_rejected_before_v3_2(version: str, logical: str) -> None:
    error = _error(
        _minimal(
            "      - {name: ok, logicalType: string}\n"
            f"      - {{name: attrs, logicalType: {logical}}}",
            version=version,
        )
    )
    assert f"logicalType '{logical}' exists only from ODCS v3.2.0" in error.message
    assert "schema[0].properties[1].logicalType" in error.message
    assert error.location is not None
    assert error.location.line == 14


def test_v3_2_logical_types_are_read_in_v3_2() -> None:
    text = _minimal(
        "      - {name: attrs, logicalType: map}\n      - {name: emb, logicalType: vector}",
        version="v3.2.0",
    )
    columns = parse_manifest(text, "x.yaml").spec.output_ports[0].columns
    assert [c.type for c in columns] == [LogicalType.struct, LogicalType.array]


def test_rejections_exit_2_from_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "c.odcs.yaml"
    path.write_text(_minimal("      - {id: 'bad id', name: a, logicalType: string}"))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:13" in result.stdout + result.stderr
