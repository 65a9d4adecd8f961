"""DuckDB's PIVOT and UNPIVOT, written as the plain SELECTs they mean before any check.

``PIVOT src ON col IN (v1, v2) USING agg(x) GROUP BY g`` is
``SELECT g, agg(x) FILTER (WHERE col = v1) AS "v1", … FROM src GROUP BY g``;
``SELECT … FROM (subquery) PIVOT (agg(x) FOR col IN (v1, …))`` groups by the subquery's other
columns; ``UNPIVOT (subquery) ON c1, c2 INTO NAME n VALUE v`` (or ``… UNPIVOT (v FOR n IN (c1,
c2))``) is a UNION ALL of one SELECT per column, skipping NULLs as DuckDB does. The rewriter then
sees ordinary aggregates, filters and set operations (masks and row filters applied to ``src`` as
to any table), and PostgreSQL, which has no PIVOT, gets the same query.

Refused, naming why: a PIVOT without an IN list (its columns would be named after the data, which
the rewriter cannot know before running it), a statement-form PIVOT without GROUP BY, and a
subquery whose columns are not all named.
"""

from __future__ import annotations

from sqlglot import exp

from meshgov.errors import SqlUnsupportedError


def _refuse(what: str, why: str) -> SqlUnsupportedError:
    return SqlUnsupportedError(f"{what} {why}")


def rewrite_pivots(statement: exp.Expr) -> exp.Expr:
    """The statement with every PIVOT/UNPIVOT written as a SELECT (the same tree if none)."""
    if isinstance(statement, exp.Pivot):
        statement = _statement(statement)
    for node in list(statement.find_all(exp.Subquery, exp.Table)):
        pivots = node.args.get("pivots")
        if pivots:
            _select_form(node, pivots)
    return statement


def _statement(pivot: exp.Pivot) -> exp.Expr:
    source = pivot.this
    if source is None:
        raise _refuse("PIVOT", "needs a source table or subquery")
    if pivot.args.get("unpivot"):
        into = pivot.args.get("into")
        if not isinstance(into, exp.UnpivotColumns) or len(into.expressions) != 1:
            raise _refuse("UNPIVOT", "needs INTO NAME <name> VALUE <value> (one value column)")
        rows = _unpivot(
            source, list(pivot.expressions), into.this.name, into.expressions[0].name, None
        )
        return exp.Select(expressions=[exp.Star()]).from_(rows)
    fields = pivot.expressions
    if len(fields) != 1 or not isinstance(fields[0], exp.In):
        raise _refuse(
            "PIVOT without an IN list",
            "names its columns after the data, which is only known when it runs; list the "
            "values: PIVOT t ON col IN ('a', 'b') USING …",
        )
    group = pivot.args.get("group")
    if not isinstance(group, exp.Group) or not group.expressions:
        raise _refuse("PIVOT without GROUP BY", "groups by every other column; name them")
    aggregates = list(pivot.args.get("using") or [])
    select = exp.Select(expressions=[g.copy() for g in group.expressions])
    select.set("expressions", [*select.expressions, *_pivoted(fields[0], aggregates)])
    select.set("from_", exp.From(this=_as_source(source)))
    select.set("group", group)
    return select


def _pivoted(field: exp.In, aggregates: list[exp.Expr]) -> list[exp.Expr]:
    if not aggregates:
        raise _refuse("PIVOT", "needs USING <aggregate>")
    column = field.this
    out: list[exp.Expr] = []
    for value in field.expressions:
        if not isinstance(value, exp.Literal):
            raise _refuse("PIVOT … IN (…)", "takes literal values only")
        for aggregate in aggregates:
            inner = aggregate.this if isinstance(aggregate, exp.Alias) else aggregate
            name = value.name
            if isinstance(aggregate, exp.Alias) or len(aggregates) > 1:
                name = f"{value.name}_{aggregate.alias_or_name}"
            condition = exp.EQ(this=column.copy(), expression=value.copy())
            filtered = exp.Filter(this=inner.copy(), expression=exp.Where(this=condition))
            out.append(exp.alias_(filtered, name, quoted=True))
    return out


def _as_source(source: exp.Expr) -> exp.Expr:
    if isinstance(source, exp.Table | exp.Subquery):
        return source
    if isinstance(source, exp.Query):
        return exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier("_p")))
    raise _refuse("PIVOT", "needs a table or a subquery as its source")


def _named_outputs(source: exp.Expr) -> list[str]:
    query = source.this if isinstance(source, exp.Subquery) else source
    if not isinstance(query, exp.Select):
        raise _refuse("PIVOT/UNPIVOT over a table", "needs its columns named; use a subquery")
    names = [e.alias_or_name for e in query.expressions]
    if not all(names) or any(isinstance(e, exp.Star) for e in query.expressions):
        raise _refuse("PIVOT/UNPIVOT over a subquery", "needs every column named (no *)")
    return names


def _unpivot(
    source: exp.Expr,
    columns: list[exp.Expr],
    name_column: str,
    value_column: str,
    alias: str | None,
) -> exp.Expr:
    outputs = _named_outputs(source)
    unpivoted = [c.name for c in columns]
    if not unpivoted or any(c not in outputs for c in unpivoted):
        raise _refuse("UNPIVOT", "names a column its source does not have")
    kept = [n for n in outputs if n not in unpivoted]
    branches: list[exp.Select] = []
    for column in unpivoted:
        body = source.this if isinstance(source, exp.Subquery) else source
        branch = exp.Select(
            expressions=[
                *(exp.column(n, quoted=True) for n in kept),
                exp.alias_(exp.Literal.string(column), name_column, quoted=True),
                exp.alias_(exp.column(column, quoted=True), value_column, quoted=True),
            ]
        )
        branch.set(
            "from_",
            exp.From(
                this=exp.Subquery(
                    this=body.copy(), alias=exp.TableAlias(this=exp.to_identifier("_u"))
                )
            ),
        )
        branch.set("where", exp.Where(this=exp.column(column, quoted=True).is_(exp.null()).not_()))
        branches.append(branch)
    union: exp.Expr = branches[0]
    for branch in branches[1:]:
        union = exp.Union(this=union, expression=branch, distinct=False)
    return exp.Subquery(
        this=union, alias=exp.TableAlias(this=exp.to_identifier(alias or "_unpivot"))
    )


def _select_form(node: exp.Expr, pivots: list[exp.Expr]) -> None:
    if len(pivots) != 1 or not isinstance(node, exp.Subquery):
        raise _refuse("PIVOT/UNPIVOT", "is supported once, over a subquery naming its columns")
    pivot = pivots[0]
    node.set("pivots", None)
    alias = node.args.get("alias")
    alias_name = alias.name if isinstance(alias, exp.TableAlias) and alias.name else None
    fields = pivot.args.get("fields") or []
    if len(fields) != 1 or not isinstance(fields[0], exp.In):
        raise _refuse("PIVOT/UNPIVOT", "needs FOR <column> IN (…)")
    field = fields[0]
    if pivot.args.get("unpivot"):
        values = pivot.expressions
        if len(values) != 1:
            raise _refuse("UNPIVOT", "takes one value column")
        replacement = _unpivot(node, list(field.expressions), field.this.name, values[0].name,
                               alias_name)  # fmt: skip
        node.replace(replacement)
        return
    outputs = _named_outputs(node)
    aggregates = list(pivot.expressions)
    used = {c.name for a in aggregates for c in a.find_all(exp.Column)} | {field.this.name}
    group = [n for n in outputs if n not in used]
    select = exp.Select(
        expressions=[*(exp.column(n, quoted=True) for n in group), *_pivoted(field, aggregates)]
    )
    source = node.copy()
    if alias_name is None:  # PostgreSQL before 16 wants every derived table named
        source.set("alias", exp.TableAlias(this=exp.to_identifier("_s")))
    select.set("from_", exp.From(this=source))
    if group:
        select.set("group", exp.Group(expressions=[exp.column(n, quoted=True) for n in group]))
    node.replace(
        exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(alias_name or "_p")))
    )
