"""ODCS v3.0–v3.2 data contracts normalised into the meshgov model.

An ODCS contract describes one product: root identity (``domain``, ``name``, ``version``,
``status``, ``team``) becomes ``metadata``; each ``schema[]`` object becomes an output port
(``physicalName`` is the table) and each of its ``properties`` a column. ODCS has no PII field and
no entity link, so the conventions of the reference are read:

- ``customProperties``: ``pii``, ``piiCategory``, ``mask``, ``maskExpr``, ``entityIdentifier``
  (and, at object level, a default ``classification``; at root level ``inputs`` for lineage);
- ``authoritativeDefinitions`` of type ``semantics``: the entity is the IRI's last path segment;
- ``slaProperties``: ``retention``, ``latency``, ``frequency``, ``availability``, ``endOfSupport``
  (applied to every port, or to the one named by ``element``);
- ``roles[]`` with read access: a grant to the group named by ``role`` (purposes and row filter
  from the role's ``customProperties``).

ODCS is a closed schema, so unknown keys are errors naming the key and line; unknown
``customProperties`` are kept losslessly in ``Manifest.extensions`` (the policies never see them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
from meshgov.core.yaml_source import Path, SourceDocument
from meshgov.errors import Location, ManifestError

SUPPORTED_VERSIONS = re.compile(r"^v3\.[012]\.\d+$")

# Keys the ODCS v3.0–v3.2 JSON Schemas know; anything else is rejected, as ODCS itself does.
ROOT_KEYS = {
    "apiVersion", "kind", "id", "name", "version", "status", "domain", "dataProduct", "tenant",
    "tags", "description", "team", "roles", "servers", "slaProperties", "slaDefaultElement",
    "support", "price", "contractCreatedTs", "authoritativeDefinitions", "customProperties",
    "schema", "terms",
}  # fmt: skip
# ``quality`` lives on schema objects and properties; the ODCS schema rejects it at the root.
ROOT_QUALITY_HINT = (
    "a top-level 'quality' block is not allowed by ODCS; "
    "put quality rules on a schema object or property"
)
# Pattern of a property ``id`` (the stable, rename-safe key) in the ODCS JSON Schema.
PROPERTY_ID = re.compile(r"^[A-Za-z0-9_-]+$")
# logicalTypes that exist only from ODCS v3.2.0 on.
LOGICAL_TYPES_SINCE_3_2 = {"map", "vector"}
OBJECT_KEYS = {
    "id", "name", "physicalName", "physicalType", "logicalType", "businessName", "description",
    "dataGranularityDescription", "tags", "quality", "relationships", "authoritativeDefinitions",
    "customProperties", "properties", "classification", "dataGranularity", "priorTableName",
}  # fmt: skip
PROPERTY_KEYS = {
    "id", "name", "physicalName", "physicalType", "logicalType", "logicalTypeOptions",
    "businessName", "description", "examples", "required", "unique", "primaryKey",
    "primaryKeyPosition", "classification", "encryptedName", "criticalDataElement", "partitioned",
    "partitionKeyPosition", "transformSourceObjects", "transformLogic", "transformDescription",
    "relationships", "quality", "tags", "customProperties", "authoritativeDefinitions", "enum",
    "semanticType", "synonyms", "deprecated", "items", "properties",
}  # fmt: skip

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
# Physical types that refine ``number`` into ``decimal`` or stand in for a missing logicalType.
PHYSICAL_PREFIXES: list[tuple[str, LogicalType]] = [
    ("decimal", LogicalType.decimal),
    ("numeric", LogicalType.decimal),
    ("number(", LogicalType.decimal),
    ("varchar", LogicalType.string),
    ("char", LogicalType.string),
    ("text", LogicalType.string),
    ("string", LogicalType.string),
    ("bigint", LogicalType.integer),
    ("smallint", LogicalType.integer),
    ("int", LogicalType.integer),
    ("double", LogicalType.number),
    ("float", LogicalType.number),
    ("real", LogicalType.number),
    ("bool", LogicalType.boolean),
    ("timestamp", LogicalType.timestamp),
    ("datetime", LogicalType.timestamp),
    ("date", LogicalType.date),
    ("binary", LogicalType.binary),
    ("bytea", LogicalType.binary),
    ("blob", LogicalType.binary),
]
PORT_KINDS = {
    "table": PortKind.table,
    "view": PortKind.table,
    "materializedview": PortKind.table,
    "topic": PortKind.events,
    "stream": PortKind.events,
    "file": PortKind.files,
    "files": PortKind.files,
    "folder": PortKind.files,
}
STATUSES = {"proposed": Status.draft, "draft": Status.draft, "active": Status.active}
STATUSES.update({s.value: s for s in Status})
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


class _Reader:
    """Walks one contract into meshgov/v1 data, remembering where each part came from."""

    def __init__(self, doc: SourceDocument) -> None:
        self.doc = doc
        # Model path prefix (as pydantic reports it) -> ODCS path, to place validation errors.
        self.origins: dict[Path, Path] = {}
        self.extensions: dict[str, Any] = {}
        # Minor version of the contract's ``apiVersion`` (``v3.1.0`` -> 1), set by ``read``.
        self.minor_version = 0

    # -- errors and typed access --------------------------------------------------------------

    def error(self, path: Path, message: str) -> ManifestError:
        where = _dotted(path)
        text = f"{where}: {message}" if where else message
        line = self.doc.line_of(path)
        if line is None:
            # A missing root key: name the contract's first line rather than no line at all.
            line = min((n for p, n in self.doc.lines.items() if len(p) == 1), default=None)
        return ManifestError(text, Location(file=self.doc.source, line=line))

    def mapping(self, value: Any, path: Path) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {_kind(value)}")
        return value

    def sequence(self, value: Any, path: Path) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {_kind(value)}")
        return value

    def text(self, value: Any, path: Path, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                raise self.error(path, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(path, f"expected a string, got {_kind(value)}")
        return str(value)

    def flag(self, value: Any, path: Path) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self.error(path, f"expected true or false, got {value!r}")

    def check_keys(self, data: Mapping[str, Any], known: set[str], path: Path) -> None:
        for key in data:
            if key not in known:
                raise self.error((*path, key), f"unknown ODCS key '{key}'")

    def custom_properties(
        self, owner: Mapping[str, Any], path: Path
    ) -> dict[str, tuple[Any, Path]]:
        """``customProperties: [{property, value}]`` as ``{property: (value, path of value)}``."""
        found: dict[str, tuple[Any, Path]] = {}
        base = (*path, "customProperties")
        for index, item in enumerate(self.sequence(owner.get("customProperties"), base)):
            entry = self.mapping(item, (*base, index))
            name = self.text(entry.get("property"), (*base, index, "property"), required=True)
            assert name is not None
            if name in found:
                raise self.error((*base, index, "property"), f"customProperty '{name}' is repeated")
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
        root = self.mapping(self.doc.data, ())
        if "quality" in root:
            raise self.error(("quality",), ROOT_QUALITY_HINT)
        self.check_keys(root, ROOT_KEYS, ())
        api_version = self.text(root.get("apiVersion"), ("apiVersion",), required=True)
        if api_version is None or not SUPPORTED_VERSIONS.match(api_version):
            raise self.error(
                ("apiVersion",), f"unsupported ODCS version {api_version!r} (v3.0–v3.2 are read)"
            )
        if root.get("kind", "DataContract") != "DataContract":
            raise self.error(("kind",), f"kind must be 'DataContract', got {root.get('kind')!r}")
        self.minor_version = int(api_version.split(".")[1])
        contract_id = self.text(root.get("id"), ("id",))
        if contract_id is None or not contract_id.strip():
            raise self.error(("id",), "is required (ODCS requires a contract id, e.g. a UUID)")
        root_props = self.custom_properties(root, ())
        self.keep_unknown("contract", None, root_props, ROOT_PROPERTIES)
        self.extensions["contract"] = {
            key: root[key]
            for key in ("id", "apiVersion", "tenant", "dataProduct", "servers", "support")
            if key in root
        }

        metadata = self.metadata(root, root_props)
        sla = self.sla_properties(root)
        schema = self.sequence(root.get("schema"), ("schema",))
        if not schema:
            raise self.error(("schema",), "a contract needs at least one schema object (port)")
        ports = [
            self.port(self.mapping(obj, ("schema", index)), ("schema", index), index, sla)
            for index, obj in enumerate(schema)
        ]
        self.origins[("spec", "outputPorts")] = ("schema",)
        data: dict[str, Any] = {
            "apiVersion": "meshgov/v1",
            "kind": "DataProduct",
            "metadata": metadata,
            "spec": {
                "inputs": self.inputs(root_props),
                "outputPorts": ports,
                "access": {"grants": self.grants(root)},
            },
        }
        return data

    def metadata(self, root: Mapping[str, Any], props: Mapping[str, tuple[Any, Path]]) -> Any:
        domain = self.text(root.get("domain"), ("domain",), required=True)
        name = self.text(root.get("name"), ("name",), required=True)
        for key, value in (("domain", domain), ("name", name)):
            if value is None or not re.match(NAME, value):
                raise self.error(
                    (key,), f"{value!r} is not a meshgov {key} (lower case, [a-z][a-z0-9_-]*)"
                )
        metadata: dict[str, Any] = {
            "domain": domain,
            "name": name,
            "version": self.text(root.get("version"), ("version",), required=True),
            "owner": self.owner(root, props),
            "description": self.description(root.get("description")),
            "status": self.status(root.get("status")),
            "tags": [str(t) for t in self.sequence(root.get("tags"), ("tags",))],
        }
        for key in ("domain", "name", "version", "status", "tags", "description"):
            self.origins[("metadata", key)] = (key,)
        self.origins[("metadata", "owner")] = ("team",)
        return metadata

    def owner(self, root: Mapping[str, Any], props: Mapping[str, tuple[Any, Path]]) -> str | None:
        if "owner" in props:
            return self.text(*props["owner"])
        team = root.get("team")
        if team is None:
            return None
        # v3.0 wrote the team as a list of members; v3.1 as {name, members}.
        members_path: Path = ("team",) if isinstance(team, list) else ("team", "members")
        team_name = None
        if isinstance(team, dict):
            team_name = self.text(team.get("name"), ("team", "name"))
            members = self.sequence(team.get("members"), members_path)
        else:
            members = self.sequence(team, members_path)
        owners = []
        for index, item in enumerate(members):
            member = self.mapping(item, (*members_path, index))
            role = str(member.get("role") or "").strip().lower()
            if role == "owner" and member.get("dateOut") is None:
                owners.append(self.text(member.get("username"), (*members_path, index, "username")))
        if len(owners) > 1:
            raise self.error(members_path, "more than one current member has role 'owner'")
        return owners[0] if owners else team_name

    def description(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        parts = self.mapping(value, ("description",))
        extra = {k: v for k, v in parts.items() if k != "purpose"}
        if extra:
            self.extensions["description"] = extra
        return self.text(parts.get("purpose"), ("description", "purpose"))

    def status(self, value: Any) -> Status | None:
        text = self.text(value, ("status",))
        if text is None:
            return None
        status = STATUSES.get(text.strip().lower())
        if status is None:
            allowed = ", ".join(sorted(STATUSES))
            raise self.error(("status",), f"unknown status {text!r} (one of {allowed})")
        return status

    def sla_properties(self, root: Mapping[str, Any]) -> list[tuple[str, Any, str | None, Path]]:
        """``(property, value with unit, element, path)`` for the SLA properties meshgov maps."""
        found = []
        base: Path = ("slaProperties",)
        for index, item in enumerate(self.sequence(root.get("slaProperties"), base)):
            path = (*base, index)
            entry = self.mapping(item, path)
            name = self.text(entry.get("property"), (*path, "property"), required=True)
            assert name is not None
            element = self.text(entry.get("element"), (*path, "element"))
            unit = self.text(entry.get("unit"), (*path, "unit"))
            value = entry.get("value")
            if name in ("retention", "latency", "frequency"):
                value = self.duration(value, unit, (*path, "value"))
            found.append((name, value, element, path))
        return found

    def duration(self, value: Any, unit: str | None, path: Path) -> str:
        if isinstance(value, bool) or value is None:
            raise self.error(path, f"expected a duration, got {value!r}")
        if unit is None:
            return str(value)  # already written as "3y" or as free text such as "daily"
        short = DURATION_UNITS.get(unit.strip().lower())
        if short is None:
            raise self.error(path, f"unknown duration unit {unit!r}")
        return f"{value}{short}"

    def port(
        self,
        obj: Mapping[str, Any],
        path: Path,
        index: int,
        sla: list[tuple[str, Any, str | None, Path]],
    ) -> dict[str, Any]:
        self.check_keys(obj, OBJECT_KEYS, path)
        name = self.text(obj.get("name"), (*path, "name"), required=True)
        assert name is not None
        props = self.custom_properties(obj, path)
        self.keep_unknown("ports", name, props, OBJECT_PROPERTIES)
        default_classification = None
        if "classification" in obj:
            default_classification = self.classification(
                obj["classification"], (*path, "classification")
            )
        elif "classification" in props:
            default_classification = self.classification(*props["classification"])
        physical_type = self.text(obj.get("physicalType"), (*path, "physicalType")) or "table"
        kind = PORT_KINDS.get(physical_type.strip().lower().replace("_", "").replace(" ", ""))
        if kind is None:
            raise self.error((*path, "physicalType"), f"unknown physicalType {physical_type!r}")
        model_path: Path = ("spec", "outputPorts", index)
        self.origins[model_path] = path
        port: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "table": self.text(obj.get("physicalName"), (*path, "physicalName")),
            "description": self.text(obj.get("description"), (*path, "description")),
        }
        if "retention" in props:
            port["retention"] = self.text(*props["retention"])
        sla_values: dict[str, Any] = {}
        for prop, value, element, _ in sla:
            if element is not None and element.split(".")[0] not in (name, obj.get("id")):
                continue
            if prop == "retention":
                port["retention"] = value
            elif prop == "endOfSupport":
                port["endOfSupport"] = str(value)
            elif prop in ("latency", "frequency"):
                sla_values[prop] = value
            elif prop == "availability":
                sla_values[prop] = _percent(value)
        if sla_values:
            port["sla"] = sla_values
        props_path: Path = (*path, "properties")
        columns = self.sequence(obj.get("properties"), props_path)
        if not columns:
            raise self.error(props_path, "a schema object needs at least one property (column)")
        port["columns"] = [
            self.column(
                self.mapping(item, (*props_path, j)),
                (*props_path, j),
                (*model_path, "columns", j),
                name,
                default_classification,
            )
            for j, item in enumerate(columns)
        ]
        self.origins[(*model_path, "columns")] = props_path
        seen: set[str] = set()
        for j, column in enumerate(port["columns"]):
            if column["name"].lower() in seen:
                raise self.error((*props_path, j, "name"), f"duplicate column '{column['name']}'")
            seen.add(column["name"].lower())
        return port

    def column(
        self,
        prop: Mapping[str, Any],
        path: Path,
        model_path: Path,
        port_name: str,
        default_classification: Classification | None,
    ) -> dict[str, Any]:
        self.check_keys(prop, PROPERTY_KEYS, path)
        self.origins[model_path] = path
        if "id" in prop:
            prop_id = self.text(prop["id"], (*path, "id"), required=True)
            if prop_id is None or not PROPERTY_ID.match(prop_id):
                raise self.error(
                    (*path, "id"),
                    f"property id {prop_id!r} does not match ^[A-Za-z0-9_-]+$ "
                    "(letters, digits, '_' and '-' only)",
                )
        name = self.text(prop.get("name"), (*path, "name"), required=True)
        assert name is not None
        custom = self.custom_properties(prop, path)
        self.keep_unknown("columns", f"{port_name}.{name}", custom, COLUMN_PROPERTIES)
        column: dict[str, Any] = {
            "name": name,
            "type": self.logical_type(prop, path),
            "description": self.text(prop.get("description"), (*path, "description")),
        }
        for key in ("required", "unique", "primaryKey"):
            if key in prop:
                column[key] = self.flag(prop[key], (*path, key))
                self.origins[(*model_path, key)] = (*path, key)
        if "classification" in prop:
            column["classification"] = self.classification(
                prop["classification"], (*path, "classification")
            )
        elif "classification" in custom:
            column["classification"] = self.classification(*custom["classification"])
        elif default_classification is not None:
            column["classification"] = default_classification
        if "pii" in custom:
            column["pii"] = self.flag(*custom["pii"])
        if "piiCategory" in custom:
            column["piiCategory"] = self.text(*custom["piiCategory"])
        if "mask" in custom:
            column["mask"] = self.mask(*custom["mask"])
        if "maskExpr" in custom:
            column["maskExpr"] = self.text(*custom["maskExpr"])
        entity = self.entity(prop, custom, path)
        if entity is not None:
            column["entity"] = entity
        column.update(self.type_options(prop, path))
        if "enum" in prop:
            column["enum"] = self.enum_values(prop["enum"], (*path, "enum"))
        sources = self.sequence(
            prop.get("transformSourceObjects"), (*path, "transformSourceObjects")
        )
        if sources:
            column["derivedFrom"] = [str(s) for s in sources]
        tags = self.sequence(prop.get("tags"), (*path, "tags"))
        if tags:
            column["tags"] = [str(t) for t in tags]
        return column

    def logical_type(self, prop: Mapping[str, Any], path: Path) -> LogicalType:
        logical = self.text(prop.get("logicalType"), (*path, "logicalType"))
        physical = (self.text(prop.get("physicalType"), (*path, "physicalType")) or "").lower()
        refined = next((t for prefix, t in PHYSICAL_PREFIXES if physical.startswith(prefix)), None)
        if logical is None:
            if refined is None:
                raise self.error(
                    (*path, "logicalType"),
                    "logicalType is required (or a physicalType meshgov recognises)",
                )
            return refined
        key = logical.strip().lower()
        mapped = LOGICAL_TYPES.get(key)
        if mapped is None:
            allowed = ", ".join(sorted(LOGICAL_TYPES))
            raise self.error(
                (*path, "logicalType"), f"unknown logicalType {logical!r} (one of {allowed})"
            )
        if key in LOGICAL_TYPES_SINCE_3_2 and self.minor_version < 2:
            raise self.error(
                (*path, "logicalType"),
                f"logicalType {logical!r} exists only from ODCS v3.2.0 "
                f"(this contract is {self.doc.data.get('apiVersion')})",
            )
        # ODCS has no decimal logical type: ``number`` stored as DECIMAL(p, s) is one.
        if mapped is LogicalType.number and refined is LogicalType.decimal:
            return LogicalType.decimal
        return mapped

    def type_options(self, prop: Mapping[str, Any], path: Path) -> dict[str, Any]:
        base: Path = (*path, "logicalTypeOptions")
        options = self.mapping(prop.get("logicalTypeOptions") or {}, base)
        out: dict[str, Any] = {}
        for key in ("format", "pattern"):
            if key in options:
                out[key] = self.text(options[key], (*base, key))
        for key in ("minLength", "maxLength"):
            if key in options:
                value = options[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise self.error((*base, key), f"expected an integer, got {value!r}")
                out[key] = value
        for key in ("minimum", "maximum"):
            if key in options:
                value = options[key]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue  # date bounds ("2020-01-01") have no numeric home in the model
                out[key] = value
        extra = {k: v for k, v in options.items() if k not in out}
        if extra:
            self.extensions.setdefault("logicalTypeOptions", {})[_dotted(path)] = extra
        return out

    def enum_values(self, value: Any, path: Path) -> list[str]:
        values = []
        for index, item in enumerate(self.sequence(value, path)):
            # ODCS 3.2 writes enum entries as {value, label, ...}; accept bare values too.
            raw = (
                self.mapping(item, (*path, index)).get("value") if isinstance(item, dict) else item
            )
            text = self.text(raw, (*path, index), required=True)
            assert text is not None
            values.append(text)
        return values

    def classification(self, value: Any, path: Path) -> Classification:
        text = self.text(value, path, required=True)
        assert text is not None
        try:
            return Classification(text.strip().lower())
        except ValueError:
            tiers = " < ".join(c.value for c in Classification)
            raise self.error(path, f"unknown classification {text!r} (tiers: {tiers})") from None

    def mask(self, value: Any, path: Path) -> MaskKind:
        text = self.text(value, path, required=True)
        assert text is not None
        try:
            return MaskKind(text.strip().lower())
        except ValueError:
            kinds = ", ".join(m.value for m in MaskKind)
            raise self.error(path, f"unknown mask {text!r} (one of {kinds})") from None

    def entity(
        self, prop: Mapping[str, Any], custom: Mapping[str, tuple[Any, Path]], path: Path
    ) -> str | None:
        """The entity a column identifies, from semantics definitions or ``entityIdentifier``."""
        found: dict[str, Path] = {}
        base: Path = (*path, "authoritativeDefinitions")
        for index, item in enumerate(self.sequence(prop.get("authoritativeDefinitions"), base)):
            definition = self.mapping(item, (*base, index))
            if str(definition.get("type", "")).strip().lower() != "semantics":
                continue
            url = self.text(definition.get("url"), (*base, index, "url"), required=True)
            assert url is not None
            found.setdefault(_entity_of(url), (*base, index, "url"))
        if "entityIdentifier" in custom:
            value, value_path = custom["entityIdentifier"]
            url = self.text(value, value_path, required=True)
            assert url is not None
            found.setdefault(_entity_of(url), value_path)
        if len(found) > 1:
            names = ", ".join(sorted(found))
            last = max(found.values(), key=lambda p: self.doc.line_of(p) or 0)
            raise self.error(last, f"the column is linked to several entities ({names})")
        for entity, entity_path in found.items():
            if not entity:
                raise self.error(entity_path, "cannot read an entity name from this IRI")
            return entity
        return None

    def inputs(self, props: Mapping[str, tuple[Any, Path]]) -> list[dict[str, Any]]:
        if "inputs" not in props:
            return []
        value, path = props["inputs"]
        inputs = []
        for index, item in enumerate(self.sequence(value, path)):
            if isinstance(item, str) and ":" in item:
                product, port = item.split(":", 1)
                inputs.append({"product": product, "port": port})
            elif isinstance(item, dict):
                inputs.append(item)
            else:
                raise self.error(
                    (*path, index), "an input is {product: domain/name, port: name} or 'd/n:port'"
                )
            self.origins[("spec", "inputs", index)] = (*path, index)
        return inputs

    def grants(self, root: Mapping[str, Any]) -> list[dict[str, Any]]:
        grants: list[dict[str, Any]] = []
        base: Path = ("roles",)
        for index, item in enumerate(self.sequence(root.get("roles"), base)):
            path = (*base, index)
            role = self.mapping(item, path)
            name = self.text(role.get("role"), (*path, "role"), required=True)
            access = str(role.get("access") or "read").strip().lower()
            if access not in ("read", "readwrite", "read-write", "read_write"):
                continue  # write-only roles grant no reads
            props = self.custom_properties(role, path)
            self.keep_unknown("roles", str(name), props, ROLE_PROPERTIES)
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
    """Normalise an ODCS v3.0–v3.2 contract into a ``Manifest`` (``source_format`` says which)."""
    reader = _Reader(doc)
    data = reader.read()
    try:
        manifest = Manifest.model_validate(
            {
                **data,
                "source": doc.source,
                "source_format": f"odcs/{doc.data['apiVersion']}",
                "extensions": reader.extensions,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc: Path = tuple(first["loc"])
        place = reader.place(loc)
        shown = first.get("input")
        detail = first["msg"].removeprefix("Value error, ")
        if isinstance(shown, str | int | float | bool) and len(str(shown)) < 60:
            detail += f" (got {shown!r})"
        model_place = ".".join(str(p) for p in loc)
        raise reader.error(place, f"{detail} [meshgov field {model_place}]") from None
    return manifest


def _entity_of(iri: str) -> str:
    """``https://id.acme.example/entity/Customer`` -> ``customer`` (last path or fragment part)."""
    tail = re.split(r"[/#:]", iri.strip().rstrip("/#"))[-1]
    return tail.strip().lower()


def _percent(value: Any) -> Any:
    """ODCS writes availability as ``99.9`` (percent) or ``"99.9%"``; the model wants 0.999."""
    text = str(value).strip().rstrip("%")
    try:
        number = float(text)
    except ValueError:
        return value  # let validation name it
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
