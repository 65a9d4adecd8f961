"""Trino's OPA access control, answered from ``meshgov.access`` decisions.

Trino POSTs ``{"input": {"context": {"identity": …}, "action": {"operation": …}}}`` to the paths of
the Rego package ``meshgov.trino`` (``/v1/data/meshgov/trino/allow`` …). meshgov translates in
Python rather than Rego: each answer is derived from the same access decision the gateway uses for
the table (principal, purpose, product, port), with row filters and masks rendered in Trino SQL by
the rewriter's own sqlglot builders, so Trino and the gateway can never disagree.

Rules: only tables that are product ports are visible; anything else (DDL, DML, system
information, impersonation, unknown tables) is denied. Unknown request fields are ignored. Every
answer is fail-closed: a failed decision denies (allow), hides (filters), filters everything out
(row filters) or nulls the column (masks); the batch-mask answer is always a list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from meshgov.core.principal import Principal
from meshgov.core.sql.filters import bind_filter, combine_filters
from meshgov.core.sql.masks import mask_expression
from meshgov.core.sql.model import AccessDecision, PortColumn, PortRef
from meshgov.errors import MeshgovError

DIALECT = "trino"
# Operations that reveal nothing about product data and that every query needs.
ALWAYS_ALLOWED = frozenset(
    {
        "ExecuteQuery",
        "AccessCatalog",
        "ShowSchemas",
        "ShowTables",
        "FilterCatalogs",
        "FilterSchemas",
    }
)
# Operations allowed on a table the principal may read.
READ_TABLE_OPERATIONS = frozenset({"SelectFromColumns", "ShowColumns", "ShowCreateTable"})
BUILTIN_FUNCTION_SCHEMA = ("system", "builtin")

Decide = Callable[[PortRef], AccessDecision]


@dataclass(frozen=True)
class TrinoRequest:
    """The parts of a Trino OPA request meshgov uses (parsed leniently)."""

    user: str
    groups: tuple[str, ...]
    operation: str
    resource: Mapping[str, Any]
    filter_resources: tuple[Mapping[str, Any], ...]
    properties: Mapping[str, str]

    @classmethod
    def parse(cls, body: Any) -> TrinoRequest:
        document = body.get("input") if isinstance(body, dict) else None
        document = document if isinstance(document, dict) else {}
        context = _mapping(document.get("context"))
        identity = _mapping(context.get("identity"))
        action = _mapping(document.get("action"))
        groups = identity.get("groups")
        raw_filters = action.get("filterResources")
        return cls(
            user=str(identity.get("user") or ""),
            groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
            operation=str(action.get("operation") or ""),
            resource=_mapping(action.get("resource")),
            filter_resources=tuple(
                _mapping(r) for r in raw_filters if isinstance(raw_filters, list)
            )
            if isinstance(raw_filters, list)
            else (),
            properties={str(k): str(v) for k, v in _mapping(context.get("properties")).items()},
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _table_parts(table: Mapping[str, Any]) -> tuple[str, ...] | None:
    parts = tuple(
        str(table.get(k) or "").lower() for k in ("catalogName", "schemaName", "tableName")
    )
    return parts if parts[-1] else None


class PortIndex:
    """Trino ``catalog.schema.table`` → the product port whose physical name it ends with."""

    def __init__(self, ports: Sequence[PortRef]) -> None:
        self._ports = list(ports)

    def resolve(self, table: Mapping[str, Any]) -> PortRef | None:
        parts = _table_parts(table)
        if parts is None:
            return None
        matches = [p for p in self._ports if parts[-len(p.table) :] == p.table]
        # Two ports behind one Trino name would be ambiguous: treat as unknown (deny).
        return matches[0] if len(matches) == 1 else None


class TrinoAuthorizer:
    """Answers for one request's principal and purpose, deciding each table once."""

    def __init__(self, index: PortIndex, decide: Decide, principal: Principal) -> None:
        self._index = index
        self._decide = decide
        self._principal = principal
        self._decisions: dict[tuple[str, str], AccessDecision] = {}

    def _decision(self, port: PortRef) -> AccessDecision:
        key = (port.product, port.port)
        if key not in self._decisions:
            try:
                self._decisions[key] = self._decide(port)
            except MeshgovError as exc:
                self._decisions[key] = AccessDecision.deny(exc.message)
        return self._decisions[key]

    def decisions(self) -> dict[tuple[str, str], AccessDecision]:
        return dict(self._decisions)

    def _readable(self, table: Mapping[str, Any]) -> tuple[PortRef, AccessDecision] | None:
        port = self._index.resolve(table)
        if port is None:
            return None
        decision = self._decision(port)
        return (port, decision) if decision.allow else None

    # -- opa.policy.uri ---------------------------------------------------------------------
    def allow(self, request: TrinoRequest) -> bool:
        operation = request.operation
        if operation in ALWAYS_ALLOWED:
            return True
        resource = request.resource
        if operation in READ_TABLE_OPERATIONS or operation == "FilterTables":
            readable = self._readable(_mapping(resource.get("table")))
            if readable is None:
                return False
            _, decision = readable
            columns = resource.get("table", {}).get("columns")
            if operation == "SelectFromColumns" and isinstance(columns, list):
                return not any(str(c).lower() in decision.hidden_columns for c in columns)
            return True
        if operation == "FilterColumns":
            return bool(self.allowed_columns(_mapping(resource.get("table"))))
        if operation in {"ExecuteFunction", "FilterFunctions"}:
            return _is_builtin(_mapping(resource.get("function")))
        if operation in {"ViewQueryOwnedBy", "KillQueryOwnedBy", "FilterViewQueryOwnedBy"}:
            return str(_mapping(resource.get("user")).get("user", "")) == self._principal.id
        return False

    # -- opa.policy.batched-uri ---------------------------------------------------------------
    def batch(self, request: TrinoRequest) -> list[int]:
        resources = request.filter_resources
        if request.operation == "FilterColumns":
            # Trap: one table per request; indices point into its columns, not filterResources.
            if len(resources) != 1:
                return []
            table = _mapping(resources[0].get("table"))
            columns = table.get("columns")
            if not isinstance(columns, list):
                return []
            allowed = self.allowed_columns(table)
            return [i for i, c in enumerate(columns) if str(c).lower() in allowed]
        allowed_indices: list[int] = []
        for index, resource in enumerate(resources):
            single = TrinoRequest(
                request.user, request.groups, request.operation, resource, (), request.properties
            )
            if self.allow(single):
                allowed_indices.append(index)
        return allowed_indices

    def allowed_columns(self, table: Mapping[str, Any]) -> set[str]:
        readable = self._readable(table)
        if readable is None:
            return set()
        port, decision = readable
        columns = table.get("columns")
        names = [str(c) for c in columns] if isinstance(columns, list) else []
        return {
            n.lower()
            for n in names
            if port.column(n) is not None and n.lower() not in decision.hidden_columns
        }

    # -- opa.policy.row-filters-uri -----------------------------------------------------------
    def row_filters(self, request: TrinoRequest) -> list[dict[str, str]]:
        table = _mapping(request.resource.get("table"))
        port = self._index.resolve(table)
        if port is None:
            return [{"expression": "FALSE"}]  # not a product: nothing is visible
        decision = self._decision(port)
        if not decision.allow:
            return [{"expression": "FALSE"}]
        if not decision.row_filters:
            return []
        try:
            predicates = [bind_filter(f, self._principal, port) for f in decision.row_filters]
            expression = combine_filters(predicates).sql(dialect=DIALECT)
        except MeshgovError:
            return [{"expression": "FALSE"}]
        return [{"expression": expression}]

    # -- opa.policy.column-masking-uri --------------------------------------------------------
    def column_mask(self, column: Mapping[str, Any]) -> dict[str, str] | None:
        port = self._index.resolve(column)
        name = str(column.get("columnName") or "")
        column_type = str(column.get("columnType") or "")
        if port is None:
            return {"expression": _typed_null(column_type)}
        decision = self._decision(port)
        declared = port.column(name)
        lowered = name.lower()
        if not decision.allow or declared is None or lowered in decision.hidden_columns:
            return {"expression": _typed_null(column_type)}
        mask = decision.masks.get(lowered)
        if mask is None:
            return None
        try:
            rendered = mask_expression(
                PortColumn(declared.name, declared.type, declared.mask_expr), mask
            )
        except MeshgovError:
            return {"expression": _typed_null(column_type)}
        return {"expression": rendered.sql(dialect=DIALECT)}

    # -- opa.policy.batch-column-masking-uri --------------------------------------------------
    def batch_column_masks(self, request: TrinoRequest) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        for index, resource in enumerate(request.filter_resources):
            column = _mapping(resource.get("column"))
            mask = self.column_mask(column)
            if mask is not None:
                answers.append({"index": index, "viewExpression": mask})
        return answers


def _typed_null(column_type: str) -> str:
    """``CAST(NULL AS <type>)`` built by sqlglot; a plain NULL when the type does not parse."""
    if column_type:
        try:
            data_type = exp.DataType.build(column_type, dialect=DIALECT)
            return exp.cast(exp.null(), data_type).sql(dialect=DIALECT)
        except Exception:  # an unknown type name: NULL coerces to any type
            return "NULL"
    return "NULL"


def _is_builtin(function: Mapping[str, Any]) -> bool:
    catalog = str(function.get("catalogName") or "").lower()
    schema = str(function.get("schemaName") or "").lower()
    return (catalog, schema) == BUILTIN_FUNCTION_SCHEMA


def trino_principal(request: TrinoRequest, known: Mapping[str, Principal]) -> Principal:
    """The principal Trino names: a known principal (attributes, clearances) or a bare one."""
    found = known.get(request.user)
    if found is not None:
        return found
    return Principal(id=request.user or "anonymous", groups=request.groups)
