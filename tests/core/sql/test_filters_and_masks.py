"""Row-filter binding and masks as sqlglot expressions, per dialect."""

from __future__ import annotations

import hashlib
import hmac

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from meshgov.core.manifest import LogicalType
from meshgov.core.principal import Principal
from meshgov.core.sql.filters import bind_filter, combine_filters
from meshgov.core.sql.masks import mask_expression
from meshgov.core.sql.model import AccessDecision, Mask, PortColumn, PortRef
from meshgov.errors import AccessDenied, SqlUnsupportedError

DIALECTS = ["duckdb", "postgres", "trino", "spark", "snowflake", "bigquery"]
PORT = PortRef(
    product="customer/customers",
    port="customers",
    version="1.0.0",
    table=("customer", "customers"),
    columns=(
        PortColumn("region", LogicalType.string),
        PortColumn("owner", LogicalType.string),
        PortColumn("tier", LogicalType.integer),
        PortColumn("active", LogicalType.boolean),
    ),
)
ANN = Principal(
    id="ann",
    groups=("analysts", "eu"),
    domain="sales",
    attributes={"region": "EU", "regions": ["EU", "UK"], "tier": 2, "vip": True, "none": []},
)


def _sql(template: str, principal: Principal = ANN) -> str:
    return bind_filter(template, principal, PORT).sql("duckdb")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("region = {principal.region}", "\"region\" = 'EU'"),
        ("owner = {principal.id}", "\"owner\" = 'ann'"),
        ("owner = {principal.domain}", "\"owner\" = 'sales'"),
        ("region = {principal.regions}", "\"region\" IN ('EU', 'UK')"),
        ("region IN {principal.regions}", "\"region\" IN ('EU', 'UK')"),
        ("owner IN {principal.groups}", "\"owner\" IN ('analysts', 'eu')"),
        ("region <> {principal.regions}", "NOT \"region\" IN ('EU', 'UK')"),
        ("tier <= {principal.tier}", '"tier" <= 2'),
        ("active = {principal.vip}", '"active" = TRUE'),
        ("region IN {principal.none}", "FALSE"),
        ("region = 'EU' OR tier > 3", '"region" = \'EU\' OR "tier" > 3'),
    ],
)
def test_placeholders_become_literals(template: str, expected: str) -> None:
    assert _sql(template) == expected


def test_quotes_in_values_stay_inside_the_literal() -> None:
    tricky = Principal(id="x' OR '1'='1", attributes={"region": "EU') OR (1=1"})
    bound = bind_filter("owner = {principal.id} AND region = {principal.region}", tricky, PORT)
    literals = [lit.this for lit in bound.find_all(exp.Literal)]
    assert literals == ["x' OR '1'='1", "EU') OR (1=1"]
    # The generated SQL reparses into the same two comparisons: no injected OR.
    reparsed = sqlglot.parse_one(bound.sql("postgres"), read="postgres")
    assert isinstance(reparsed, exp.And)
    assert not list(reparsed.find_all(exp.Or))


@pytest.mark.parametrize("name", ["missing", "none_value"])
def test_missing_value_denies(name: str) -> None:
    principal = Principal(id="ann", attributes={"none_value": None})
    with pytest.raises(AccessDenied, match=rf"needs principal\.{name}"):
        bind_filter(f"region = {{principal.{name}}}", principal, PORT)


def test_missing_domain_denies() -> None:
    with pytest.raises(AccessDenied, match=r"principal\.domain"):
        bind_filter("owner = {principal.domain}", Principal(id="x"), PORT)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("nope = 1", "unknown column 'nope'"),
        ("region = (SELECT max(region) FROM customer.customers)", "subqueries"),
        ("pg_read_file('x') = region", "pg_read_file"),
        ("region = ", "cannot be parsed"),
        ("upper({principal.regions}) = region", "only usable with = or IN"),
    ],
)
def test_invalid_filters_deny(template: str, message: str) -> None:
    with pytest.raises((AccessDenied, SqlUnsupportedError), match=message):
        bind_filter(template, ANN, PORT)


def test_several_filters_are_alternatives() -> None:
    combined = combine_filters(
        [bind_filter("region = 'EU'", ANN, PORT), bind_filter("tier > 1", ANN, PORT)]
    )
    assert combined.sql("duckdb") == '("region" = \'EU\') OR ("tier" > 1)'


def test_decision_validation_fails_closed() -> None:
    assert not AccessDecision.from_policy_output(None).allow
    assert not AccessDecision.from_policy_output({"allow": True}).allow
    bad_mask = {
        "allow": True,
        "reasons": [],
        "row_filters": [],
        "masks": {"email": {"kind": "sha1"}},
        "hidden_columns": [],
    }
    assert not AccessDecision.from_policy_output(bad_mask).allow
    not_bool = dict(bad_mask, masks={}, allow="yes")
    assert not AccessDecision.from_policy_output(not_bool).allow


# --- masks --------------------------------------------------------------------------------------

COLUMNS = {
    "email": PortColumn("email", LogicalType.string),
    "amount": PortColumn("amount", LogicalType.decimal),
    "born": PortColumn("born", LogicalType.date),
    "seen": PortColumn("seen", LogicalType.timestamp),
    "tags": PortColumn("tags", LogicalType.array),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("column", "mask"),
    [
        ("email", Mask("hash")),
        ("amount", Mask("hash")),
        ("email", Mask("redact")),
        ("amount", Mask("redact")),
        ("email", Mask("partial")),
        ("email", Mask("null")),
        ("tags", Mask("null")),
        ("born", Mask("year")),
        ("seen", Mask("year")),
        ("email", Mask("expr", "concat('***', right({col}, 3))")),
    ],
)
def test_masks_generate_and_reparse_in_every_dialect(column: str, mask: Mask, dialect: str) -> None:
    expression = mask_expression(COLUMNS[column], mask)
    generated = expression.sql(dialect, unsupported_level=sqlglot.ErrorLevel.RAISE)
    assert sqlglot.parse_one(generated, read=dialect) is not None
    assert "key" not in generated.lower()


def test_hash_is_a_call_of_the_engine_function_on_text() -> None:
    expression = mask_expression(COLUMNS["amount"], Mask("hash"))
    assert isinstance(expression, exp.Anonymous)
    assert expression.name == "meshgov_hash"
    assert isinstance(expression.expressions[0], exp.Cast)
    # A string column is already text: no cast.
    on_text = mask_expression(COLUMNS["email"], Mask("hash"))
    assert isinstance(on_text, exp.Anonymous)
    assert isinstance(on_text.expressions[0], exp.Column)


@pytest.mark.parametrize(
    "template",
    [
        "(SELECT 1)",
        "current_setting('x')",
        "{col} || other_column",
    ],
)
def test_unsafe_mask_templates_deny(template: str) -> None:
    with pytest.raises((AccessDenied, SqlUnsupportedError)):
        mask_expression(COLUMNS["email"], Mask("expr", template))


def test_masks_compute_expected_values_on_duckdb() -> None:
    connection = duckdb.connect(":memory:")
    key = b"k"

    def meshgov_hash(value: str) -> str:
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()

    connection.create_function("meshgov_hash", meshgov_hash, ["VARCHAR"], "VARCHAR")
    connection.execute(
        "CREATE TABLE t AS SELECT 'alice@example.com' AS email, 12.5::DECIMAL(9,2) AS amount, "
        "DATE '1990-05-17' AS born, TIMESTAMP '2020-03-04 05:06:07' AS seen, ['a'] AS tags"
    )
    projections = [
        exp.alias_(mask_expression(COLUMNS["email"], Mask("hash")), "h"),
        exp.alias_(mask_expression(COLUMNS["email"], Mask("partial")), "p"),
        exp.alias_(mask_expression(COLUMNS["email"], Mask("redact")), "r"),
        exp.alias_(mask_expression(COLUMNS["born"], Mask("year")), "y"),
        exp.alias_(mask_expression(COLUMNS["seen"], Mask("year")), "ys"),
        exp.alias_(mask_expression(COLUMNS["amount"], Mask("null")), "n"),
        exp.alias_(mask_expression(COLUMNS["email"], Mask("expr", "right({col}, 3)")), "e"),
    ]
    sql = exp.select(*projections).from_("t").sql("duckdb")
    row = connection.execute(sql).fetchone()
    assert row is not None
    h, p, r, y, ys, n, e = row
    assert h == meshgov_hash("alice@example.com")
    assert p == "*************.com"
    assert r == "[REDACTED]"
    assert str(y) == "1990-01-01"
    assert str(ys).startswith("2020-01-01")
    assert n is None
    assert e == "com"
