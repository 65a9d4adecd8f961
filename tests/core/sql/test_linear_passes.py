"""Every pass of the rewriter is linear in the query: 4x the terms, about 4x the work.

The fallible-expression check once walked the whole subtree (and the ancestors) of every operator
that can fail, and column resolution walked up from every column: a 2,000-term sum took 13.6 s to
authorize, 4,000 terms 38.6 s. Work is counted as Python function calls under ``cProfile`` — a
deterministic count, not a timing — for n and 4n terms; linear work gives a ratio near 4,
quadratic near 16.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable

import pytest

from meshgov.core.manifest import LogicalType
from meshgov.core.principal import Principal
from meshgov.core.sql.model import AccessDecision, PortColumn, PortRef
from meshgov.core.sql.rewrite import rewrite
from meshgov.errors import SqlUnsupportedError

PORT = PortRef(
    product="sales/orders",
    port="orders",
    version="1.0.0",
    table=("sales", "orders"),
    columns=(
        PortColumn("amount", LogicalType.integer),
        PortColumn("region", LogicalType.string),
    ),
)
FILTERED = AccessDecision(allow=True, row_filters=("region = 'EU'",))


def _authorize(sql: str, engine_barrier: bool = False) -> str:
    return rewrite(
        sql,
        read="duckdb",
        write="postgres",
        resolve_port=lambda parts: PORT if parts[-1] == "orders" else None,
        decide=lambda port: FILTERED,
        principal=Principal(id="analyst"),
        engine_barrier=engine_barrier,
    ).sql


def _calls(action: Callable[[], object]) -> int:
    profile = cProfile.Profile()
    profile.enable()
    try:
        action()
    except SqlUnsupportedError:
        pass  # a denial is work too: the same passes ran up to it
    finally:
        profile.disable()
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


def _sum(n: int) -> str:
    return " + ".join("amount" for _ in range(n))


SHAPES: dict[str, tuple[Callable[[int], str], bool]] = {
    # Allowed: arithmetic over a filtered table in the output list.
    "sum in the output": (lambda n: f"SELECT {_sum(n)} AS s FROM sales.orders", False),
    # Denied: the same in WHERE (every term is a candidate, each judged).
    "sum in WHERE": (lambda n: f"SELECT count(*) FROM sales.orders WHERE {_sum(n)} > 0", False),
    # Served behind an engine barrier: the generated tree is checked in full.
    "sum in WHERE, engine barrier": (
        lambda n: f"SELECT count(*) FROM sales.orders WHERE {_sum(n)} > 0",
        True,
    ),
    # Allowed: comparisons whose sides are typed (text with text, numbers with numbers).
    "text comparisons in WHERE": (
        lambda n: (
            "SELECT count(*) FROM sales.orders WHERE "
            + " OR ".join(f"region = 'r{i}'" for i in range(n))
        ),
        False,
    ),
    "an IN list in WHERE": (
        lambda n: (
            "SELECT count(*) FROM sales.orders WHERE amount IN "
            + "("
            + ", ".join(str(i) for i in range(n))
            + ")"
        ),
        False,
    ),
    # Denied: text unified with a number (an implicit cast), over a wide expression.
    "implicit cast in WHERE": (
        lambda n: (
            "SELECT count(*) FROM sales.orders WHERE coalesce("
            + ", ".join("region" for _ in range(n))
            + ") = 1"
        ),
        False,
    ),
    # Many subqueries, each with its own secure view and columns to resolve.
    "scalar subqueries": (
        lambda n: (
            "SELECT "
            + " + ".join("(SELECT max(amount) FROM sales.orders)" for _ in range(n // 20))
            + " AS s"
        ),
        False,
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_authorize_work_grows_linearly(shape: str) -> None:
    build, barrier = SHAPES[shape]
    small = _calls(lambda: _authorize(build(500), barrier))
    large = _calls(lambda: _authorize(build(2000), barrier))
    assert large / small < 5.5, f"{shape}: {small} → {large} calls for 4x the terms"


def test_a_4000_term_sum_is_judged_whole() -> None:
    """The large query is really analysed, not cut short: allowed in the output list, denied in
    WHERE naming the expression."""
    assert _authorize(SHAPES["sum in the output"][0](4000)).count("amount") >= 4000
    with pytest.raises(SqlUnsupportedError, match="can fail on a value"):
        _authorize(SHAPES["sum in WHERE"][0](4000))
