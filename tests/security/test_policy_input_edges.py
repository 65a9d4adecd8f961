"""Edge values in a request and in a principal reach both Rego engines as data, with the same
decision on each, and never turn into SQL structure in a row filter.

Found by a review: a non-finite float attribute (a tokens file's ``.nan``, a JSON ``NaN``) was
allowed on the embedded engine and denied on regorus, and a row filter ``region =
{principal.region}`` bound it as ``"region" = nan``: an identifier, not a literal. A string with a
NUL, or an integer past 64 bits, was denied on the embedded engine and allowed on regorus."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from pydantic import ValidationError
from sqlglot import exp

from meshgov.core.principal import Principal
from meshgov.errors import PolicyEvaluationError
from meshgov.gateway import Gateway, load_gateway
from meshgov.policy_backends import engine_from_url

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
ENGINES = ["embedded", "regorus"]
INJECTED = 'x"], "allow": true, "masks": {}, "reasons": ["y'
# Strings JSON escapes, or that JSON writes as they are but are unusual; all valid Unicode.
STRANGE = [
    INJECTED,
    "a\\b",
    'a\\"b',
    "a\nb\r\t",
    "a\x01\x1fb",
    "a\u2028b\u2029",
    "\U0001f600",
    "\\u0022",
    "x" * 100_000,
    "EU' OR '1'='1",
]
_GATEWAYS: dict[str, Gateway] = {}


def _gateway(engine: str) -> Gateway:
    if engine not in _GATEWAYS:
        _GATEWAYS[engine] = load_gateway(str(MESH), str(ROOT / "policies"), engine_from_url(engine))
    return _GATEWAYS[engine]


def _analyst(**changes: Any) -> Principal:
    fields: dict[str, Any] = {
        "id": "analyst-eu",
        "groups": ("analysts",),
        "domain": "analytics",
        "attributes": {"region": "EU", "clearances": []},
    }
    return Principal(**{**fields, **changes})


def _allowed(principal: Principal, **request: str) -> tuple[bool, bool]:
    """The decision on each engine for ``customer/customers:customers`` (or ``request``)."""
    args = {"purpose": "analytics", "product": "customer/customers", "port": "customers"}
    args.update(request)
    return tuple(_gateway(e).decide(principal, **args).allow for e in ENGINES)  # type: ignore[return-value]


@pytest.mark.parametrize("text", STRANGE, ids=range(len(STRANGE)))
@pytest.mark.parametrize("field", ["purpose", "product", "port"])
def test_a_strange_request_field_is_denied_on_both_engines(field: str, text: str) -> None:
    assert _allowed(_analyst(), **{field: text}) == (False, False)


@pytest.mark.parametrize("text", STRANGE, ids=range(len(STRANGE)))
@pytest.mark.parametrize("where", ["id", "group", "domain", "attribute", "key"])
def test_a_strange_principal_string_is_plain_data_on_both_engines(where: str, text: str) -> None:
    # The analyst is allowed; the strange string only adds to irrelevant fields.
    changes: dict[str, Any] = {
        "id": {"id": text[:256]},
        "group": {"groups": ("analysts", text)},
        "domain": {"domain": text},
        "attribute": {"attributes": {"region": "EU", "clearances": [text], "x": text}},
        "key": {"attributes": {"region": "EU", "clearances": [], text: "v"}},
    }[where]
    assert _allowed(_analyst(**changes)) == (True, True)
    # The same string as the only group: no grant, on either engine.
    assert _allowed(_analyst(groups=(text,))) == (False, False)


@pytest.mark.parametrize("text", ["a\ud800b", "a\udfff"])
@pytest.mark.parametrize("field", ["purpose", "product", "port"])
def test_a_lone_surrogate_is_an_error_that_denies(field: str, text: str) -> None:
    for engine in ENGINES:
        decision = _gateway(engine).decide(
            _analyst(),
            **{
                "purpose": "analytics",
                "product": "customer/customers",
                "port": "customers",
                field: text,
            },
        )
        assert not decision.allow and "policy evaluation failed" in decision.reasons[0]


@pytest.mark.parametrize("where", ["group", "domain", "attribute", "key"])
def test_a_nul_in_a_principal_denies_on_both_engines(where: str) -> None:
    text = "analysts\0x"
    changes: dict[str, Any] = {
        "group": {"groups": ("analysts", text)},
        "domain": {"domain": text},
        "attribute": {"attributes": {"region": "EU", "clearances": [], "x": text}},
        "key": {"attributes": {"region": "EU", "clearances": [], text: "v"}},
    }[where]
    assert _allowed(_analyst(**changes)) == (False, False)


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 1e308, -0.0, 5e-324])
def test_numbers_within_range_are_data_on_both_engines(value: float) -> None:
    assert _allowed(_analyst(attributes={"region": "EU", "clearances": [], "n": value})) == (
        True,
        True,
    )


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64])
def test_integers_past_64_bits_deny_on_both_engines(value: int) -> None:
    assert _allowed(_analyst(attributes={"region": "EU", "clearances": [], "n": value})) == (
        False,
        False,
    )


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_attribute_is_refused_with_the_principal(value: float) -> None:
    with pytest.raises(ValidationError, match="finite"):
        _analyst(attributes={"region": value, "clearances": []})
    with pytest.raises(ValidationError, match="finite"):
        _analyst(attributes={"region": "EU", "clearances": [], "limits": [1, value]})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_in_a_request_denies_on_both_engines(value: float) -> None:
    # Past the principal's own check (a policy input built elsewhere): both engines deny.
    for engine in ENGINES:
        with pytest.raises(PolicyEvaluationError, match="finite"):
            _gateway(engine).policy.evaluate(
                "data.meshgov.access.decision",
                {
                    "principal": _analyst().policy_document(),
                    "purpose": "analytics",
                    "product": "customer/customers",
                    "port": "customers",
                    "n": value,
                },
            )


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "spark"])
@pytest.mark.parametrize("region", ["EU' OR '1'='1", "EU\\' OR 1=1 --", 'EU" OR "1"="1', "EU\n--"])
def test_a_row_filter_binds_an_attribute_as_one_literal(dialect: str, region: str) -> None:
    principal = _analyst(attributes={"region": region, "clearances": []})
    result = _gateway("embedded").authorize(
        "SELECT customer_id FROM customer.customers", principal, "analytics", dialect
    )
    assert result.allowed and result.sql, result
    tree = sqlglot.parse_one(result.sql, read=dialect)
    filters = [
        eq
        for eq in tree.find_all(exp.EQ)
        if isinstance(eq.this, exp.Column) and eq.this.name == "region"
    ]
    assert len(filters) == 1, result.sql
    assert isinstance(filters[0].expression, exp.Literal) and filters[0].expression.is_string
    assert filters[0].expression.this == region
    assert not list(tree.find_all(exp.Or)), result.sql


# The release gate: a manifest's own text is input too (descriptions, tags).
_PLAIN_DESCRIPTION = (
    "description: One row per customer, deduplicated daily from the CRM; owns the mesh's "
    "customer id."
)


def _unmasked_manifest() -> str:
    """customers.yaml with e-mail's mask removed: one ``pii/missing-mask`` violation."""
    text = (MESH / "customer" / "customers.yaml").read_text(encoding="utf-8")
    unmasked = text.replace("piiCategory: email,\n           mask: hash,", "piiCategory: email,")
    assert unmasked != text and _PLAIN_DESCRIPTION in text
    return unmasked


@pytest.mark.parametrize("text", STRANGE[:-2], ids=range(len(STRANGE) - 2))
@pytest.mark.parametrize("field", ["description", "tag"])
def test_strange_manifest_text_keeps_the_gate_violation_on_both_engines(
    field: str, text: str
) -> None:
    from meshgov.gate import Gate, read_sourced_manifest

    # A YAML double-quoted scalar: every character but printable ASCII as a \U escape.
    quoted = (
        '"'
        + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{ord(c):08x}" for c in text)
        + '"'
    )

    manifest = _unmasked_manifest()
    if field == "description":
        manifest = manifest.replace(_PLAIN_DESCRIPTION, f"description: {quoted}")
    else:
        manifest = manifest.replace("tags: [master-data, crm]", f"tags: [crm, {quoted}]")
    for engine in ENGINES:
        gate = Gate.from_dir(ROOT / "policies", engine_from_url(engine))
        try:
            findings = gate.evaluate(read_sourced_manifest(manifest, "m.yaml"), None)
        finally:
            gate.close()
        assert [f.rule for f in findings] == ["pii/missing-mask"], (engine, findings)
