"""ODCS v3.0–v3.2 data contracts normalised into the meshgov model.

A contract is invalid input exactly when the official ODCS JSON Schema of its ``apiVersion``
refuses it (``odcs_schema.py``): all of its schema errors are reported at once, each naming the
file and line. A contract the schema accepts is always read: what meshgov needs and ODCS leaves
optional or free-text gets a documented default (docs/manifest.md, "ODCS contracts"), and what
cannot be mapped becomes a *source note* that the release policies report as a finding with a fix
(``release/unmapped-value``, ``release/missing-schema``), never a parse error.

An ODCS contract describes one product: root identity (``domain``, ``name``, ``version``,
``status``, ``team``) becomes ``metadata``; each ``schema[]`` object becomes an output port
(``physicalName`` is the table) and each of its ``properties`` a column. ODCS has no PII field and
no entity link, so the conventions of the reference are read:

- ``customProperties``: ``pii``, ``piiCategory``, ``mask``, ``maskExpr``, ``entityIdentifier``
  (and, at object level, a default ``classification``; at root level ``inputs`` and ``owner``);
- ``authoritativeDefinitions`` of type ``semantics``: the entity is the IRI's last path segment;
- ``slaProperties``: ``retention``, ``latency``, ``frequency``, ``availability``, ``endOfSupport``
  (applied to every port, or to the one named by ``element``);
- ``roles[]`` with read access: a grant to the group named by ``role`` (purposes and row filter
  from the role's ``customProperties``).

Unknown ``customProperties`` and the ODCS fields meshgov does not use are kept losslessly in
``Manifest.extensions`` (the policies never see them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from meshgov.core.manifest import (
    NAME,
    Classification,
    LogicalType,
    Manifest,
    MaskKind,
    PortKind,
    Status,
)
from meshgov.core.odcs_schema import SCHEMAS, schema_errors
from meshgov.core.yaml_source import Path, SourceDocument
from meshgov.errors import Location, ManifestError, ManifestErrors

# The product's domain when neither the contract nor its folder names one.
DEFAULT_DOMAIN = "default"
# Keys of the root that meshgov does not map but keeps in ``extensions["contract"]``.
KEPT_ROOT_KEYS = ("id", "apiVersion", "tenant", "dataProduct", "servers", "support", "price")
# A lineage reference meshgov can follow: ``domain/product:port:column``.
COLUMN_REF = re.compile(r"^[a-z][a-z0-9_-]*/[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*:.+$")

LOGICAL_TYPES: dict[str, LogicalType] = {
    "string": LogicalType.string,
    "integer": LogicalType.integer,
    "number": LogicalType.number,
    "boolean": LogicalType.boolean,
    "date": LogicalType.date,
    "timestamp": LogicalType.timestamp,
    "time": LogicalType.string,  # meshgov has no time-of-day type; keep the text
    "object": LogicalType.struct,
    "map": LogicalType.struct,
    "array": LogicalType.array,
    "vector": LogicalType.array,
}
# Physical (database) type names by their base name (before any "(n)" or "[n]"), for a property
# without logicalType, and to refine ``number`` stored as DECIMAL(p, s) into ``decimal``.
PHYSICAL_TYPES: dict[str, LogicalType] = {
    **dict.fromkeys(("decimal", "numeric", "number", "money", "dec"), LogicalType.decimal),
    **dict.fromkeys(
        (
            "varchar", "char", "character", "character varying", "nvarchar", "nchar", "text",
            "string", "bpchar", "uuid", "citext", "clob", "json", "jsonb", "xml", "time",
            "enum", "name",
        ),
        LogicalType.string,
    ),
    **dict.fromkeys(
        (
            "int", "integer", "bigint", "smallint", "tinyint", "mediumint", "int2", "int4",
            "int8", "long", "short", "byte", "serial", "bigserial", "smallserial", "int64",
            "int32", "int16",
        ),
        LogicalType.integer,
    ),
    **dict.fromkeys(
        ("double", "double precision", "float", "float4", "float8", "real", "float64"),
        LogicalType.number,
    ),
    **dict.fromkeys(("bool", "boolean", "bit"), LogicalType.boolean),
    **dict.fromkeys(
        (
            "timestamp", "timestamptz", "datetime", "datetime2", "timestamp_ntz",
            "timestamp_ltz", "timestamp_tz", "smalldatetime",
        ),
        LogicalType.timestamp,
    ),
    "date": LogicalType.date,
    **dict.fromkeys(("binary", "varbinary", "bytea", "blob", "bytes"), LogicalType.binary),
    **dict.fromkeys(("array", "list"), LogicalType.array),
    **dict.fromkeys(("struct", "record", "object", "map", "row"), LogicalType.struct),
}  # fmt: skip
PORT_KINDS = {
    **dict.fromkeys(("table", "view", "materialized view", "materialised view"), PortKind.table),
    **dict.fromkeys(("topic", "stream", "queue", "event stream"), PortKind.events),
    **dict.fromkeys(("file", "files", "folder", "directory"), PortKind.files),
}
# Free-text ``status`` values (lower case, words separated by one space) whose meaning is clear.
STATUSES: dict[str, Status] = {
    **dict.fromkeys(
        (
            "proposed", "draft", "development", "in development", "dev", "design", "planned",
            "wip", "work in progress", "experimental", "preview", "alpha", "beta", "test",
            "testing", "pending", "requested",
        ),
        Status.draft,
    ),
    **dict.fromkeys(
        ("active", "production", "prod", "released", "live", "stable", "ga", "published"),
        Status.active,
    ),
    **dict.fromkeys(("deprecated", "sunset", "sunsetting"), Status.deprecated),
    **dict.fromkeys(
        ("retired", "archived", "decommissioned", "obsolete", "deleted", "inactive"),
        Status.retired,
    ),
}  # fmt: skip
# Free-text ``classification`` values whose tier is clear; any other is treated as restricted.
CLASSIFICATIONS: dict[str, Classification] = {
    **dict.fromkeys(("public", "open", "unrestricted"), Classification.public),
    **dict.fromkeys(
        ("internal", "internal use", "internal only", "internal use only", "company"),
        Classification.internal,
    ),
    **dict.fromkeys(("confidential", "sensitive"), Classification.confidential),
    **dict.fromkeys(
        (
            "restricted", "secret", "top secret", "highly confidential", "strictly confidential",
            "highly sensitive",
        ),
        Classification.restricted,
    ),
}  # fmt: skip
# Team member roles that name the accountable owner.
OWNER_ROLES = {"owner", "data owner", "product owner", "data product owner"}
DURATION_UNITS = {
    "y": "y", "yr": "y", "year": "y", "years": "y",
    "m": "m", "mo": "m", "month": "m", "months": "m",
    "w": "w", "week": "w", "weeks": "w",
    "d": "d", "day": "d", "days": "d",
    "h": "h", "hr": "h", "hour": "h", "hours": "h",
    "min": "min", "minute": "min", "minutes": "min",
    "s": "s", "sec": "s", "second": "s", "seconds": "s",
}  # fmt: skip
# customProperties that this reader maps onto the model (everything else goes to extensions).
COLUMN_PROPERTIES = {"pii", "piiCategory", "mask", "maskExpr", "entityIdentifier", "classification"}
OBJECT_PROPERTIES = {"classification", "retention"}
ROOT_PROPERTIES = {"inputs", "owner"}
ROLE_PROPERTIES = {"purposes", "rowFilter", "ports"}

# Source-note rules (reported by policies/meshgov/release as release/<rule>).
UNMAPPED = "unmapped-value"
MISSING_SCHEMA = "missing-schema"


def meshgov_name(text: str) -> str | None:
    """A free-text ODCS name as a meshgov name: ``Orders Event Stream`` -> ``orders_event_stream``.

    Lower case; every run of characters other than ``a-z0-9_-`` becomes one ``_``; a name that
    does not start with a letter gets the prefix ``n_``. None when nothing usable is left.
    """
    name = re.sub(r"[^a-z0-9_-]+", "_", text.strip().lower()).strip("_-")
    if not name:
        return None
    return name if re.match(NAME, name) else f"n_{name}"


def _words(text: str) -> str:
    """``In_Development`` -> ``in development``: the key of the free-text tables above."""
    return " ".join(re.split(r"[\s_-]+", text.strip().lower())).strip()


class _Reader:
    """Walks one schema-valid contract into meshgov/v1 data, remembering where each part came from.

    Nothing here raises for a value ODCS allows: an unmappable one is recorded in ``notes`` (with
    its line, port and column) and replaced by a documented default.
    """

    def __init__(self, doc: SourceDocument, api_version: str) -> None:
        self.doc = doc
        self.api_version = api_version
        # Model path prefix (as pydantic reports it) -> ODCS path, to place validation errors.
        self.origins: dict[Path, Path] = {}
        self.extensions: dict[str, Any] = {}
        self.notes: list[dict[str, Any]] = []

    # -- notes, errors and typed access -------------------------------------------------------

    def line(self, path: Path) -> int:
        line = self.doc.line_of(path)
        if line is None:
            line = min((n for p, n in self.doc.lines.items() if len(p) == 1), default=1)
        return line

    def note(
        self,
        path: Path,
        message: str,
        fix: str,
        *,
        rule: str = UNMAPPED,
        port: str | None = None,
        column: str | None = None,
    ) -> None:
        where = _dotted(path)
        self.notes.append(
            {
                "rule": rule,
                "message": f"{where}: {message}" if where else message,
                "fix": fix,
                "field": where,
                "line": self.line(path),
                "port": port,
                "column": column,
            }
        )

    def error(self, path: Path, message: str) -> ManifestError:
        where = _dotted(path)
        text = f"{where}: {message}" if where else message
        return ManifestError(text, Location(file=self.doc.source, line=self.line(path)))

    @staticmethod
    def mapping(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    @staticmethod
    def sequence(value: Any) -> list[Any]:
        return value if isinstance(value, list) else []

    def text(self, value: Any, path: Path, *, port: str | None = None) -> str | None:
        """A scalar as text; anything else is noted (the schema types ODCS's own fields)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.note(
                path,
                f"expected a text value, got {_kind(value)}",
                "Write a single value here.",
                port=port,
            )
            return None
        return str(value)

    def custom_properties(
        self, owner: Mapping[str, Any], path: Path, *, port: str | None = None
    ) -> dict[str, tuple[Any, Path]]:
        """``customProperties: [{property, value}]`` as ``{property: (value, path of value)}``."""
        found: dict[str, tuple[Any, Path]] = {}
        base = (*path, "customProperties")
        for index, item in enumerate(self.sequence(owner.get("customProperties"))):
            entry = self.mapping(item)
            name = entry.get("property")
            if not isinstance(name, str):
                continue
            if name in found:
                self.note(
                    (*base, index, "property"),
                    f"customProperty '{name}' is repeated; the first one is used",
                    f"Keep one '{name}' entry.",
                    port=port,
                )
                continue
            found[name] = (entry.get("value"), (*base, index, "value"))
        return found

    def keep_unknown(
        self, section: str, key: str | None, props: Mapping[str, tuple[Any, Path]], mapped: set[str]
    ) -> None:
        """Keep unmapped customProperties under ``extensions["customProperties"][section]``."""
        unknown = {name: value for name, (value, _) in props.items() if name not in mapped}
        if not unknown:
            return
        kept = self.extensions.setdefault("customProperties", {})
        if key is None:
            kept[section] = unknown
        else:
            kept.setdefault(section, {})[key] = unknown

    # -- sections -----------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        root = self.mapping(self.doc.data)
        root_props = self.custom_properties(root, ())
        self.keep_unknown("contract", None, root_props, ROOT_PROPERTIES)
        self.extensions["contract"] = {key: root[key] for key in KEPT_ROOT_KEYS if key in root}
        metadata = self.metadata(root, root_props)
        sla = self.sla_properties(root)
        schema = self.sequence(root.get("schema"))
        if not schema:
            self.note(
                ("schema",),
                "the contract describes no data (no schema objects), so nothing can be served "
                "or governed",
                "Add a `schema:` object per table, with its properties (columns).",
                rule=MISSING_SCHEMA,
            )
        ports: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, obj in enumerate(schema):
            port = self.port(self.mapping(obj), ("schema", index), len(ports), sla, seen)
            if port is not None:
                ports.append(port)
                seen.add(port["name"])
        self.origins[("spec", "outputPorts")] = ("schema",)
        return {
            "apiVersion": "meshgov/v1",
            "kind": "DataProduct",
            "metadata": metadata,
            "spec": {
                "inputs": self.inputs(root_props),
                "outputPorts": ports,
                "access": {"grants": self.grants(root)},
            },
        }

    def metadata(self, root: Mapping[str, Any], props: Mapping[str, tuple[Any, Path]]) -> Any:
        metadata: dict[str, Any] = {
            "domain": self.domain(root),
            "name": self.product_name(root),
            "version": str(root.get("version", "")),
            "owner": self.owner(root, props),
            "description": self.description(root.get("description")),
            "status": self.status(root.get("status")),
            "tags": [str(t) for t in self.sequence(root.get("tags"))],
        }
        for key in ("domain", "name", "version", "status", "tags", "description"):
            self.origins[("metadata", key)] = (key,)
        self.origins[("metadata", "owner")] = ("team",)
        return metadata

    def domain(self, root: Mapping[str, Any]) -> str:
        """``domain``, else ``dataProduct``, else the contract's folder, else ``default``."""
        for key in ("domain", "dataProduct"):
            value = root.get(key)
            if isinstance(value, str) and (name := meshgov_name(value)):
                return name
        folder = PurePosixPath(self.doc.source.replace("\\", "/")).parent.name
        # A git source reads "<revision>:<path>"; the folder is after the colon.
        folder = folder.rsplit(":", 1)[-1]
        return meshgov_name(folder) or DEFAULT_DOMAIN

    def product_name(self, root: Mapping[str, Any]) -> str:
        """``name``, else the file name without its extensions, else the contract ``id``."""
        candidates = [root.get("name")]
        stem = PurePosixPath(self.doc.source.replace("\\", "/")).name.rsplit(":", 1)[-1]
        # The service stores versions as "store:<domain>/<name>@<version>".
        stem = stem.split("@", 1)[0]
        stem = re.sub(r"(\.odcs)?\.(ya?ml|json)$", "", stem, flags=re.IGNORECASE)
        if stem and not stem.startswith("<"):
            candidates.append(stem)
        candidates.append(root.get("id"))
        for value in candidates:
            if isinstance(value, str) and (name := meshgov_name(value)):
                return name
        return "contract"

    def owner(self, root: Mapping[str, Any], props: Mapping[str, tuple[Any, Path]]) -> str | None:
        if "owner" in props:
            return self.text(*props["owner"])
        team = root.get("team")
        # v3.0 wrote the team as a list of members; v3.1 as {name, members}.
        members_path: Path = ("team",) if isinstance(team, list) else ("team", "members")
        team_name = None
        if isinstance(team, dict):
            team_name = self.text(team.get("name"), ("team", "name"))
            members = self.sequence(team.get("members"))
        else:
            members = self.sequence(team)
        owners: list[tuple[str, int]] = []
        for index, item in enumerate(members):
            member = self.mapping(item)
            role = _words(str(member.get("role") or ""))
            username = member.get("username")
            if role in OWNER_ROLES and member.get("dateOut") is None and username is not None:
                owners.append((str(username), index))
        if len(owners) > 1:
            names = ", ".join(name for name, _ in owners)
            self.note(
                (*members_path, owners[1][1], "role"),
                f"several current members have role 'owner' ({names}); "
                f"'{owners[0][0]}' is taken as the owner",
                "Keep one accountable owner (give the others another role, or a dateOut).",
            )
        return owners[0][0] if owners else team_name

    def description(self, value: Any) -> str | None:
        if isinstance(value, str):
            return value
        parts = self.mapping(value)
        extra = {k: v for k, v in parts.items() if k != "purpose"}
        if extra:
            self.extensions["description"] = extra
        return self.text(parts.get("purpose"), ("description", "purpose"))

    def status(self, value: Any) -> Status | None:
        text = self.text(value, ("status",))
        if text is None:
            return None
        status = STATUSES.get(_words(text))
        if status is None:
            self.note(
                ("status",),
                f"status {text!r} has no meshgov meaning",
                "Use one of: proposed or draft (not yet released), active, deprecated, retired.",
            )
        return status

    def sla_properties(self, root: Mapping[str, Any]) -> list[tuple[str, Any, str | None, Path]]:
        """``(property, value with unit, element, path)`` for the SLA properties meshgov maps."""
        found = []
        for index, item in enumerate(self.sequence(root.get("slaProperties"))):
            path: Path = ("slaProperties", index)
            entry = self.mapping(item)
            name = entry.get("property")
            if not isinstance(name, str):
                continue
            element = entry.get("element")
            unit = self.text(entry.get("unit"), (*path, "unit"))
            value = entry.get("value")
            if name in ("retention", "latency", "frequency"):
                value = self.duration(value, unit, (*path, "value"))
            found.append((name, value, element if isinstance(element, str) else None, path))
        return found

    def duration(self, value: Any, unit: str | None, path: Path) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.note(path, f"expected a duration, got {_kind(value)}", "Write e.g. `value: 3`.")
            return None
        if unit is None:
            return str(value)  # already written as "3y" or as free text such as "daily"
        short = DURATION_UNITS.get(unit.strip().lower())
        if short is None:
            self.note(
                (*path[:-1], "unit"),
                f"unknown duration unit {unit!r}",
                "Use y, m (months), w, d, h, min or s (or their words).",
            )
            return str(value)
        return f"{value}{short}"

    def port_name(self, obj: Mapping[str, Any], path: Path, seen: set[str]) -> str:
        raw = obj.get("name")
        name = meshgov_name(raw) if isinstance(raw, str) else None
        if name is None:
            name = "port"
            self.note(
                (*path, "name"),
                f"schema object name {raw!r} leaves no usable port name",
                "Name the schema object with letters, digits, '_' or '-'.",
            )
        if name in seen:
            unique = next(
                f"{name}_{n}" for n in range(2, len(seen) + 3) if f"{name}_{n}" not in seen
            )
            self.note(
                (*path, "name"),
                f"schema object '{raw}' has the same port name as an earlier one ('{name}'); "
                f"it is read as '{unique}'",
                "Give every schema object its own name.",
                port=unique,
            )
            name = unique
        return name

    def port(
        self,
        obj: Mapping[str, Any],
        path: Path,
        index: int,
        sla: list[tuple[str, Any, str | None, Path]],
        seen: set[str],
    ) -> dict[str, Any] | None:
        name = self.port_name(obj, path, seen)
        props = self.custom_properties(obj, path, port=name)
        self.keep_unknown("ports", name, props, OBJECT_PROPERTIES)
        default_classification = None
        if "classification" in obj:
            default_classification = self.classification(
                obj["classification"], (*path, "classification"), name, None
            )
        elif "classification" in props:
            value, value_path = props["classification"]
            default_classification = self.classification(value, value_path, name, None)
        model_path: Path = ("spec", "outputPorts", index)
        self.origins[model_path] = path
        port: dict[str, Any] = {
            "name": name,
            "kind": self.port_kind(obj, path, name),
            "table": self.text(obj.get("physicalName"), (*path, "physicalName"), port=name),
            "description": self.text(obj.get("description"), (*path, "description"), port=name),
        }
        if "retention" in props:
            port["retention"] = self.text(*props["retention"], port=name)
        sla_values: dict[str, Any] = {}
        raw_name = obj.get("name")
        for sla_name, value, element, sla_path in sla:
            if element is not None and element.split(".")[0] not in (raw_name, name, obj.get("id")):
                continue
            if value is None:
                continue
            if sla_name == "retention":
                port["retention"] = value
            elif sla_name == "endOfSupport":
                port["endOfSupport"] = str(value)
            elif sla_name in ("latency", "frequency"):
                sla_values[sla_name] = value
            elif sla_name == "availability":
                percent = _percent(value)
                if percent is None:
                    self.note(
                        (*sla_path, "value"),
                        f"availability {value!r} is not a percentage; it is left out",
                        "Write the availability as a number of percent, e.g. `value: 99.9`.",
                        port=name,
                    )
                else:
                    sla_values[sla_name] = percent
        if sla_values:
            port["sla"] = sla_values
        props_path: Path = (*path, "properties")
        properties = self.sequence(obj.get("properties"))
        if not properties:
            self.note(
                props_path if "properties" in obj else path,
                f"schema object '{raw_name}' has no properties (columns), so none can be served "
                "or governed",
                "List the object's columns under `properties:`, each with a name and logicalType.",
                rule=MISSING_SCHEMA,
                port=name,
            )
        columns: list[dict[str, Any]] = []
        seen_columns: set[str] = set()
        for j, item in enumerate(properties):
            prop = self.mapping(item)
            column_path: Path = (*props_path, j)
            column_name = str(prop.get("name", ""))
            if column_name.lower() in seen_columns or not column_name:
                self.note(
                    (*column_path, "name"),
                    f"property {column_name!r} is empty or repeats an earlier one; it is left out",
                    "Give every property of an object its own name.",
                    port=name,
                    column=column_name or None,
                )
                continue
            seen_columns.add(column_name.lower())
            model_column: Path = (*model_path, "columns", len(columns))
            columns.append(
                self.column(prop, column_path, model_column, name, default_classification)
            )
        port["columns"] = columns
        self.origins[(*model_path, "columns")] = props_path
        return port

    def port_kind(self, obj: Mapping[str, Any], path: Path, port: str) -> PortKind:
        physical_type = obj.get("physicalType")
        if not isinstance(physical_type, str):
            return PortKind.table
        kind = PORT_KINDS.get(_words(physical_type))
        if kind is None:
            self.note(
                (*path, "physicalType"),
                f"physicalType {physical_type!r} of a schema object is not a kind meshgov serves; "
                "it is read as a table",
                "Use table or view (a table), topic or stream (events), or file (files).",
                port=port,
            )
            return PortKind.table
        return kind

    def column(
        self,
        prop: Mapping[str, Any],
        path: Path,
        model_path: Path,
        port_name: str,
        default_classification: Classification | None,
    ) -> dict[str, Any]:
        self.origins[model_path] = path
        name = str(prop["name"])
        custom = self.custom_properties(prop, path, port=port_name)
        self.keep_unknown("columns", f"{port_name}.{name}", custom, COLUMN_PROPERTIES)
        column: dict[str, Any] = {
            "name": name,
            "type": self.logical_type(prop, path, port_name, name),
            "description": self.text(prop.get("description"), (*path, "description")),
        }
        for key in ("required", "unique", "primaryKey"):
            if isinstance(prop.get(key), bool):
                column[key] = prop[key]
                self.origins[(*model_path, key)] = (*path, key)
        if "classification" in prop:
            column["classification"] = self.classification(
                prop["classification"], (*path, "classification"), port_name, name
            )
        elif "classification" in custom:
            value, value_path = custom["classification"]
            column["classification"] = self.classification(value, value_path, port_name, name)
        elif default_classification is not None:
            column["classification"] = default_classification
        if "pii" in custom:
            column["pii"] = self.pii_flag(*custom["pii"], port_name, name)
        if "piiCategory" in custom:
            column["piiCategory"] = self.text(*custom["piiCategory"], port=port_name)
        if "mask" in custom:
            column["mask"] = self.mask(*custom["mask"], port_name, name)
        if "maskExpr" in custom:
            column["maskExpr"] = self.text(*custom["maskExpr"], port=port_name)
        entity = self.entity(prop, custom, path, port_name, name)
        if entity is not None:
            column["entity"] = entity
        column.update(self.type_options(prop, path))
        if "enum" in prop:
            column["enum"] = self.enum_values(prop["enum"])
        sources = [str(s) for s in self.sequence(prop.get("transformSourceObjects"))]
        # Only references meshgov can follow become lineage; plain table names are kept as written.
        followed = [s for s in sources if COLUMN_REF.match(s.strip())]
        if followed:
            column["derivedFrom"] = followed
        if len(followed) < len(sources):
            kept = self.extensions.setdefault("transformSourceObjects", {})
            kept[f"{port_name}.{name}"] = [s for s in sources if s not in followed]
        tags = self.sequence(prop.get("tags"))
        if tags:
            column["tags"] = [str(t) for t in tags]
        return column

    def logical_type(
        self, prop: Mapping[str, Any], path: Path, port: str, column: str
    ) -> LogicalType:
        logical = prop.get("logicalType")
        physical = prop.get("physicalType")
        refined = _physical_type(physical) if isinstance(physical, str) else None
        if not isinstance(logical, str):
            if refined is not None:
                return refined
            shown = f"physicalType {physical!r}" if physical is not None else "no logicalType"
            self.note(
                (*path, "physicalType") if physical is not None else path,
                f"{shown}: meshgov cannot tell the column's type; it is read as a string",
                "Add `logicalType:` (string, integer, number, boolean, date, timestamp, "
                "array or object).",
                port=port,
                column=column,
            )
            return LogicalType.string
        mapped = LOGICAL_TYPES.get(logical.strip().lower())
        if mapped is None:  # the schema lists the logical types; kept for older schemas
            self.note(
                (*path, "logicalType"),
                f"logicalType {logical!r} has no meshgov type; it is read as a string",
                "Use a logicalType of the ODCS standard.",
                port=port,
                column=column,
            )
            return LogicalType.string
        # ODCS has no decimal logical type: ``number`` stored as DECIMAL(p, s) is one.
        if mapped is LogicalType.number and refined is LogicalType.decimal:
            return LogicalType.decimal
        return mapped

    def type_options(self, prop: Mapping[str, Any], path: Path) -> dict[str, Any]:
        options = self.mapping(prop.get("logicalTypeOptions"))
        out: dict[str, Any] = {}
        for key in ("format", "pattern"):
            if isinstance(options.get(key), str):
                out[key] = options[key]
        for key in ("minLength", "maxLength"):
            value = options.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                out[key] = value
        for key in ("minimum", "maximum"):
            value = options.get(key)
            # Date bounds ("2020-01-01") have no numeric home in the model: kept in extensions.
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = value
        extra = {k: v for k, v in options.items() if k not in out}
        if extra:
            self.extensions.setdefault("logicalTypeOptions", {})[_dotted(path)] = extra
        return out

    def enum_values(self, value: Any) -> list[str]:
        values = []
        for item in self.sequence(value):
            # ODCS 3.2 writes enum entries as {value, label, ...}; accept bare values too.
            raw = item.get("value") if isinstance(item, dict) else item
            if raw is not None:
                values.append(str(raw))
        return values

    def classification(
        self, value: Any, path: Path, port: str, column: str | None
    ) -> Classification:
        text = str(value) if isinstance(value, str | int | float) else repr(value)
        tier = CLASSIFICATIONS.get(_words(text))
        if tier is None:
            tiers = " < ".join(c.value for c in Classification)
            self.note(
                path,
                f"classification {text!r} is not a meshgov tier; it is treated as restricted "
                "until mapped",
                f"Use one of the tiers {tiers}.",
                port=port,
                column=column,
            )
            return Classification.restricted
        return tier

    def pii_flag(self, value: Any, path: Path, port: str, column: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
            return value.strip().lower() in ("true", "yes")
        self.note(
            path,
            f"pii {value!r} is not true or false; the column is treated as PII",
            "Write `value: true` or `value: false`.",
            port=port,
            column=column,
        )
        return True

    def mask(self, value: Any, path: Path, port: str, column: str) -> MaskKind | None:
        text = str(value).strip().lower() if isinstance(value, str) else ""
        try:
            return MaskKind(text)
        except ValueError:
            kinds = ", ".join(m.value for m in MaskKind)
            self.note(
                path,
                f"mask {value!r} is not a meshgov mask",
                f"Use one of: {kinds}.",
                port=port,
                column=column,
            )
            return None

    def entity(
        self,
        prop: Mapping[str, Any],
        custom: Mapping[str, tuple[Any, Path]],
        path: Path,
        port: str,
        column: str,
    ) -> str | None:
        """The entity a column identifies, from semantics definitions or ``entityIdentifier``."""
        found: dict[str, Path] = {}
        base: Path = (*path, "authoritativeDefinitions")
        for index, item in enumerate(self.sequence(prop.get("authoritativeDefinitions"))):
            definition = self.mapping(item)
            if str(definition.get("type", "")).strip().lower() != "semantics":
                continue
            url = definition.get("url")
            if isinstance(url, str):
                found.setdefault(_entity_of(url), (*base, index, "url"))
        if "entityIdentifier" in custom:
            value, value_path = custom["entityIdentifier"]
            if isinstance(value, str):
                found.setdefault(_entity_of(value), value_path)
        if len(found) > 1:
            names = ", ".join(sorted(found))
            last = max(found.values(), key=lambda p: self.doc.line_of(p) or 0)
            self.note(
                last,
                f"the column is linked to several entities ({names}); it is linked to none",
                "Link the column to one entity (one semantics IRI or entityIdentifier).",
                port=port,
                column=column,
            )
            return None
        for entity, entity_path in found.items():
            if not entity:
                self.note(
                    entity_path,
                    "cannot read an entity name from this IRI",
                    "End the IRI with the entity's name, e.g. https://id.example/entity/Customer.",
                    port=port,
                    column=column,
                )
                return None
            return entity
        return None

    def inputs(self, props: Mapping[str, tuple[Any, Path]]) -> list[dict[str, Any]]:
        if "inputs" not in props:
            return []
        value, path = props["inputs"]
        inputs: list[dict[str, Any]] = []
        for index, item in enumerate(self.sequence(value)):
            product = port = None
            if isinstance(item, str) and ":" in item:
                product, port = item.split(":", 1)
            elif isinstance(item, dict):
                product, port = item.get("product"), item.get("port")
            if not (
                isinstance(product, str)
                and re.match(r"^[a-z][a-z0-9_-]*/[a-z][a-z0-9_-]*$", product)
                and isinstance(port, str)
            ):
                self.note(
                    (*path, index),
                    f"input {item!r} is not a product port; it is left out of the lineage",
                    "Write an input as {product: domain/name, port: name} or 'domain/name:port'.",
                )
                continue
            self.origins[("spec", "inputs", len(inputs))] = (*path, index)
            inputs.append({"product": product, "port": port})
        return inputs

    def grants(self, root: Mapping[str, Any]) -> list[dict[str, Any]]:
        grants: list[dict[str, Any]] = []
        for index, item in enumerate(self.sequence(root.get("roles"))):
            path: Path = ("roles", index)
            role = self.mapping(item)
            name = role.get("role")
            access = str(role.get("access") or "read").strip().lower()
            if not isinstance(name, str) or access not in (
                "read",
                "readwrite",
                "read-write",
                "read_write",
            ):
                continue  # write-only roles grant no reads
            props = self.custom_properties(role, path)
            self.keep_unknown("roles", name, props, ROLE_PROPERTIES)
            grant: dict[str, Any] = {"to": {"groups": [name]}}
            if "purposes" in props:
                grant["purposes"] = _list_of_text(props["purposes"][0])
            if "ports" in props:
                grant["ports"] = _list_of_text(props["ports"][0])
            if "rowFilter" in props:
                grant["rowFilter"] = self.text(*props["rowFilter"])
            self.origins[("spec", "access", "grants", len(grants))] = path
            grants.append(grant)
        return grants

    def place(self, model_loc: Path) -> Path:
        """The ODCS path that produced the deepest known prefix of a model path."""
        for end in range(len(model_loc), 0, -1):
            origin = self.origins.get(tuple(model_loc[:end]))
            if origin is not None:
                return origin
        return ()


def manifest_from_odcs(doc: SourceDocument) -> Manifest:
    """Normalise an ODCS v3.0–v3.2 contract into a ``Manifest`` (``source_format`` says which).

    Raises:
        ManifestError: the apiVersion is not one meshgov has the schema of.
        ManifestErrors: the ODCS JSON Schema refuses the contract (every error, in file order).
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    api_version = data.get("apiVersion")
    if api_version not in SCHEMAS:
        known = ", ".join(sorted(SCHEMAS))
        raise ManifestError(
            f"apiVersion: unsupported ODCS version {api_version!r} (meshgov reads {known})",
            Location(file=doc.source, line=doc.line_of(("apiVersion",)) or 1),
        )
    errors = schema_errors(doc, api_version)
    if errors:
        raise ManifestErrors(errors)
    reader = _Reader(doc, api_version)
    data = reader.read()
    try:
        manifest = Manifest.model_validate(
            {
                **data,
                "source": doc.source,
                "source_format": f"odcs/{api_version}",
                "extensions": reader.extensions,
                "notes": reader.notes,
            },
            context={"odcs": True},
        )
    except ValidationError as exc:
        # Fail closed: a value the reader let through but the model refuses is still an error.
        first = exc.errors()[0]
        loc: Path = tuple(first["loc"])
        shown = first.get("input")
        detail = first["msg"].removeprefix("Value error, ")
        if isinstance(shown, str | int | float | bool) and len(str(shown)) < 60:
            detail += f" (got {shown!r})"
        model_place = ".".join(str(p) for p in loc)
        raise reader.error(reader.place(loc), f"{detail} [meshgov field {model_place}]") from None
    return manifest


def _physical_type(physical: str) -> LogicalType | None:
    """``VARCHAR(10)``, ``varchar[50]``, ``timestamp with time zone`` -> their logical type."""
    base = re.split(r"[(\[<]", physical.strip().lower(), maxsplit=1)[0].strip()
    if base in PHYSICAL_TYPES:
        return PHYSICAL_TYPES[base]
    first = base.split(" ", 1)[0]
    return PHYSICAL_TYPES.get(first)


def _entity_of(iri: str) -> str:
    """``https://id.acme.example/entity/Customer`` -> ``customer`` (last path or fragment part)."""
    tail = re.split(r"[/#:]", iri.strip().rstrip("/#"))[-1]
    return tail.strip().lower()


def _percent(value: Any) -> float | None:
    """ODCS writes availability as ``99.9`` (percent) or ``"99.9%"``; the model wants 0.999."""
    text = str(value).strip().rstrip("%")
    try:
        number = float(text)
    except ValueError:
        return None
    if not 0 <= number <= 100:
        return None
    return number / 100 if number > 1 else number


def _list_of_text(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
