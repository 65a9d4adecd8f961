"""Preparing statements: splitting, classifying and parsing a text (cached per text), the
types announced for parameters, and binding parameters as typed literals in the tree."""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from meshgov.pgwire.catalogue import CatalogueRefused, is_catalogue_query
from meshgov.pgwire.connection import Connection
from meshgov.pgwire.dialect import DIALECT as WIRE_DIALECT
from meshgov.pgwire.errors import WireError
from meshgov.pgwire.state import Prepared
from meshgov.pgwire.statements import StatementError, classify, split
from meshgov.pgwire.types import (
    INT8,
    LOGICAL_OIDS,
    TEXT,
)

PREPARED_CACHE_SIZE = 2048


class StatementPreparer(Connection):
    """Statements parsed once per text and parameter types, shared by the listener's sessions."""

    def split(self, text: str) -> tuple[str, ...]:
        """The statements of a simple Query message (cached per text, like ``prepare``: tools
        and pools send the same texts again; splitting is tokenizing, which depends on nothing
        but the text)."""
        cache = self.listener.split_cache
        known = cache.get(text)
        if known is not None:
            return known
        try:
            texts = tuple(split(text))
        except StatementError as exc:
            raise WireError(exc.sqlstate, exc.message) from None
        if len(cache) >= PREPARED_CACHE_SIZE:
            cache.clear()
        cache[text] = texts
        return texts

    def prepare(self, text: str, param_oids: list[int]) -> Prepared:
        """Classify and parse ``text`` (cached per text and parameter types: a statement sent
        again, as tools and pools do, is not parsed again; trees are never changed in place).
        The key holds the principal, purpose and revisions too: the types announced for untyped
        parameters follow the columns this principal sees (``column_type``)."""
        serving = self.listener.service.state
        key = (
            text,
            tuple(param_oids),
            self.state.principal.cache_key(),
            self.state.purpose,
            serving.revision,
            serving.catalog.revision,
        )
        cache = self.listener.prepared_cache
        known = cache.get(key)
        if known is not None:
            return known
        prepared = self._prepare(text, param_oids)
        if len(cache) >= PREPARED_CACHE_SIZE:
            cache.clear()
        cache[key] = prepared
        return prepared

    def _prepare(self, text: str, param_oids: list[int]) -> Prepared:
        try:
            statement = classify(text)
        except StatementError as exc:
            raise WireError(exc.sqlstate, exc.message) from None
        tree: exp.Expression | None = None
        catalogue = False
        if statement.kind in {"query", "declare", "copy"}:
            tree = parse_query(statement.text)
            try:
                catalogue = is_catalogue_query(tree)
            except CatalogueRefused as exc:
                raise WireError(exc.sqlstate, exc.message) from None
            count = max((placeholder_number(p) for p in placeholders(tree)), default=0)
            oids = list(param_oids) + [0] * max(count - len(param_oids), 0)
            param_oids = [
                oid or self.infer_parameter_type(tree, index + 1) for index, oid in enumerate(oids)
            ]
        return Prepared(statement, tree, param_oids, catalogue)

    def infer_parameter_type(self, tree: exp.Expression, number: int) -> int:
        """The type announced for ``$number`` (asyncpg encodes arguments by it)."""
        for node in placeholders(tree):
            if placeholder_number(node) != number:
                continue
            parent = node.parent
            if isinstance(parent, exp.Cast):
                from meshgov.pgwire.types import oid_of_sql_type

                return oid_of_sql_type(parent.to)
            if isinstance(parent, exp.Limit | exp.Offset | exp.Fetch):
                return INT8
            if isinstance(parent, exp.Binary | exp.In | exp.Between):
                for column in parent.find_all(exp.Column):
                    oid = self.column_type(tree, column.name)
                    if oid:
                        return oid
        return TEXT

    def column_type(self, tree: exp.Expression, name: str) -> int:
        """The type of column ``name`` as the manifests declare it, in the tables ``tree``
        reads (a masked column compared with a parameter is text either way), if the session's
        principal sees it: a column hidden from it is unknown (text), as an absent one is, so
        that a ParameterDescription does not tell a hidden column's name and type."""
        service = self.listener.service
        serving = service.state
        named = {t.name.lower() for t in tree.find_all(exp.Table)}
        for port in service.ports(serving):
            if port.table[-1] not in named:
                continue
            column = port.column(name)
            if column is None or column.mask_expr is not None:
                continue
            decision = service.access_decision(
                serving, self.state.principal, self.state.purpose, port
            )
            if decision.allow and column.name not in decision.hidden_columns:
                return LOGICAL_OIDS.get(str(column.type), TEXT)
        return 0


def parse_query(text: str) -> exp.Expression:
    try:
        trees = sqlglot.parse(text, read=WIRE_DIALECT)
    except (ParseError, TokenError) as exc:
        raise WireError("42601", f"syntax error: {str(exc).splitlines()[0]}") from None
    found = [t for t in trees if isinstance(t, exp.Expression)]
    if len(found) != 1:
        raise WireError("42601", "expected one statement")
    return found[0]


def generated_sql(tree: exp.Expression) -> str:
    """The PostgreSQL text of a statement's tree, generated once per tree (trees are shared by
    the prepared-statement cache and never changed in place)."""
    cached = tree.meta.get("meshgov_sql")
    if cached is None:
        cached = tree.sql("postgres")
        tree.meta["meshgov_sql"] = cached
    return str(cached)


def placeholders(tree: exp.Expression) -> list[exp.Expression]:
    return [p for p in tree.find_all(exp.Parameter) if isinstance(p.this, exp.Literal)]


def placeholder_number(node: exp.Expression) -> int:
    return int(node.this.name)


def bind_parameters(tree: exp.Expression, literals: Sequence[exp.Expression]) -> exp.Expression:
    """A copy of ``tree`` with each ``$n`` replaced by its typed literal."""
    bound = tree.copy()
    bound.meta.pop("meshgov_sql", None)  # the copy is another statement
    for node in placeholders(bound):
        number = placeholder_number(node)
        if not 1 <= number <= len(literals):
            raise WireError("08P01", f"there is no parameter ${number}")
        node.replace(literals[number - 1].copy())
    return bound
