"""Trino's OPA access control, answered from ``meshgov.access`` decisions.

Trino POSTs ``{"input": {"context": {"identity": …}, "action": {"operation": …}}}`` to the paths of
the Rego package ``meshgov.trino`` (``/v1/data/meshgov/trino/allow`` …). meshgov translates in
Python rather than Rego: each answer is derived from the same access decision the gateway uses for
the table (principal, purpose, product, port), with row filters and masks rendered in Trino SQL by
the rewriter's own sqlglot builders, so Trino and the gateway can never disagree.

Rules: only tables that are product ports are visible; anything else (DDL, DML, system
information, impersonation, unknown tables) is denied. Unknown request fields are ignored, but every
field the contract defines (``/work/shared/reference/trino-opa.md``, sections 2 to 6) is checked:
a field of the wrong type (``"columns": "a"``, ``[["a"]]``, ``null``: Trino omits absent fields, it
never sends null), a missing required one (``identity.user``, ``action.operation``, a table's
names, ``columns`` of ``SelectFromColumns``) or both ``resource`` and ``filterResources`` make the
request malformed, and a malformed request is denied whatever it asks: ``allow`` → false, ``batch``
→ ``[]``, ``row_filters`` → ``FALSE``, masks → ``NULL`` for every column it names. Every answer is
fail-closed: a failed decision denies (allow), hides (filters), filters everything out (row
filters) or nulls the column (masks); the batch-mask answer is always a list.
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
    """The parts of a Trino OPA request meshgov uses, and what is wrong with it, if anything.

    ``problem`` names the first field that breaks the contract (``None``: well-formed); the
    answers deny a request that has one.
    """

    user: str
    groups: tuple[str, ...]
    operation: str
    resource: Mapping[str, Any]
    filter_resources: tuple[Mapping[str, Any], ...]
    properties: Mapping[str, str]
    problem: str | None = None

    @classmethod
    def parse(cls, body: Any) -> TrinoRequest:
        problem = _contract_problem(body)
        document = body.get("input") if isinstance(body, dict) else None
        document = document if isinstance(document, dict) else {}
        context = _mapping(document.get("context"))
        identity = _mapping(context.get("identity"))
        action = _mapping(document.get("action"))
        user = identity.get("user")
        groups = identity.get("groups")
        raw_filters = action.get("filterResources")
        operation = action.get("operation")
        properties = _mapping(context.get("properties"))
        return cls(
            user=user if isinstance(user, str) else "",
            groups=tuple(g for g in groups if isinstance(g, str))
            if isinstance(groups, list)
            else (),
            operation=operation if isinstance(operation, str) else "",
            resource=_mapping(action.get("resource")),
            filter_resources=tuple(_mapping(r) for r in raw_filters)
            if isinstance(raw_filters, list)
            else (),
            properties={k: v for k, v in properties.items() if isinstance(v, str)},
            problem=problem,
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# --- the wire contract: what each defined field must be --------------------------------------
# A resource kind → (required string fields, optional string fields). ``columns`` (a list of
# strings), ``properties`` (an object of any values) and ``groups`` are checked separately.
_RESOURCE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "catalog": (("name",), ()),
    "schema": (("catalogName", "schemaName"), ()),
    "table": (("catalogName", "schemaName", "tableName"), ()),
    "column": (("catalogName", "schemaName", "tableName", "columnName", "columnType"), ()),
    "user": (("user",), ()),
    "function": (("functionName",), ("catalogName", "schemaName")),
    "systemSessionProperty": (("name",), ()),
    "catalogSessionProperty": (("catalogName", "propertyName"), ()),
}
# Operations whose table resource always carries ``columns`` (possibly ``[]``).
_COLUMNS_REQUIRED = frozenset(
    {"SelectFromColumns", "UpdateTableColumns", "CreateViewWithSelectFromColumns", "FilterColumns"}
)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _string(value: Any, where: str, *, required: bool = True) -> str | None:
    if isinstance(value, str) and (value or not required):
        return None
    return f"{where}: must be a {'non-empty ' if required else ''}string, got {_kind(value)}"


def _strings(value: Any, where: str) -> str | None:
    if not isinstance(value, list):
        return f"{where}: must be a list of strings, got {_kind(value)}"
    for position, item in enumerate(value):
        if not isinstance(item, str):
            return f"{where}[{position}]: must be a string, got {_kind(item)}"
    return None


def _string_map(value: Any, where: str) -> str | None:
    if not isinstance(value, dict):
        return f"{where}: must be an object, got {_kind(value)}"
    for key, item in value.items():
        if not isinstance(item, str):
            return f"{where}.{key}: must be a string, got {_kind(item)}"
    return None


def _object(document: Mapping[str, Any], key: str, where: str) -> str | None:
    """A present ``key`` must be an object (Trino omits absent fields, it never sends null)."""
    if key in document and not isinstance(document[key], dict):
        return f"{where}.{key}: must be an object, got {_kind(document[key])}"
    return None


def _resource_problem(resource: Any, where: str, operation: str) -> str | None:
    if not isinstance(resource, dict):
        return f"{where}: must be an object, got {_kind(resource)}"
    for kind, (required, optional) in _RESOURCE_FIELDS.items():
        if kind not in resource:
            continue
        shape = resource[kind]
        at = f"{where}.{kind}"
        if not isinstance(shape, dict):
            return f"{at}: must be an object, got {_kind(shape)}"
        for name in required:
            if (problem := _string(shape.get(name), f"{at}.{name}")) is not None:
                return problem
        for name in optional:
            if name in shape and (problem := _string(shape[name], f"{at}.{name}")):
                return problem
        if "properties" in shape and (problem := _object(shape, "properties", at)):
            return problem
        if (
            kind == "user"
            and "groups" in shape
            and (problem := _strings(shape["groups"], f"{at}.groups")) is not None
        ):
            return problem
        if kind == "table":
            if "columns" in shape:
                if (problem := _strings(shape["columns"], f"{at}.columns")) is not None:
                    return problem
            elif operation in _COLUMNS_REQUIRED:
                return f"{at}.columns: required for {operation}"
    return None


def _context_problem(context: Mapping[str, Any], identity: Mapping[str, Any]) -> str | None:
    """``input.context``: identity (user, groups, extraCredentials), queryId, softwareStack,
    properties."""
    where = "input.context"
    if (problem := _string(identity.get("user"), f"{where}.identity.user")) is not None:
        return problem
    if (problem := _strings(identity.get("groups", []), f"{where}.identity.groups")) is not None:
        return problem
    if "extraCredentials" in identity and (
        problem := _string_map(identity["extraCredentials"], f"{where}.identity.extraCredentials")
    ):
        return problem
    if "queryId" in context and (problem := _string(context["queryId"], f"{where}.queryId")):
        return problem
    if (problem := _object(context, "softwareStack", where)) is not None:
        return problem
    version = _mapping(context.get("softwareStack")).get("trinoVersion", "UNKNOWN")
    if problem := _string(version, f"{where}.softwareStack.trinoVersion"):
        return problem
    if "properties" in context:
        return _string_map(context["properties"], f"{where}.properties")
    return None


def _contract_problem(body: Any) -> str | None:
    """The first field of a Trino request that breaks the contract, or ``None``."""
    if not isinstance(body, dict):
        return f"body: must be an object, got {_kind(body)}"
    document = body.get("input")
    if not isinstance(document, dict):
        return f"input: must be an object, got {_kind(document)}"
    context, action = document.get("context"), document.get("action")
    if not isinstance(context, dict):
        return f"input.context: must be an object, got {_kind(context)}"
    if not isinstance(action, dict):
        return f"input.action: must be an object, got {_kind(action)}"
    identity = context.get("identity")
    if not isinstance(identity, dict):
        return f"input.context.identity: must be an object, got {_kind(identity)}"
    if (problem := _context_problem(context, identity)) is not None:
        return problem
    if (problem := _string(action.get("operation"), "input.action.operation")) is not None:
        return problem
    operation = str(action["operation"])
    if "resource" in action and "filterResources" in action:
        return "input.action: has both resource and filterResources"
    if "resource" in action and (
        problem := _resource_problem(action["resource"], "input.action.resource", operation)
    ):
        return problem
    if "filterResources" in action:
        resources = action["filterResources"]
        if not isinstance(resources, list):
            return f"input.action.filterResources: must be a list, got {_kind(resources)}"
        for position, resource in enumerate(resources):
            where = f"input.action.filterResources[{position}]"
            if (problem := _resource_problem(resource, where, operation)) is not None:
                return problem
    if "targetResource" in action:
        target = action["targetResource"]
        if problem := _resource_problem(target, "input.action.targetResource", operation):
            return problem
    if "grantee" in action:
        grantee = action["grantee"]
        if not isinstance(grantee, dict):
            return f"input.action.grantee: must be an object, got {_kind(grantee)}"
        for name in ("name", "type"):
            if problem := _string(grantee.get(name), f"input.action.grantee.{name}"):
                return problem
    return None


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
        if request.problem is not None:
            return False  # malformed: denied, whatever it asks
        operation = request.operation
        if operation in ALWAYS_ALLOWED:
            return True
        resource = request.resource
        if operation in READ_TABLE_OPERATIONS or operation == "FilterTables":
            readable = self._readable(_mapping(resource.get("table")))
            if readable is None:
                return False
            _, decision = readable
            if operation == "SelectFromColumns":
                # Well-formed: ``columns`` is a list of strings (checked by ``parse``).
                columns = _mapping(resource.get("table")).get("columns")
                if not isinstance(columns, list):
                    return False
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
        if request.problem is not None:
            return []  # malformed: nothing is allowed
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
                request.user,
                request.groups,
                request.operation,
                resource,
                (),
                request.properties,
                request.problem,
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
        if request.problem is not None:
            return [{"expression": "FALSE"}]  # malformed: no row is visible
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
    def single_column_mask(self, request: TrinoRequest) -> dict[str, str] | None:
        """The mask of the request's one column; a malformed request nulls it."""
        column = _mapping(request.resource.get("column"))
        if request.problem is not None:
            return {"expression": _typed_null(column.get("columnType"))}
        return self.column_mask(column)

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
        if declared.type.value == "string":
            # Trino requires the mask to coerce to the column's type, and text of another length
            # does not coerce to varchar(n) or char(n): cast it (Trino truncates or pads).
            rendered = _cast_to(rendered, column_type)
        return {"expression": rendered.sql(dialect=DIALECT)}

    # -- opa.policy.batch-column-masking-uri --------------------------------------------------
    def batch_column_masks(self, request: TrinoRequest) -> list[dict[str, Any]]:
        """Masks by index into ``filterResources``; a malformed request nulls every column it
        lists (and is ``[]`` when it lists none: there is nothing to mask, and Trino needs a
        list)."""
        answers: list[dict[str, Any]] = []
        for index, resource in enumerate(request.filter_resources):
            column = _mapping(resource.get("column"))
            if request.problem is not None:
                answers.append(
                    {
                        "index": index,
                        "viewExpression": {"expression": _typed_null(column.get("columnType"))},
                    }
                )
                continue
            mask = self.column_mask(column)
            if mask is not None:
                answers.append({"index": index, "viewExpression": mask})
        return answers


def _typed_null(column_type: Any) -> str:
    """``CAST(NULL AS <type>)`` built by sqlglot; a plain NULL when the type does not parse (or
    is not a string)."""
    return _cast_to(exp.null(), column_type).sql(dialect=DIALECT)


def _cast_to(expression: exp.Expr, column_type: Any) -> exp.Expr:
    """``CAST(<expression> AS <column_type>)``; the expression alone when the type is missing or
    does not parse (NULL coerces to any type; a mask then keeps its own type)."""
    if isinstance(column_type, str) and column_type:
        try:
            data_type = exp.DataType.build(column_type, dialect=DIALECT)
        except Exception:  # an unknown type name
            return expression
        return exp.cast(expression, data_type)
    return expression


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
