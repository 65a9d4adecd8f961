"""Row filters checked at release: what the gate's ``release/row-filter-invalid`` rule reports.

A row filter is only applied at query time, where any problem denies the query (fail closed). The
release gate should catch it first, but Rego cannot parse SQL: meshgov parses each filter with the
same parser and allow-list as the gateway (``parse_filter``) and hands the problems to the policy
as ``row_filter_facts`` in the gate input, one per (grant, port) it applies to.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from meshgov.core.manifest import Grant, Manifest
from meshgov.core.sql.filters import _placeholder, parse_filter
from meshgov.errors import MeshgovError


def grant_label(grant: Grant) -> str:
    """The grant's targets as the release policy names them (``groups analysts; ids x``)."""
    parts = [
        f"{key} {', '.join(names)}"
        for key, names in (
            ("ids", grant.to.ids),
            ("groups", grant.to.groups),
            ("domains", grant.to.domains),
        )
        if names
    ]
    return "; ".join(parts)


def row_filter_facts(manifest: Manifest) -> list[dict[str, Any]]:
    """``{grant, index, port, column, problem}`` for each row filter that cannot be applied
    (``index``: the grant's position in ``spec.access.grants``, for the finding's line)."""
    facts: list[dict[str, Any]] = []
    ports = manifest.spec.output_ports
    for index, grant in enumerate(manifest.spec.access.grants):
        if grant.row_filter is None:
            continue
        label = grant_label(grant)
        try:
            parsed = parse_filter(grant.row_filter)
        except MeshgovError as exc:
            facts.append(
                {
                    "grant": label,
                    "index": index,
                    "port": None,
                    "column": None,
                    "problem": exc.message,
                }
            )
            continue
        named = [c for c in parsed.find_all(exp.Column) if _placeholder(c.parent) is None]
        applies = [p for p in ports if not grant.ports or p.name in grant.ports]
        for port in applies:
            known = {column.name.lower() for column in port.columns}
            for column in named:
                if column.name.lower() not in known:
                    facts.append(
                        {
                            "grant": label,
                            "index": index,
                            "port": port.name,
                            "column": column.name,
                            "problem": f"column '{column.name}' is not a column of port "
                            f"'{port.name}'",
                        }
                    )
    return facts
