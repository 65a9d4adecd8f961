"""The wire's governed catalogue: planner statistics views are refused.

``pg_stats`` shows the statistics of every relation the reader may select, shared catalogues
included: once ``pg_database`` is analysed (autovacuum does it in any database), its ``datname``
histogram lists every database of the cluster, which the ``pg_database`` shadow hides.
"""

from __future__ import annotations

import pytest
import sqlglot

from meshgov.pgwire.catalogue import CatalogueRefused, rewrite_catalogue_query

SETTINGS = {"server_version": "15.0 (meshgov)"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT histogram_bounds FROM pg_stats WHERE tablename = 'pg_database'",
        "SELECT most_common_vals FROM pg_catalog.pg_stats WHERE attname = 'datname'",
        "SELECT * FROM pg_catalog.pg_stats_ext",
        "SELECT * FROM pg_stats_ext_exprs",
        "SELECT * FROM pg_catalog.pg_statistic_ext_data",
    ],
)
def test_statistics_views_are_refused(sql: str) -> None:
    with pytest.raises(CatalogueRefused) as refused:
        rewrite_catalogue_query(
            sqlglot.parse_one(sql, read="postgres"),
            principal_id="analyst-eu",
            purpose="analytics",
            settings=SETTINGS,
        )
    assert refused.value.sqlstate == "42501"
