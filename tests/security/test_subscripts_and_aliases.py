"""Two more classes of expressions that can fail on a value, on engines without a barrier.

1. Subscripts, slices, maps and intervals: ``MAP([k, 'US'], …)`` fails on a duplicate key, a
   slice fails on a zero step or a bound out of BIGINT range, ``INTERVAL (x) DAY`` casts ``x``
   (fails on text, overflows), ``d + INTERVAL …`` overflows, an ``ESCAPE`` of two characters fails
   — each only when a hidden row reaches it, if it is built from data or sits in a CASE branch.
2. Output items named outside the output list: DuckDB lets WHERE, HAVING, QUALIFY name an
   output alias, so ``SELECT CAST(x AS INT) AS v … WHERE v = 1`` runs the cast in WHERE, next to
   the row filter — also through an alias that names another alias. GROUP BY keys (by alias,
   ordinal or ALL) are computed by the aggregation on the filtered rows: served.

Each attack is judged as in ``test_barrier_classes``: the gateway's answer on the real data must be
the physically reduced world's answer, and an engine error is allowed only where the reduced world
fails too. On DuckDB (no barrier) every attack is refused by the gateway, saying why; a control
shows each probe does fail for an owner, who sees every row. PostgreSQL runs its spellings behind
its barrier views and must give the reduced answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from adversarial_world import Secrets
from test_barrier_classes import Case, _judge, _on_reduced, _principal, _through_gateway

from meshgov.core.principal import Principal
from meshgov.engines.base import QueryEngine, QueryFailed
from meshgov.errors import AccessDenied, SqlUnsupportedError
from meshgov.execution import execute_query

PAYMENTS = "payments.payments p"
# A value computed from data that is 'US' only on a hidden row.
ON_US = "CASE WHEN p.region = 'US' THEN {bad} ELSE {good} END"


def _on_us(bad: str, good: str) -> str:
    return ON_US.format(bad=bad, good=good)


TEXT_ON_US = _on_us("'x'", "'1'")
INTERVAL_ON_US = _on_us("INTERVAL 'garbage'", "INTERVAL '1 day'")
ESCAPE_ON_US = _on_us("p.status LIKE 'a%' ESCAPE 'ab'", "TRUE")
PG_TEXT_ON_US = _on_us("'x'", "'2'")
PG_INTERVAL_ON_US = _on_us("'x'", "'1 day'")


# Fail on a hidden row (every hidden payment is 'US'); DuckDB syntax unless marked.
ACCESS: list[Case] = [
    Case(
        "map-duplicate-key",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE map([p.region, 'US'], [1, 2]) IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "slice-zero-step",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE [1, 2, 3][1:3:{_on_us('0', '1')}] IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "slice-bound-out-of-range",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE [1, 2, 3][1:{_on_us('1e30', '2')}] "
        "IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "slice-of-text",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE p.status[{_on_us('1e30', '1')}:2] IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "list-slice-function",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE list_slice([1, 2, 3], 1, 3, "
        f"{_on_us('0', '1')}) IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "interval-of-text",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE INTERVAL ({TEXT_ON_US}) DAY IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "interval-out-of-range",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE INTERVAL ({_on_us('1e300', '1')}) DAY "
        "IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "date-plus-interval-overflow",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE p.paid_at + "
        f"INTERVAL ({_on_us('1000000000', '1')}) DAY > TIMESTAMP '2000-01-01'",
        only="duckdb",
    ),
    Case(
        "constant-interval-in-branch",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE {INTERVAL_ON_US} IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "escape-in-branch",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE {ESCAPE_ON_US}",
    ),
    Case(
        "subscript-in-on",
        "SELECT count(*) AS n FROM commerce.orders o JOIN payments.payments p "
        f"ON o.order_id = p.order_id AND [1, 2][1:2:{_on_us('0', '1')}] IS NOT NULL",
        only="duckdb",
    ),
    Case(
        "subscript-in-cte",
        f"WITH x AS (SELECT map([p.region, 'US'], [1, 2]) AS m FROM {PAYMENTS}) "
        "SELECT count(*) AS n FROM x WHERE m IS NOT NULL",
        only="duckdb",
    ),
    # A function total on text but not on every type it takes: hex() of an infinite DOUBLE.
    Case(
        "hex-of-infinity",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE hex({_on_us('1e400', '1')}) IS NOT NULL",
        only="duckdb",
    ),
    # PostgreSQL's spellings: its barrier runs the row filter first; the answer must be the
    # reduced world's.
    Case(
        "pg-array-slice-cast",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE "
        f"(ARRAY[1, 2, 3])[1:CAST({PG_TEXT_ON_US} AS INT)] IS NOT NULL",
        only="postgresql",
    ),
    Case(
        "pg-interval-of-text",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE "
        f"CAST({PG_INTERVAL_ON_US} AS INTERVAL) IS NOT NULL",
        only="postgresql",
    ),
    Case(
        "pg-timestamp-plus-interval-overflow",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE p.paid_at + "
        f"{_on_us('1000000000', '1')} * INTERVAL '1 year' > TIMESTAMP '2000-01-01'",
        only="postgresql",
    ),
]

# A map's missing key gives NULL on this DuckDB, but is refused as a class: other versions and
# engines (Spark with ANSI on, ``element_at``) raise.
ACCESS_REFUSED_ONLY: list[Case] = [
    Case(
        "map-missing-key",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE map(['EU'], [1])[p.region] IS NULL",
        only="duckdb",
    ),
    Case(
        "map-constant-key",
        f"SELECT count(*) AS n FROM {PAYMENTS} WHERE map([p.region], [1])['EU'] IS NULL",
        only="duckdb",
    ),
]

CAST_ON_US = "CAST(" + _on_us("'x'", "'1'") + " AS INT)"
ALIASES: list[Case] = [
    Case(
        f"alias-{name}",
        sql.format(v=CAST_ON_US, p=PAYMENTS),
        only="duckdb" if duckdb_only else None,
    )
    for name, sql, duckdb_only in (
        ("where", "SELECT {v} AS v FROM {p} WHERE v = 1", True),
        (
            "qualify",
            "SELECT {v} AS v, row_number() OVER () AS r FROM {p} QUALIFY v = 1",
            True,
        ),
        ("group-by", "SELECT {v} AS v, count(*) AS n FROM {p} GROUP BY v", False),
        ("group-by-ordinal", "SELECT {v} AS v, count(*) AS n FROM {p} GROUP BY 1", False),
        ("group-by-all", "SELECT {v} AS v, count(*) AS n FROM {p} GROUP BY ALL", True),
        (
            "having",
            "SELECT {v} AS v, count(*) AS n FROM {p} GROUP BY p.region HAVING v = 1",
            True,
        ),
        ("chain", "SELECT {v} AS v, v + 1 AS w FROM {p} WHERE w = 2", True),
        ("chain-of-three", "SELECT {v} AS v, v + 1 AS w, w * 2 AS z FROM {p} WHERE z = 4", True),
        ("inside-expression", "SELECT {v} AS v FROM {p} WHERE v + 0 = 1 AND p.amount > 0", True),
        (
            "of-a-subscript",
            "SELECT [1, 2][1:2:" + _on_us("0", "1") + "] AS s FROM {p} WHERE s IS NOT NULL",
            True,
        ),
        (
            "implicit-cast",
            "SELECT " + _on_us("p.region", "'1'") + " AS t FROM {p} WHERE t = 1",
            True,
        ),
        (
            # A column of another table of the mesh: not in scope here, so the alias is meant.
            "named-like-a-catalogue-column",
            "SELECT {v} AS order_date, count(*) AS n FROM {p} GROUP BY order_date",
            False,
        ),
    )
]

ATTACKS = ACCESS + ALIASES


@pytest.mark.parametrize("case", ATTACKS, ids=[c.name for c in ATTACKS])
def test_no_error_oracle_and_the_reduced_answer(
    case: Case, engine: QueryEngine, gateway: Any, reduced: Any, secrets: Secrets
) -> None:
    if case.only is not None and case.only != engine.name:
        pytest.skip(f"{case.only} syntax")
    outcome = _through_gateway(gateway, engine, case, case.sql)
    _judge(outcome, _on_reduced(engine, case, case.sql, reduced), case.sql, secrets)


# An invalid ESCAPE literal is refused before anything runs, for every principal (the pattern
# check of core/sql/patterns.py), so it never becomes a probe at all: judged on its own below.
REFUSED_AS_LITERAL = {"escape-in-branch"}
# GROUP BY keys (by alias, ordinal or ALL) are computed by the aggregation, on the rows the filter
# passed, like the output list: served on DuckDB too, and judged against the reduced world above
# (an error there would be the oracle).
GROUPED = {
    "alias-group-by",
    "alias-group-by-ordinal",
    "alias-group-by-all",
    "alias-named-like-a-catalogue-column",
}
REFUSED = [
    c
    for c in ATTACKS + ACCESS_REFUSED_ONLY
    if c.only != "postgresql" and c.name not in REFUSED_AS_LITERAL | GROUPED
]


@pytest.mark.parametrize("name", sorted(GROUPED))
def test_group_keys_run_after_the_filter_on_duckdb(
    name: str, duckdb_engine: QueryEngine, gateway: Any, reduced_duckdb: Any, secrets: Secrets
) -> None:
    case = next(c for c in ATTACKS if c.name == name)
    outcome = _through_gateway(gateway, duckdb_engine, case, case.sql)
    assert outcome.error is None, outcome.error
    expected = _on_reduced(duckdb_engine, case, case.sql, reduced_duckdb)
    assert expected is not None
    _judge(outcome, expected, case.sql, secrets)


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_refused_where_no_barrier_orders_the_filter(
    case: Case, duckdb_engine: QueryEngine, gateway: Any
) -> None:
    assert not duckdb_engine.structural_barrier
    outcome = _through_gateway(gateway, duckdb_engine, case, case.sql)
    assert isinstance(outcome.error, AccessDenied), outcome
    assert "can fail on a value" in str(outcome.error)


# The refused expression sits in an output item named elsewhere (not so for an implicit cast,
# which is the comparison in WHERE itself).
NAMED_BY_ALIAS = {c.name for c in ALIASES} - {"alias-implicit-cast"}


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_the_refusal_names_the_alias(case: Case, duckdb_engine: QueryEngine, gateway: Any) -> None:
    outcome = _through_gateway(gateway, duckdb_engine, case, case.sql)
    named = "the output item is named by" in str(outcome.error)
    assert named is (case.name in NAMED_BY_ALIAS)


OWNER = Principal(id="owner", groups=("payments-owners", "commerce-owners"))


@pytest.mark.parametrize(
    "case", [c for c in REFUSED if c in ATTACKS], ids=[c.name for c in REFUSED if c in ATTACKS]
)
def test_each_probe_fails_on_the_hidden_rows(
    case: Case, duckdb_engine: QueryEngine, gateway: Any, reduced_duckdb: Any
) -> None:
    """Control: for an owner, who sees every row, the probe does fail on DuckDB, and on the
    reduced world (the analyst's rows alone) it does not — so each refusal above stops a real
    error oracle, not a query that fails anyway."""
    assert _on_reduced(duckdb_engine, case, case.sql, reduced_duckdb) is not None
    with pytest.raises(QueryFailed):
        execute_query(gateway, duckdb_engine, case.sql, OWNER, "analytics", "duckdb")


@pytest.mark.parametrize("who", ["analyst-eu", "owner"])
def test_an_invalid_escape_is_refused_before_it_runs(
    who: str, duckdb_engine: QueryEngine, gateway: Any
) -> None:
    case = next(c for c in ATTACKS if c.name == "escape-in-branch")
    principal = OWNER if who == "owner" else _principal(case.who)
    with pytest.raises(SqlUnsupportedError, match="must be one character"):
        execute_query(gateway, duckdb_engine, case.sql, principal, "analytics", "duckdb")
