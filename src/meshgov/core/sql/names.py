"""Every column reference must name a column of a source in scope; nothing is left to the engine.

SQL engines give bare names a meaning of their own when no column binds them: ``user``,
``current_role``, ``current_schema``… are session functions in PostgreSQL and DuckDB, and sqlglot
parses them as plain column names (so they pass the function allow-list). A name is therefore
accepted only when it resolves, walking outwards through the enclosing queries, to

- a column of a source in the FROM/JOIN list of an enclosing SELECT: a product table (its declared
  columns; hidden ones were denied before), a CTE or derived table (its output names, ``*``
  expanded), an UNNEST/VALUES/LATERAL alias and its column list;
- a source itself (a table used as a row value, ``SELECT c FROM t AS c``);
- an output alias of an enclosing SELECT (or of a set operation, for its ORDER BY);
- a struct field of such a column (``t.s.f``).

Anything else is denied by name. Generous on purpose (case-insensitive, every enclosing scope, every
alias): accepting a name some scope has can only make the engine report an unknown column. The
names engines evaluate as session functions are denied unqualified even when a column has them
(an engine may prefer the function, PostgreSQL always does for ``user``): qualify them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from meshgov.core.sql.model import PortRef
from meshgov.errors import SqlUnsupportedError, UnknownNameError

# Bare names that engines evaluate as niladic (keyword) functions: the SQL standard's and
# PostgreSQL's, DuckDB's, Trino's, Snowflake's, BigQuery's and Spark's.
SESSION_KEYWORDS = frozenset(
    {
        "user", "current_user", "session_user", "system_user", "current_role", "current_schema",
        "current_schemas", "current_catalog", "current_database", "current_path",
        "current_query", "current_setting", "current_date", "current_time", "current_timestamp",
        "current_timezone", "current_region", "current_account", "current_warehouse",
        "current_client", "current_session", "current_statement", "current_transaction",
        "current_version", "current_ip_address", "localtime", "localtimestamp", "sysdate",
        "systimestamp",
    }
)  # fmt: skip

_Names = frozenset[str]
_SOURCE_KINDS = (exp.Table, exp.Subquery, exp.Unnest, exp.Values, exp.Lateral)


class _Resolver:
    def __init__(self, ports: dict[int, PortRef], ctes: list[exp.CTE]) -> None:
        self.ports = ports
        self.ctes: dict[str, list[exp.CTE]] = {}
        for cte in ctes:
            self.ctes.setdefault(cte.alias_or_name.lower(), []).append(cte)
        self.outputs: dict[int, _Names] = {}
        self.sources: dict[int, dict[str, exp.Expr]] = {}
        self.aliases: dict[int, _Names] = {}
        self.enclosing: dict[int, exp.Expr | None] | None = None

    # What a source provides.
    def output_names(self, node: exp.Expr) -> _Names:
        key = id(node)
        found = self.outputs.get(key)
        if found is None:
            self.outputs[key] = frozenset()  # a recursive CTE reading itself: its columns list
            found = self._compute_outputs(node)
            self.outputs[key] = found
        return found

    def _compute_outputs(self, node: exp.Expr) -> _Names:
        names: set[str] = set()
        alias = node.args.get("alias")
        if isinstance(alias, exp.TableAlias):
            names.update(c.name.lower() for c in alias.columns)
        if isinstance(node, exp.Table):
            port = self.ports.get(id(node))
            if port is not None:
                names.update(c.name.lower() for c in port.columns)
            else:
                for cte in self.ctes.get(node.name.lower(), ()):
                    names |= self.output_names(cte)
        elif isinstance(node, exp.CTE | exp.Subquery | exp.Lateral):
            names |= self.output_names(node.this)
            if isinstance(node, exp.Lateral) and node.alias:
                names.add(node.alias.lower())
        elif isinstance(node, exp.SetOperation):
            names |= self.output_names(node.this) | self.output_names(node.expression)
        elif isinstance(node, exp.Select):
            for projection in node.expressions:
                if isinstance(projection, exp.Star):
                    for source in self.sources_of(node).values():
                        names |= self.output_names(source)
                elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                    starred = self.sources_of(node).get(projection.table.lower())
                    if starred is not None:
                        names |= self.output_names(starred)
                elif projection.alias_or_name:
                    names.add(projection.alias_or_name.lower())
        elif isinstance(node, exp.Unnest):
            names.update(("unnest", "ordinality"))
            if node.alias:
                names.add(node.alias.lower())
        return frozenset(names)

    # What a SELECT has in scope.
    def sources_of(self, select: exp.Expr) -> dict[str, exp.Expr]:
        key = id(select)
        found = self.sources.get(key)
        if found is None:
            found = {}
            candidates: list[exp.Expr] = []
            source = select.args.get("from_") or select.args.get("from")
            if isinstance(source, exp.From):
                candidates.append(source.this)
            candidates.extend(j.this for j in select.args.get("joins") or ())
            candidates.extend(select.args.get("laterals") or ())
            while candidates:
                node: exp.Expr | None = candidates.pop()
                if node is None:
                    continue
                if isinstance(node, exp.Subquery) and (
                    not isinstance(node.this, exp.Query)
                    or (isinstance(node.this, exp.Subquery) and not node.alias)
                ):
                    # `FROM (a JOIN b)`, `FROM ((a JOIN b))`: the sources inside.
                    candidates.append(node.this)
                elif isinstance(node, _SOURCE_KINDS):
                    found[node.alias_or_name.lower()] = node
                # `FROM (a JOIN b)`: sqlglot hangs the joins on the first source.
                candidates.extend(j.this for j in node.args.get("joins") or ())
            self.sources[key] = found
        return found

    def aliases_of(self, query: exp.Expr) -> _Names:
        key = id(query)
        found = self.aliases.get(key)
        if found is None:
            if isinstance(query, exp.Select):
                found = frozenset(
                    p.alias.lower() for p in query.expressions if isinstance(p, exp.Alias)
                )
            else:
                found = self.output_names(query)
            self.aliases[key] = found
        return found

    def resolves(self, column: exp.Column) -> bool:
        name = column.name.lower()
        qualifier = column.table.lower()
        outer = column.args.get("db")
        node = self.enclosing_query(column)
        while node is not None:
            if isinstance(node, exp.Select):
                sources = self.sources_of(node)
                if qualifier:
                    source = sources.get(qualifier)
                    if source is not None:
                        return name in self.output_names(source)
                    # `t.s.f` / `s.f`: field f of a struct column s.
                    holder = sources.get(outer.name.lower()) if outer is not None else None
                    if holder is not None:
                        return qualifier in self.output_names(holder)
                    if outer is None and any(
                        qualifier in self.output_names(s) for s in sources.values()
                    ):
                        return True
                else:
                    if name in sources or name in self.aliases_of(node):
                        return True
                    if any(name in self.output_names(s) for s in sources.values()):
                        return True
            elif (
                isinstance(node, exp.SetOperation)
                and not qualifier
                and name in self.aliases_of(node)
            ):
                return True
            node = self.enclosing_query(node)
        return False

    def enclosing_query(self, node: exp.Expr) -> exp.Expr | None:
        """The nearest SELECT or set operation above ``node``. Computed for the whole tree in one
        pass, the first time: walking up from every column is quadratic in a deep expression."""
        if self.enclosing is None:
            root = node.root()
            self.enclosing = {}
            for each in root.walk(bfs=False):  # parents before children
                parent = each.parent
                if parent is None:
                    continue
                if isinstance(parent, exp.Select | exp.SetOperation):
                    self.enclosing[id(each)] = parent
                else:
                    self.enclosing[id(each)] = self.enclosing.get(id(parent))
        return self.enclosing.get(id(node))


def check_column_names(
    columns: list[exp.Column], ctes: list[exp.CTE], ports: dict[int, PortRef]
) -> None:
    """Deny a column reference that no source in scope provides, or a bare session keyword.

    ``ports``: ``id(table node) → port`` for every product table of the statement.
    """
    resolver: _Resolver | None = None
    for column in columns:
        if not isinstance(column.this, exp.Identifier):
            continue  # `t.*`: its qualifier is checked when the projection is expanded
        name = column.name
        if not column.table and name.lower() in SESSION_KEYWORDS:
            raise SqlUnsupportedError(
                f"'{name}' is a SQL keyword that engines evaluate as a session function "
                f"(user, role, schema, database…), not a column; a column of that name must be "
                f"qualified with its table (t.{name})"
            )
        if resolver is None:
            resolver = _Resolver(ports, ctes)
        if not resolver.resolves(column):
            raise UnknownNameError(
                f"column '{column.sql()}' does not exist in the tables and subqueries it can "
                "come from; names that are not columns in scope are not left to the engine",
                name,
                "column",
            )


def nearest_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (a typo, or a table named without its schema), if any.

    ``customers`` finds ``customer.customers``; ``emial`` finds ``email``. Callers pass only the
    names the principal may see, so a suggestion never reveals another.
    """
    import difflib

    by_lower = {c.lower(): c for c in candidates}
    wanted = name.lower()
    last = wanted.rsplit(".", 1)[-1]
    same_last = sorted(c for c in by_lower if c.rsplit(".", 1)[-1] == last and c != wanted)
    if same_last:
        return by_lower[same_last[0]]
    close = difflib.get_close_matches(wanted, list(by_lower), n=1, cutoff=0.75)
    if not close:
        tails = {c.rsplit(".", 1)[-1]: c for c in by_lower}
        close = [tails[t] for t in difflib.get_close_matches(last, list(tails), n=1, cutoff=0.75)]
    return by_lower[close[0]] if close else None
