"""ODCS v3 contracts read into the meshgov model, and errors that name the place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshgov.catalog import load_manifest
from meshgov.cli import app
from meshgov.core.manifest import Classification, LogicalType, MaskKind, Status, parse_manifest
from meshgov.errors import ManifestError, ManifestErrors
from meshgov.gate import Gate

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
    assert odcs_doc["sourceFormat"] == "odcs/v3.2.0"
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


POLICIES = ROOT / "policies"


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate.from_dir(POLICIES)


def _findings(gate: Gate, text: str, source: str = "shop/contract.odcs.yaml") -> list[Any]:
    from meshgov.gate import read_sourced_manifest

    report = gate.check([read_sourced_manifest(text, source)])
    (result,) = report.results
    return list(result.findings)


def _notes(text: str, source: str = "shop/x.odcs.yaml") -> list[dict[str, Any]]:
    return parse_manifest(text, source).notes


def test_reads_v3_2_enums_and_the_v3_0_team_list() -> None:
    properties = (
        "      - {name: colour, logicalType: string}\n"
        "      - {name: price, logicalType: number, physicalType: 'NUMERIC(10,2)',\n"
        "         logicalTypeOptions: {minimum: 0, maximum: 1000, exclusiveMaximum: 1000}}\n"
        "      - {name: weight, physicalType: double}\n"
        "      - {name: opened, logicalType: time}"
    )
    text = _minimal(
        properties,
        version="v3.0.2",
        status="proposed",
        team="[{username: bob@acme.example, role: Owner}, {username: eve@acme.example, role: dev}]",
    )
    manifest = parse_manifest(text, "things.yaml")
    columns = {c.name: c for c in manifest.spec.output_ports[0].columns}
    assert columns["price"].type is LogicalType.decimal
    assert (columns["price"].minimum, columns["price"].maximum) == (0, 1000)
    assert columns["weight"].type is LogicalType.number
    assert columns["opened"].type is LogicalType.string
    assert manifest.metadata.owner == "bob@acme.example"
    assert manifest.metadata.status is Status.draft
    assert manifest.extensions["logicalTypeOptions"] == {
        "schema[0].properties[1]": {"exclusiveMaximum": 1000}
    }
    v32 = _minimal(
        "      - {name: colour, logicalType: string, enum: [{value: red, label: Red}, "
        "{value: blue}]}",
        version="v3.2.0",
    )
    colour = parse_manifest(v32, "x.yaml").spec.output_ports[0].columns[0]
    assert colour.enum == ["red", "blue"]


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
    manifest = parse_manifest(_minimal(properties), "x.yaml")
    column = manifest.spec.output_ports[0].columns[0]
    assert column.pii
    assert column.pii_category == "phone"
    assert column.mask is MaskKind.partial
    assert column.classification is Classification.confidential
    assert manifest.notes == []


# --- invalid input: what the ODCS JSON Schema refuses ---------------------------------------------


def _errors(text: str) -> list[ManifestError]:
    with pytest.raises(ManifestErrors) as caught:
        parse_manifest(text, "contract.yaml")
    assert caught.value.errors[0].message in caught.value.message
    return list(caught.value.errors)


def test_every_schema_error_of_a_contract_is_reported_at_once_with_its_line() -> None:
    text = (
        _minimal(
            "      - {name: ok, logicalType: string}\n"
            "      - {id: 'bad id', name: a, logicalType: string}\n"
            "      - {name: b, logicalType: string, colour: red}"
        )
        .replace("kind: DataContract\n", "")
        .replace("status: active\n", "")
        + "owner: someone\n"
    )
    errors = _errors(text)
    described = [(e.location.line if e.location else None, e.message) for e in errors]
    assert all(e.location is not None and e.location.file == "contract.yaml" for e in errors)
    messages = " | ".join(m for _, m in described)
    assert "'kind' is required" in messages
    assert "'status' is required" in messages
    assert "unknown ODCS key 'owner'" in messages
    assert "unknown ODCS key 'colour'" in messages
    assert "schema[0].properties[1].id" in messages
    lines = {m.split(":")[0]: line for line, m in described}
    assert lines["owner"] == 14  # the key's own line
    assert lines["schema[0].properties[2].colour"] == 13
    assert lines["schema[0].properties[1].id"] == 12
    assert [line for line, _ in described] == sorted(line or 0 for line, _ in described)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_minimal().replace("id: c1\n", ""), "'id' is required"),
        (_minimal().replace("version: 1.0.0\n", ""), "'version' is required"),
        (_minimal().replace("kind: DataContract", "kind: Contract"), "kind: 'Contract'"),
        (_minimal().replace("  - name: things\n", "  - description: x\n"), "'name' is required"),
        (
            _minimal("      - {name: a, logicalType: text}"),
            "schema[0].properties[0].logicalType: 'text' is not one of",
        ),
        (_minimal("      - {name: a, required: maybe}"), "expected boolean"),
    ],
)
def test_schema_refusals_name_the_place(text: str, expected: str) -> None:
    errors = _errors(text)
    assert any(expected in e.message for e in errors), [e.message for e in errors]
    assert all(e.location is not None and e.location.line for e in errors)


def test_unsupported_version_is_refused_at_its_line() -> None:
    with pytest.raises(ManifestError, match=r"unsupported ODCS version 'v3\.9\.0'") as caught:
        parse_manifest(_minimal(version="v3.9.0"), "contract.yaml")
    assert caught.value.location is not None
    assert caught.value.location.line == 1


def test_top_level_quality_is_rejected_with_a_hint() -> None:
    (error,) = _errors(_minimal() + "quality:\n  - {metric: rowCount, mustBeGreaterThan: 0}\n")
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
def test_v3_2_logical_types_are_refused_before_v3_2(version: str, logical: str) -> None:
    errors = _errors(
        _minimal(
            "      - {name: ok, logicalType: string}\n"
            f"      - {{name: attrs, logicalType: {logical}}}",
            version=version,
        )
    )
    message = next(e.message for e in errors if "logicalType" in e.message)
    assert f"schema[0].properties[1].logicalType: '{logical}' is not one of" in message
    # the list of allowed types is the version's own: no map or vector before v3.2
    allowed = message.split("is not one of", 1)[1]
    assert "string" in allowed
    assert "map" not in allowed
    assert "vector" not in allowed
    assert errors[0].location is not None
    assert errors[0].location.line == 14


def test_v3_2_logical_types_are_read_in_v3_2() -> None:
    text = _minimal(
        "      - name: attrs\n"
        "        logicalType: map\n"
        "        map: {key: {logicalType: string}, value: {logicalType: integer}}\n"
        "      - {name: emb, logicalType: vector, logicalTypeOptions: {dimensions: 3}}",
        version="v3.2.0",
    )
    columns = parse_manifest(text, "x.yaml").spec.output_ports[0].columns
    assert [c.type for c in columns] == [LogicalType.struct, LogicalType.array]


def test_status_is_optional_from_v3_2_and_then_a_finding(gate: Gate) -> None:
    text = _minimal(version="v3.2.0").replace("status: active\n", "")
    assert parse_manifest(text, "x.yaml").metadata.status is None
    assert "release/missing-status" in {f.rule for f in _findings(gate, text)}


def test_rejections_exit_2_from_the_cli_naming_every_line(tmp_path: Path) -> None:
    path = tmp_path / "c.odcs.yaml"
    path.write_text(
        _minimal(
            "      - {id: 'bad id', name: a, logicalType: string}\n"
            "      - {name: b, logicalType: string, colour: red}"
        )
    )
    result = CliRunner().invoke(app, ["check", "--policies", str(POLICIES), str(path)])
    assert result.exit_code == 2
    assert f"{path}:13" in result.stderr
    assert f"{path}:14" in result.stderr


# --- read anyway: defaults and findings for what ODCS leaves optional or free ---------------------


@pytest.mark.parametrize(
    ("written", "status"),
    [
        ("development", Status.draft),
        ("in development", Status.draft),
        ("Proposed", Status.draft),
        ("production", Status.active),
        ("archived", Status.retired),
        ("deprecated", Status.deprecated),
    ],
)
def test_free_text_status_maps_where_its_meaning_is_clear(written: str, status: Status) -> None:
    manifest = parse_manifest(_minimal(status=f"'{written}'"), "x.yaml")
    assert manifest.metadata.status is status
    assert manifest.notes == []


def test_unknown_status_is_a_finding_at_its_line(gate: Gate) -> None:
    findings = _findings(gate, _minimal(status="someday"))
    (finding,) = [f for f in findings if f.rule == "release/unmapped-value"]
    assert "'someday'" in finding.message
    assert finding.location.line == 6
    assert finding.fix
    assert "release/missing-status" not in {f.rule for f in findings}


@pytest.mark.parametrize(
    ("written", "tier"),
    [
        ("secret", Classification.restricted),
        ("Highly Confidential", Classification.restricted),
        ("sensitive", Classification.confidential),
        ("internal", Classification.internal),
        ("PUBLIC", Classification.public),
    ],
)
def test_free_text_classification_maps_to_a_tier(written: str, tier: Classification) -> None:
    text = _minimal(f"      - {{name: a, logicalType: string, classification: {written}}}")
    manifest = parse_manifest(text, "x.yaml")
    assert manifest.spec.output_ports[0].columns[0].classification is tier
    assert manifest.notes == []


def test_unknown_classification_is_restricted_and_a_finding(gate: Gate) -> None:
    text = _minimal(
        "      - {name: ok, logicalType: string}\n"
        "      - {name: a, logicalType: string, classification: need to know}"
    )
    column = parse_manifest(text, "x.yaml").spec.output_ports[0].columns[1]
    assert column.classification is Classification.restricted  # fail closed
    (finding,) = [f for f in _findings(gate, text) if f.rule == "release/unmapped-value"]
    assert finding.location.line == 14
    assert (finding.location.port, finding.location.column) == ("things", "a")
    assert "'need to know'" in finding.message


def test_names_are_normalised_and_the_domain_defaults() -> None:
    text = (
        _minimal()
        .replace("name: things\nversion", "name: Orders Event Stream\nversion")
        .replace("domain: shop\n", "")
        .replace("  - name: things\n", "  - name: Air_Quality\n")
    )
    manifest = parse_manifest(text, "contracts/Sales Team/orders.odcs.yaml")
    assert manifest.id == "sales_team/orders_event_stream"
    assert manifest.spec.output_ports[0].name == "air_quality"
    assert manifest.notes == []
    with_product = text.replace("version: 1.0.0", "version: 1.0.0\ndataProduct: my quantum")
    assert parse_manifest(with_product, "a/b.yaml").metadata.domain == "my_quantum"
    no_name = text.replace("name: Orders Event Stream\n", "")
    assert parse_manifest(no_name, "a/daily-orders.odcs.yaml").id == "a/daily-orders"
    assert parse_manifest(no_name, "loose.yaml").metadata.domain == "default"
    # what the service reads back from its store names the same product as it published
    assert parse_manifest(no_name, "request:a/daily-orders").id == "a/daily-orders"
    assert parse_manifest(no_name, "store:a/daily-orders@1.0.0").id == "a/daily-orders"


def test_no_schema_and_objects_without_properties_are_findings(gate: Gate) -> None:
    described = _minimal().replace("domain: shop\n", "domain: shop\ndescription: {purpose: P.}\n")
    no_schema = described.split("schema:\n")[0]
    manifest = parse_manifest(no_schema, "x.yaml")
    assert manifest.spec.output_ports == []
    (finding,) = _findings(gate, no_schema)
    assert finding.rule == "release/missing-schema"
    empty_object = described.replace("    properties:\n", "    properties: []\n#")
    port = parse_manifest(empty_object, "x.yaml").spec.output_ports[0]
    assert port.columns == []
    (finding,) = _findings(gate, empty_object)
    assert (finding.rule, finding.location.port, finding.location.line) == (
        "release/missing-schema",
        "things",
        13,
    )


@pytest.mark.parametrize(
    ("prop_line", "expected", "default"),
    [
        ("{name: a, physicalType: GEOGRAPHY}", "physicalType 'GEOGRAPHY'", None),
        ("{name: a}", "no logicalType", None),
        (
            "{name: a, logicalType: string, customProperties: [{property: mask, value: blur}]}",
            "mask 'blur'",
            None,
        ),
        (
            "{name: a, logicalType: string, customProperties: [{property: pii, value: maybe}]}",
            "treated as PII",
            True,
        ),
    ],
)
def test_unmappable_property_values_are_findings_at_their_line(
    gate: Gate, prop_line: str, expected: str, default: object
) -> None:
    text = _minimal(f"      - {{name: ok, logicalType: string}}\n      - {prop_line}")
    column = parse_manifest(text, "x.yaml").spec.output_ports[0].columns[1]
    if default is not None:
        assert column.pii is default
    unmapped = [f for f in _findings(gate, text) if f.rule == "release/unmapped-value"]
    assert len(unmapped) == 1, [f.message for f in unmapped]
    assert expected in unmapped[0].message
    assert "schema[0].properties[1]" in unmapped[0].message
    assert unmapped[0].location.line == 14
    assert unmapped[0].fix


def test_physical_types_read_without_a_logical_type() -> None:
    names = [
        "VARCHAR(10)", "varchar[50]", "int4", "serial", "bpchar", "uuid", "bytea",
        "timestamp with time zone", "double precision", "NUMERIC(12,2)", "bool", "date",
    ]  # fmt: skip
    properties = "\n".join(
        f"      - {{name: c{i}, physicalType: '{name}'}}" for i, name in enumerate(names)
    )
    manifest = parse_manifest(_minimal(properties), "x.yaml")
    assert manifest.notes == []
    types = [c.type for c in manifest.spec.output_ports[0].columns]
    assert types == [
        LogicalType.string, LogicalType.string, LogicalType.integer, LogicalType.integer,
        LogicalType.string, LogicalType.string, LogicalType.binary, LogicalType.timestamp,
        LogicalType.number, LogicalType.decimal, LogicalType.boolean, LogicalType.date,
    ]  # fmt: skip


def test_object_physical_type_reads_as_a_table_with_a_finding(gate: Gate) -> None:
    text = _minimal().replace(
        "    physicalName: shop.things\n",
        "    physicalName: shop.things\n    physicalType: object\n",
    )
    assert parse_manifest(text, "x.yaml").spec.output_ports[0].kind.value == "table"
    (finding,) = [f for f in _findings(gate, text) if f.rule == "release/unmapped-value"]
    assert "physicalType 'object'" in finding.message
    assert finding.location.line == 12


def test_plain_table_names_in_transform_source_objects_are_kept_not_followed() -> None:
    properties = (
        "      - name: a\n"
        "        logicalType: string\n"
        "        transformSourceObjects: [table_name_1, 'sales/orders:orders:order_id']"
    )
    manifest = parse_manifest(_minimal(properties), "x.yaml")
    column = manifest.spec.output_ports[0].columns[0]
    assert column.derived_from == ["sales/orders:orders:order_id"]
    assert manifest.extensions["transformSourceObjects"] == {"things.a": ["table_name_1"]}
    assert manifest.notes == []


def test_ambiguities_are_findings_not_errors(gate: Gate) -> None:
    properties = (
        "      - name: cid\n"
        "        logicalType: string\n"
        "        authoritativeDefinitions:\n"
        "          - {type: semantics, url: 'https://id.acme.example/entity/Customer'}\n"
        "        customProperties:\n"
        "          - {property: entityIdentifier, value: 'https://id.acme.example/entity/Order'}\n"
        "      - {name: dup, logicalType: string}\n"
        "      - {name: DUP, logicalType: string}"
    )
    team = "{name: t, members: [{username: a@x.example, role: owner}, {username: b@x.example, role: owner}]}"  # noqa: E501
    text = _minimal(properties, team=team)
    manifest = parse_manifest(text, "x.yaml")
    columns = manifest.spec.output_ports[0].columns
    assert [c.name for c in columns] == ["cid", "dup"]
    assert columns[0].entity is None
    assert manifest.metadata.owner == "a@x.example"
    messages = [f.message for f in _findings(gate, text) if f.rule == "release/unmapped-value"]
    assert len(messages) == 3, messages
    assert any("several entities (customer, order)" in m for m in messages)
    assert any("'DUP'" in m for m in messages)
    assert any("several current members have role 'owner'" in m for m in messages)


def test_no_owner_is_the_missing_owner_finding(gate: Gate) -> None:
    text = _minimal().replace("team: {name: shop-team}\n", "")
    assert parse_manifest(text, "x.yaml").metadata.owner is None
    rules = {f.rule for f in _findings(gate, text)}
    assert "release/missing-owner" in rules


def test_if_the_two_schema_validators_disagree_the_contract_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """jsonschema-rs decides validity, jsonschema explains; no explanation still refuses."""
    from meshgov.core import odcs_schema

    monkeypatch.setattr(odcs_schema, "_leaves", lambda data, version: iter(()))
    errors = _errors(_minimal("      - {name: a, logicalType: string, colour: red}"))
    assert "colour" in errors[0].message
    assert errors[0].location is not None
    assert errors[0].location.line == 13


def test_findings_on_a_renamed_port_point_at_its_lines(gate: Gate) -> None:
    text = _minimal(
        "      - {name: ok, logicalType: string, classification: internal}\n"
        "      - {name: email, logicalType: string,\n"
        "         customProperties: [{property: pii, value: true}]}"
    ).replace("  - name: things\n", "  - name: Air_Quality\n")
    findings = [f for f in _findings(gate, text) if f.location.column == "email"]
    assert findings
    for finding in findings:
        assert finding.location.port == "air_quality"
        assert finding.location.line == 14
