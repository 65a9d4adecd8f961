"""Row-filter templates: parsed once, principal values substituted as literal nodes.

``{principal.id}``, ``{principal.domain}`` and ``{principal.groups}`` are the principal's own
fields; ``{principal.X}`` is ``attributes.X``. A list becomes an IN list (``col = {…}`` turns into
``col IN (…)``); a missing or null value denies. Values never enter the SQL as text.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from sqlglot import exp

from meshgov.core.principal import Principal
from meshgov.core.sql.model import PortRef
from meshgov.core.sql.validate import parse_fragment
from meshgov.errors import AccessDenied, SqlUnsupportedError

_OWN_FIELDS = frozenset({"id", "domain", "groups"})


@lru_cache(maxsize=4096)
def parse_filter(template: str) -> exp.Expr:
    """Parse a row-filter template (generic SQL) and check it against the allow-list."""
    return parse_fragment(template, "row filter")


def _placeholder(node: exp.Expr | None) -> str | None:
    """``{principal.x}`` parses as a one-field struct holding column ``principal.x``."""
    if not isinstance(node, exp.Struct) or len(node.expressions) != 1:
        return None
    inner = node.expressions[0]
    if isinstance(inner, exp.Column) and inner.table.lower() == "principal" and not inner.db:
        return inner.name
    return None


def principal_value(principal: Principal, name: str) -> Any:
    if name in _OWN_FIELDS:
        return list(principal.groups) if name == "groups" else getattr(principal, name)
    return principal.attributes.get(name)


def _literal(value: Any, where: str) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            # sqlglot writes nan/inf as bare words: identifiers, not literals.
            raise AccessDenied(f"{where}: principal value {value} is not a finite number")
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise AccessDenied(f"{where}: principal value of type {type(value).__name__} cannot be used")


def bind_filter(template: str, principal: Principal, port: PortRef) -> exp.Expr:
    """The filter of ``port`` for ``principal`` as a predicate over the port's raw columns.

    Raises:
        AccessDenied: a placeholder has no value for this principal, or the filter is invalid.
    """
    where = f"row filter of {port.product}:{port.port}"
    parsed = parse_filter(template)
    for column in parsed.find_all(exp.Column):
        if _placeholder(column.parent) is None and port.column(column.name) is None:
            raise SqlUnsupportedError(f"{where} refers to unknown column '{column.name}'")

    def substitute(node: exp.Expr) -> exp.Expr:
        name = _placeholder(node)
        if name is None:
            declared = port.column(node.name) if isinstance(node, exp.Column) else None
            if declared is not None and _placeholder(node.parent) is None:
                return exp.column(declared.name, quoted=True)
            return node
        value = principal_value(principal, name)
        if value is None or value == "":
            raise AccessDenied(
                f"{where} needs principal.{name}, which principal '{principal.id}' does not have"
            )
        if not isinstance(value, list):
            return _literal(value, where)
        items = [_literal(v, where) for v in value]
        parent = node.parent
        negate = isinstance(parent, exp.NEQ)
        if isinstance(parent, exp.In) and parent.args.get("field") is node:
            negate = False
        elif not isinstance(parent, exp.EQ | exp.NEQ):
            raise SqlUnsupportedError(f"{where}: list principal.{name} is only usable with = or IN")
        # The IN list is built at the parent; mark this node with its literals.
        marker = exp.Tuple(expressions=items)
        marker.meta["meshgov_list"] = "not_in" if negate else "in"
        return marker

    bound = parsed.transform(substitute)
    return bound.transform(_expand_lists)


def _expand_lists(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.In) and _is_list_marker(node.args.get("field")):
        items = node.args["field"].expressions
        if not items:
            return exp.false()
        return exp.In(this=node.this, expressions=[i.copy() for i in items])
    if isinstance(node, exp.EQ | exp.NEQ):
        for side, other in ((node.expression, node.this), (node.this, node.expression)):
            if _is_list_marker(side):
                items = side.expressions
                if not items:
                    return exp.false() if isinstance(node, exp.EQ) else exp.true()
                in_list = exp.In(this=other.copy(), expressions=[i.copy() for i in items])
                return in_list if isinstance(node, exp.EQ) else exp.Not(this=in_list)
    return node


def _is_list_marker(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Tuple) and "meshgov_list" in node.meta


def combine_filters(predicates: list[exp.Expr]) -> exp.Expr:
    """Alternatives of several grants: a row is visible if any filter holds."""
    wrapped = [exp.Paren(this=p) for p in predicates]
    return exp.or_(*wrapped) if len(wrapped) > 1 else predicates[0]
