"""Trino's OPA access control, answered from ``meshgov.access`` decisions.

Trino POSTs ``{"input": {"context": {"identity": …}, "action": {"operation": …}}}`` to the paths of
the Rego package ``meshgov.trino`` (``/v1/data/meshgov/trino/allow`` …). meshgov translates in
Python rather than Rego: each answer is derived from the same access decision the gateway uses for
the table (principal, purpose, product, port), with row filters and masks rendered in Trino SQL by
the rewriter's own sqlglot builders, so Trino and the gateway can never disagree.

Rules (docs/service.md, *Trino*): a table is a product port only in the configured Trino catalogs
(``MESHGOV_TRINO_CATALOGS``); the metadata tables Trino filters itself (``information_schema`` of
those catalogs, ``system.jdbc``, ``system.metadata``) are readable, and the ``Filter*`` answers
show each principal only the catalogs, schemas, tables and declared, non-hidden columns it may
read; session properties are allowed by a configured allow-list; anything else (DDL, DML, system
information, impersonation, unknown tables) is denied.

Unknown request fields are ignored, and optional fields may be absent or ``null`` (newer Trino
versions serialise an empty optional as null); every field the contract requires
(``/work/shared/reference/trino-opa.md``, sections 2 to 6) is checked: a field of the wrong type,
a missing required one (``identity.user``, ``action.operation``, a table's names, ``columns`` of
``SelectFromColumns``) or both ``resource`` and ``filterResources`` make the request malformed,
and a malformed request is denied whatever it asks: ``allow`` → false, ``batch`` → ``[]``,
``row_filters`` → ``FALSE``, masks → ``NULL`` for every column it names. Every answer is
fail-closed: a failed decision denies (allow), hides (filters), filters everything out (row
filters) or nulls the column (masks); the batch-mask answer is always a list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sqlglot import exp

from meshgov.config import DEFAULT_TRINO_SESSION_PROPERTIES, Settings
from meshgov.core.principal import Principal
from meshgov.core.sql.filters import bind_filter, combine_filters
from meshgov.core.sql.masks import HASH_HEX_LENGTH, mask_expression
from meshgov.core.sql.model import AccessDecision, Mask, PortColumn, PortRef
from meshgov.errors import MeshgovError

DIALECT = "trino"
SYSTEM_CATALOG = "system"
INFORMATION_SCHEMA = "information_schema"
# Schemas of the ``system`` catalog that JDBC drivers and BI tools read for metadata; Trino filters
# their rows through FilterCatalogs/Schemas/Tables/Columns, so reading them reveals nothing more.
SYSTEM_METADATA_SCHEMAS = frozenset({"jdbc", "metadata", INFORMATION_SCHEMA})
# Operations that reveal nothing about product data and that every query needs.
ALWAYS_ALLOWED = frozenset({"ExecuteQuery"})
# Operations allowed on a table the principal may read (and on the metadata tables).
READ_TABLE_OPERATIONS = frozenset({"SelectFromColumns", "ShowColumns", "ShowCreateTable"})
_TABLE_OPERATIONS = READ_TABLE_OPERATIONS | {"FilterTables", "FilterColumns"}
BUILTIN_FUNCTION_SCHEMA = ("system", "builtin")
_TEXT_TYPES = frozenset({exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR})
_YEAR_TYPES = frozenset(
    {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ}
)

Decide = Callable[[PortRef], AccessDecision]

DATA_API_PREFIX = "/v1/data/"
# The Rego-style rule names Trino is configured with (and the camel-case ones of its docs) → the
# answer meshgov computes; under ``meshgov/trino/`` or ``trino/`` of the Data API.
TRINO_RULES = {
    "allow": "allow",
    "batch": "batch",
    "row_filters": "row_filters",
    "rowFilters": "row_filters",
    "column_mask": "column_mask",
    "columnMask": "column_mask",
    "batch_column_masks": "batch_column_masks",
    "batchColumnMasks": "batch_column_masks",
}
_TRINO_PACKAGES = ("meshgov/trino/", "trino/")


def trino_rule(path: str) -> str | None:
    """The Trino answer a Data API path (below ``/v1/data/``) asks for; ``None``: not Trino's."""
    for prefix in _TRINO_PACKAGES:
        if path.startswith(prefix):
            return TRINO_RULES.get(path.removeprefix(prefix).strip("/"))
    return None


def is_trino_path(url_path: str) -> bool:
    return url_path.startswith(DATA_API_PREFIX) and (
        trino_rule(url_path.removeprefix(DATA_API_PREFIX)) is not None
    )


@dataclass(frozen=True)
class TrinoConfig:
    """What of Trino is configuration: the catalogs that hold products, and the session
    properties principals may set (``fnmatch`` patterns: ``name`` for a system property,
    ``catalog.name`` for a catalog property)."""

    catalogs: frozenset[str] = frozenset({"lake"})
    session_properties: tuple[str, ...] = DEFAULT_TRINO_SESSION_PROPERTIES

    @classmethod
    def from_settings(cls, settings: Settings) -> TrinoConfig:
        return cls(
            catalogs=frozenset(_items(settings.trino_catalogs.lower())),
            session_properties=tuple(_items(settings.trino_session_properties)),
        )

    def session_property_allowed(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.session_properties)


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _present(value: Any) -> Any:
    """An object without its ``null`` members (an absent optional); anything else as it is."""
    if isinstance(value, dict) and None in value.values():
        return {key: item for key, item in value.items() if item is not None}
    return value


def without_nulls(body: Any) -> Any:
    """The envelope with ``null`` members removed where the contract has optional fields
    (``input``, ``context``, ``identity``, ``softwareStack``, ``action``); resources are read
    null-tolerantly where they are checked, so a 10,000-table batch is not copied."""
    body = _present(body)
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        return body
    document = _present(body["input"])
    context = _present(document.get("context"))
    if isinstance(context, dict):
        context = {
            **context,
            **{k: _present(context[k]) for k in ("identity", "softwareStack") if k in context},
        }
        context = _present(context)
    action = _present(document.get("action"))
    return {**body, "input": {**document, "context": context, "action": action}}


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
        body = without_nulls(body)
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
    """A present ``key`` must be an object (an absent or null one is fine: it is optional)."""
    if key in document and not isinstance(document[key], dict):
        return f"{where}.{key}: must be an object, got {_kind(document[key])}"
    return None


def _resource_problem(resource: Any, where: str, operation: str) -> str | None:
    """The first problem of one resource; ``null`` members are absent optionals."""
    if not isinstance(resource, dict):
        return f"{where}: must be an object, got {_kind(resource)}"
    for kind, shape in resource.items():
        fields = _RESOURCE_FIELDS.get(kind)
        if fields is None or shape is None:
            continue  # unknown kinds are ignored (forward compatible)
        required, optional = fields
        at = f"{where}.{kind}"
        if not isinstance(shape, dict):
            return f"{at}: must be an object, got {_kind(shape)}"
        for name in required:
            if (problem := _string(shape.get(name), f"{at}.{name}")) is not None:
                return problem
        for name in optional:
            if shape.get(name) is not None and (problem := _string(shape[name], f"{at}.{name}")):
                return problem
        if shape.get("properties") is not None and (problem := _object(shape, "properties", at)):
            return problem
        if (
            kind == "user"
            and shape.get("groups") is not None
            and (problem := _strings(shape["groups"], f"{at}.groups")) is not None
        ):
            return problem
        if kind == "table":
            if shape.get("columns") is not None:
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
    """The first field of a Trino request (nulls already removed) that breaks the contract."""
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


def _name(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _table_parts(table: Any) -> tuple[str, str, str] | None:
    """(catalog, schema, table) in lower case; ``None`` unless all three are non-empty strings.
    On the path of every table of a FilterTables batch: kept lean."""
    try:
        parts = (
            table["catalogName"].lower(),
            table["schemaName"].lower(),
            table["tableName"].lower(),
        )
    except (KeyError, AttributeError, TypeError):
        return None
    return parts if all(parts) else None


class PortIndex:
    """Trino ``catalog.schema.table`` → the product port whose physical name it ends with, in the
    configured product catalogs only (a table of another catalog is not a product)."""

    def __init__(self, ports: Sequence[PortRef], config: TrinoConfig | None = None) -> None:
        self.config = config or TrinoConfig()
        self.ports = tuple(ports)
        # Physical names have one to three parts; index each port by its own parts.
        self._by_name: dict[tuple[str, ...], list[PortRef]] = {}
        for port in self.ports:
            self._by_name.setdefault(port.table, []).append(port)

    def resolve(self, table: Mapping[str, Any]) -> PortRef | None:
        parts = _table_parts(table)
        return self.resolve_parts(parts) if parts is not None else None

    def resolve_parts(self, parts: tuple[str, str, str]) -> PortRef | None:
        if parts[0] not in self.config.catalogs:
            return None
        by_name = self._by_name
        matches = [
            *by_name.get(parts, ()),
            *by_name.get(parts[1:], ()),
            *by_name.get(parts[2:], ()),
        ]
        # Two ports behind one Trino name would be ambiguous: treat as unknown (deny).
        return matches[0] if len(matches) == 1 else None

    def is_metadata_table(self, table: Mapping[str, Any]) -> bool:
        parts = _table_parts(table)
        return parts is not None and self.is_metadata_schema(parts[0], parts[1])

    def is_metadata_schema(self, catalog: str, schema: str) -> bool:
        """``information_schema`` of a product catalog, and the metadata schemas of ``system``."""
        if catalog == SYSTEM_CATALOG:
            return schema in SYSTEM_METADATA_SCHEMAS
        return catalog in self.config.catalogs and schema == INFORMATION_SCHEMA

    def places(self, port: PortRef) -> list[tuple[str, str]]:
        """The (catalog, schema) pairs under which ``port`` is visible in Trino."""
        if len(port.table) >= 3:
            catalog, schema = port.table[-3], port.table[-2]
            return [(catalog, schema)] if catalog in self.config.catalogs else []
        if len(port.table) == 2:
            return [(catalog, port.table[0]) for catalog in sorted(self.config.catalogs)]
        return []  # a one-part name has no schema of its own to show


class TrinoAuthorizer:
    """Answers for one request's principal and purpose, deciding each table once."""

    def __init__(self, index: PortIndex, decide: Decide, principal: Principal) -> None:
        self._index = index
        self._decide = decide
        self._principal = principal
        self._decisions: dict[tuple[str, str], AccessDecision] = {}
        self._visible: set[tuple[str, str]] | None = None

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

    def _visible_places(self) -> set[tuple[str, str]]:
        """(catalog, schema) pairs holding at least one port the principal may read."""
        if self._visible is None:
            self._visible = {
                place
                for port in self._index.ports
                if self._decision(port).allow
                for place in self._index.places(port)
            }
        return self._visible

    def _catalog_visible(self, catalog: str) -> bool:
        if catalog == SYSTEM_CATALOG:
            return True
        return any(c == catalog for c, _ in self._visible_places())

    def _schema_visible(self, catalog: str, schema: str) -> bool:
        if self._index.is_metadata_schema(catalog, schema):
            return True
        return (catalog, schema) in self._visible_places()

    # -- opa.policy.uri ---------------------------------------------------------------------
    def allow(self, request: TrinoRequest) -> bool:
        if request.problem is not None:
            return False  # malformed: denied, whatever it asks
        return self._allowed(request.operation, request.resource)

    def _allowed(self, operation: str, resource: Mapping[str, Any]) -> bool:
        if operation in ALWAYS_ALLOWED:
            return True
        if operation == "AccessCatalog":
            name = _name(_mapping(resource.get("catalog")).get("name"))
            return name == SYSTEM_CATALOG or name in self._index.config.catalogs
        if operation in {"FilterCatalogs", "ShowSchemas"}:
            return self._catalog_visible(_name(_mapping(resource.get("catalog")).get("name")))
        if operation in {"FilterSchemas", "ShowTables"}:
            schema = _mapping(resource.get("schema"))
            return self._schema_visible(
                _name(schema.get("catalogName")), _name(schema.get("schemaName"))
            )
        if operation in _TABLE_OPERATIONS:
            return self._table_allowed(operation, resource.get("table"))
        if operation == "SetSystemSessionProperty":
            system = _mapping(resource.get("systemSessionProperty")).get("name")
            return isinstance(system, str) and self._index.config.session_property_allowed(system)
        if operation == "SetCatalogSessionProperty":
            prop = _mapping(resource.get("catalogSessionProperty"))
            qualified = f"{prop.get('catalogName')}.{prop.get('propertyName')}"
            return self._index.config.session_property_allowed(qualified)
        if operation in {"ExecuteFunction", "FilterFunctions"}:
            return _is_builtin(_mapping(resource.get("function")))
        if operation in {"ViewQueryOwnedBy", "KillQueryOwnedBy", "FilterViewQueryOwnedBy"}:
            return str(_mapping(resource.get("user")).get("user", "")) == self._principal.id
        return False

    def _table_allowed(self, operation: str, table: Any) -> bool:
        parts = _table_parts(table)
        if parts is None:
            return False
        if self._index.is_metadata_schema(parts[0], parts[1]):
            return True
        if operation == "FilterColumns":
            return bool(self.allowed_columns(table))
        port = self._index.resolve_parts(parts)
        if port is None:
            return False
        decision = self._decision(port)
        if not decision.allow:
            return False
        if operation == "SelectFromColumns":
            # As the gateway: every column must be declared and not hidden (``[]`` is fine).
            columns = table.get("columns")
            return isinstance(columns, list) and all(
                _readable_column(port, decision, str(c)) for c in columns
            )
        return True

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
        operation = request.operation
        if operation in _TABLE_OPERATIONS:
            table_allowed = self._table_allowed
            return [i for i, r in enumerate(resources) if table_allowed(operation, r.get("table"))]
        return [i for i, resource in enumerate(resources) if self._allowed(operation, resource)]

    def allowed_columns(self, table: Mapping[str, Any]) -> set[str]:
        """The columns of ``table`` (as Trino lists them) the principal may see."""
        columns = table.get("columns")
        names = [str(c) for c in columns] if isinstance(columns, list) else []
        if self._index.is_metadata_table(table):
            return {n.lower() for n in names}
        readable = self._readable(table)
        if readable is None:
            return set()
        port, decision = readable
        return {n.lower() for n in names if _readable_column(port, decision, n)}

    # -- opa.policy.row-filters-uri -----------------------------------------------------------
    def row_filters(self, request: TrinoRequest) -> list[dict[str, str]]:
        if request.problem is not None:
            return [{"expression": "FALSE"}]  # malformed: no row is visible
        table = _mapping(request.resource.get("table"))
        if self._index.is_metadata_table(table):
            return []  # Trino filters metadata rows itself (Filter* operations)
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
        if self._index.is_metadata_table(column):
            return None
        port = self._index.resolve(column)
        name = str(column.get("columnName") or "")
        column_type = column.get("columnType")
        if port is None:
            return {"expression": _typed_null(column_type)}
        decision = self._decision(port)
        declared = port.column(name)
        if not decision.allow or declared is None or name.lower() in decision.hidden_columns:
            return {"expression": _typed_null(column_type)}
        mask = decision.masks.get(name.lower())
        if mask is None:
            return None
        try:
            rendered = trino_mask(declared, mask, column_type)
        except MeshgovError:
            return {"expression": _typed_null(column_type)}
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


def _readable_column(port: PortRef, decision: AccessDecision, name: str) -> bool:
    """Declared by the port and not hidden from the principal (the gateway's rule)."""
    return port.column(name) is not None and name.lower() not in decision.hidden_columns


def trino_type(column_type: Any) -> exp.DataType | None:
    """Trino's ``columnType`` (``varchar(5)``, ``decimal(12,2)``, ``row(a integer)`` …) parsed by
    sqlglot; ``None`` when missing or not a type."""
    if not isinstance(column_type, str) or not column_type:
        return None
    try:
        return exp.DataType.build(column_type, dialect=DIALECT)
    except Exception:  # an unknown type name
        return None


def _text_length(data_type: exp.DataType) -> int | None:
    """``n`` of ``varchar(n)``/``char(n)``; ``None`` when unbounded."""
    if not data_type.expressions:
        return None
    size = data_type.expressions[0]
    literal = size.this if isinstance(size, exp.DataTypeParam) else size
    try:
        return int(literal.name)
    except (AttributeError, ValueError):
        return None


def trino_mask(declared: PortColumn, mask: Mask, column_type: Any) -> exp.Expr:
    """The mask of ``declared`` as an expression of exactly Trino's ``column_type``.

    Trino refuses a mask whose type is not the column's, so every mask is cast to it; a mask that
    cannot be typed without losing its meaning is a typed ``NULL``: ``hash`` (64 hex characters)
    on anything but ``varchar`` or text of at least 64 characters (a truncated hash would no
    longer join), ``partial`` on non-text, ``year`` on anything but a date or timestamp. An
    unparseable ``column_type`` gets an untyped ``NULL`` (coercible to any type).
    """
    data_type = trino_type(column_type)
    if data_type is None:
        return exp.null()
    typed_null = exp.cast(exp.null(), data_type)
    kind = mask.kind
    is_text = data_type.this in _TEXT_TYPES
    if kind == "null" or (kind == "redact" and not is_text):
        return typed_null
    if kind == "hash":
        length = _text_length(data_type)
        if not is_text or (length is not None and length < HASH_HEX_LENGTH):
            return typed_null
    if kind == "partial" and not is_text:
        return typed_null
    if kind == "year" and data_type.this not in _YEAR_TYPES:
        return typed_null
    if kind == "year":
        # Trino's date_trunc keeps the type of its argument (date, timestamp(p) [with time zone]).
        ref = exp.column(declared.name, quoted=True)
        truncated = exp.TimestampTrunc(this=ref, unit=exp.Literal.string("YEAR"))
        return exp.cast(truncated, data_type)
    rendered = mask_expression(PortColumn(declared.name, declared.type, declared.mask_expr), mask)
    unbounded_varchar = data_type.this is exp.DataType.Type.VARCHAR and not data_type.expressions
    if unbounded_varchar and kind in {"hash", "partial"}:
        return rendered  # already an unbounded varchar
    return exp.cast(rendered, data_type)


def _typed_null(column_type: Any) -> str:
    """``CAST(NULL AS <type>)`` built by sqlglot; a plain NULL when the type does not parse (or
    is not a string)."""
    data_type = trino_type(column_type)
    expression = exp.cast(exp.null(), data_type) if data_type is not None else exp.null()
    return expression.sql(dialect=DIALECT)


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
