"""The data product manifest (meshgov/v1) as typed models, and its normalised policy input.

Both meshgov/v1 manifests and ODCS v3 contracts (see ``odcs.py``) become one ``Manifest``; policies
only ever see ``Manifest.policy_document()``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from meshgov.core.yaml_source import Path, SourceDocument, load_yaml, located_validation_error
from meshgov.errors import InputError, Location, ManifestError

API_VERSION = "meshgov/v1"
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
NAME = r"^[a-z][a-z0-9_-]*$"
# A column of another product's port: ``domain/product:port:column`` (``derivedFrom``).
COLUMN_REF = r"^[a-z][a-z0-9_-]*/[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*:.+$"


def _may_be_empty(info: ValidationInfo) -> bool:
    """ODCS allows a contract without schema objects and an object without properties: read into
    a product with no ports / a port with no columns, which the release policies then report
    (``release/missing-schema``). A meshgov/v1 manifest must have both."""
    return isinstance(info.context, dict) and info.context.get("odcs") is True


class Classification(StrEnum):
    public = "public"
    internal = "internal"
    confidential = "confidential"
    restricted = "restricted"

    @property
    def rank(self) -> int:
        return list(Classification).index(self)


class LogicalType(StrEnum):
    string = "string"
    integer = "integer"
    number = "number"
    decimal = "decimal"
    boolean = "boolean"
    date = "date"
    timestamp = "timestamp"
    binary = "binary"
    array = "array"
    struct = "struct"


class MaskKind(StrEnum):
    hash = "hash"
    redact = "redact"
    partial = "partial"
    null = "null"
    year = "year"
    expr = "expr"


class Status(StrEnum):
    draft = "draft"
    active = "active"
    deprecated = "deprecated"
    retired = "retired"


class PortKind(StrEnum):
    table = "table"
    events = "events"
    files = "files"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Column(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    type: LogicalType
    description: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = Field(False, alias="primaryKey")
    entity: str | None = None
    format: str | None = None
    classification: Classification | None = None
    pii: bool = False
    pii_category: str | None = Field(None, alias="piiCategory")
    mask: MaskKind | None = None
    mask_expr: str | None = Field(None, alias="maskExpr")
    enum: list[str] | None = None
    pattern: str | None = None
    min_length: int | None = Field(None, alias="minLength")
    max_length: int | None = Field(None, alias="maxLength")
    minimum: float | None = None
    maximum: float | None = None
    derived_from: list[Annotated[str, Field(pattern=COLUMN_REF)]] = Field(
        default_factory=list, alias="derivedFrom"
    )
    tags: list[str] = Field(default_factory=list)


class Sla(_Strict):
    latency: str | None = None
    frequency: str | None = None
    availability: float | None = None


class OutputPort(_Strict):
    name: Annotated[str, Field(pattern=NAME)]
    kind: PortKind = PortKind.table
    table: str | None = None
    data: str | None = None
    retention: str | None = None
    description: str | None = None
    sla: Sla | None = None
    end_of_support: str | None = Field(None, alias="endOfSupport")
    columns: list[Column] = Field(json_schema_extra={"minItems": 1})

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, columns: list[Column], info: ValidationInfo) -> list[Column]:
        if not columns and not _may_be_empty(info):
            raise ValueError("a port needs at least one column")
        seen: set[str] = set()
        for col in columns:
            if col.name.lower() in seen:
                raise ValueError(f"duplicate column '{col.name}'")
            seen.add(col.name.lower())
        return columns


class InputPort(_Strict):
    product: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*/[a-z][a-z0-9_-]*$")]
    port: str


class GrantTarget(_Strict):
    ids: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)


class Grant(_Strict):
    to: GrantTarget
    purposes: list[str] = Field(default_factory=list)
    ports: list[str] = Field(default_factory=list)
    row_filter: str | None = Field(None, alias="rowFilter")


class Access(_Strict):
    grants: list[Grant] = Field(default_factory=list)


class Metadata(_Strict):
    domain: Annotated[str, Field(pattern=NAME)]
    name: Annotated[str, Field(pattern=NAME)]
    version: str
    owner: str | None = None
    description: str | None = None
    status: Status | None = None
    tags: list[str] = Field(default_factory=list)


class Spec(_Strict):
    inputs: list[InputPort] = Field(default_factory=list)
    output_ports: list[OutputPort] = Field(alias="outputPorts", json_schema_extra={"minItems": 1})
    access: Access = Field(default_factory=Access)

    @field_validator("output_ports")
    @classmethod
    def _unique_ports(cls, ports: list[OutputPort], info: ValidationInfo) -> list[OutputPort]:
        if not ports and not _may_be_empty(info):
            raise ValueError("a product needs at least one output port")
        names = [p.name for p in ports]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate output port '{dupes[0]}'")
        return ports


class Manifest(_Strict):
    api_version: Literal["meshgov/v1"] = Field(alias="apiVersion")
    kind: Literal["DataProduct"]
    metadata: Metadata
    spec: Spec
    # Where the manifest was read from; not part of the format.
    source: str | None = Field(None, exclude=True)
    source_format: str = Field("meshgov/v1", exclude=True)
    extensions: dict[str, Any] = Field(default_factory=dict, exclude=True)
    # What the ODCS reader could not map (see odcs.py); the release policies report each.
    notes: list[dict[str, Any]] = Field(default_factory=list, exclude=True)

    @property
    def id(self) -> str:
        return f"{self.metadata.domain}/{self.metadata.name}"

    def port(self, name: str) -> OutputPort | None:
        return next((p for p in self.spec.output_ports if p.name == name), None)

    def policy_document(self) -> dict[str, Any]:
        """The normalised JSON the policies see as ``input.product``."""
        doc = self.model_dump(mode="json", by_alias=True, exclude_none=False)
        doc["id"] = self.id
        doc["source"] = self.source
        doc["sourceFormat"] = self.source_format
        doc["semver_valid"] = SEMVER.match(self.metadata.version) is not None
        doc["sourceNotes"] = self.notes
        return doc


def semver_major(version: str) -> int | None:
    match = SEMVER.match(version)
    return int(match.group(1)) if match else None


def _validation_to_error(
    exc: ValidationError, doc: SourceDocument, prefix: Path = ()
) -> ManifestError:
    return ManifestError(*located_validation_error(exc, doc, prefix))


def manifest_from_document(doc: SourceDocument) -> Manifest:
    """Validate a parsed document as meshgov/v1 or ODCS v3, normalising the latter."""
    data = doc.data
    if not isinstance(data, dict):
        raise ManifestError("a manifest must be a YAML mapping", Location(file=doc.source, line=1))
    if str(data.get("apiVersion", "")).startswith("v3") or data.get("kind") == "DataContract":
        from meshgov.core.odcs import manifest_from_odcs

        return manifest_from_odcs(doc)
    if data.get("apiVersion") != API_VERSION:
        raise ManifestError(
            f"apiVersion must be '{API_VERSION}' (or an ODCS 'v3.x' contract), "
            f"got {data.get('apiVersion')!r}",
            Location(file=doc.source, line=doc.line_of(("apiVersion",)) or 1),
        )
    for internal in ("source", "source_format", "extensions", "notes"):
        if internal in data:
            raise ManifestError(
                f"unknown key '{internal}' at {internal}",
                Location(file=doc.source, line=doc.line_of((internal,))),
            )
    try:
        manifest = Manifest.model_validate({**data, "source": doc.source})
    except ValidationError as exc:
        raise _validation_to_error(exc, doc) from None
    return manifest


def parse_manifest(text: str, source: str = "<manifest>") -> Manifest:
    """Parse manifest text (meshgov/v1 or ODCS v3 YAML/JSON) into a ``Manifest``."""
    try:
        doc = load_yaml(text, source)
    except InputError as exc:
        raise ManifestError(exc.message, exc.location) from None
    return manifest_from_document(doc)


def manifest_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the meshgov/v1 format as written, for editors and CI.

    Kept in sync with ``docs/manifest.schema.json`` by ``tests/core/test_manifest_schema.py``.
    """
    schema = Manifest.model_json_schema(by_alias=True, mode="validation")
    # Bookkeeping fields that are not part of the format.
    for internal in ("source", "source_format", "extensions", "notes"):
        schema["properties"].pop(internal, None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://meshgov.dev/schemas/meshgov-v1.schema.json",
        **schema,
        "title": "meshgov/v1 DataProduct manifest",
        "description": "A data product: metadata, lineage inputs, output ports with typed, "
        "classified columns, and the domain's access grants. See docs/manifest.md.",
    }
