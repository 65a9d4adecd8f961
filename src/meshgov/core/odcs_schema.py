"""Validation of ODCS contracts with the official ODCS JSON Schemas, every error at once.

Two implementations of JSON Schema are used: ``jsonschema-rs`` (Rust, ~100x faster) decides
whether a contract is valid, and ``jsonschema`` (the reference Python one) explains an invalid one
(every error, with the most relevant branch of an ``anyOf``/``oneOf``). Should they ever disagree
on a contract, it is refused (fail closed) with the Rust validator's errors.

The schemas ship in ``odcs_schemas/`` (see its README for where each comes from and its licence);
they are read from the package like code is, never from the network or the working directory.

Which schema judges a contract depends on its ``apiVersion``:

- ``v3.1.0`` and ``v3.2.0``: the schema of that version only (so a v3.1 contract may not use the
  v3.2 logical types ``map`` and ``vector``, and must have a ``status``);
- ``v3.0.x``: the schema of that version, or the v3.1.0 schema, which lists every v3.0.x
  ``apiVersion`` as one it reads. The standard's own examples are written that way (v3.0.2
  contracts using v3.1 fields), so a v3.0.x contract is refused only when both schemas refuse it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft201909Validator
from jsonschema.exceptions import ValidationError, best_match

from meshgov.core.yaml_source import Path, SourceDocument
from meshgov.errors import Location, ManifestError

SCHEMA_DIR = "odcs_schemas"
# apiVersion -> the schema files that may accept it, in the order their errors are preferred.
SCHEMAS: dict[str, tuple[str, ...]] = {
    "v3.0.0": ("v3.0.0", "v3.1.0"),
    "v3.0.1": ("v3.0.1", "v3.1.0"),
    "v3.0.2": ("v3.0.2", "v3.1.0"),
    "v3.1.0": ("v3.1.0",),
    "v3.2.0": ("v3.2.0",),
}
ROOT_QUALITY_HINT = (
    "a top-level 'quality' block is not allowed by ODCS; "
    "put quality rules on a schema object or property"
)
# The unexpected keys jsonschema names in its message for additional/unevaluated properties.
_UNEXPECTED = re.compile(r"'([^']*)'")
_MAX_SHOWN = 60


@functools.cache
def _schema(version: str) -> dict[str, Any]:
    name = f"odcs-json-schema-{version}.json"
    text = resources.files("meshgov.core").joinpath(SCHEMA_DIR, name).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(version: str) -> Draft201909Validator:
    return Draft201909Validator(_schema(version))


@functools.cache
def _fast_validator(version: str) -> jsonschema_rs.Draft201909Validator:
    return jsonschema_rs.Draft201909Validator(_schema(version))


def supported_versions() -> list[str]:
    return sorted(SCHEMAS)


def schema_errors(doc: SourceDocument, api_version: str) -> list[ManifestError]:
    """Every error of the ODCS JSON Schema for ``api_version``, in file order (empty: valid).

    ``api_version`` must be one of ``SCHEMAS``. Each error names the file, the line of the
    offending key (or of its parent for a missing key) and the dotted path inside the contract.
    """
    versions = SCHEMAS[api_version]
    if any(_fast_validator(version).is_valid(doc.data) for version in versions):
        return []
    best: list[ManifestError] | None = None
    for version in versions:
        errors: list[ManifestError] = []
        seen: set[str] = set()
        for leaf in _leaves(doc.data, version):
            error = _located(doc, leaf, version)
            # One key refused by two branches of the schema (allOf) is one error.
            if str(error) not in seen:
                seen.add(str(error))
                errors.append(error)
        if not errors:
            # The two implementations disagree: refuse, with the errors of the one that refused.
            errors = [_fast_located(doc, e, version) for e in _fast_errors(doc.data, version)]
        if best is None or len(errors) < len(best):
            best = errors
    assert best is not None
    best.sort(key=lambda e: (e.location.line or 0) if e.location else 0)
    return best


def _leaves(data: Any, version: str) -> Iterable[ValidationError]:
    """The errors of one validation, an ``anyOf``/``oneOf`` replaced by its most relevant branch."""
    for error in _validator(version).iter_errors(data):
        leaf = error
        while leaf.context:
            leaf = best_match(leaf.context)
        yield leaf


def _fast_errors(data: Any, version: str) -> list[Any]:
    return list(_fast_validator(version).iter_errors(data))


def _fast_located(doc: SourceDocument, error: Any, version: str) -> ManifestError:
    path: Path = tuple(error.instance_path)
    where = _dotted(path)
    text = f"{where}: {error.message}" if where else str(error.message)
    return ManifestError(
        f"{text} (ODCS {version} JSON Schema)",
        Location(file=doc.source, line=_line(doc, path)),
    )


def _line(doc: SourceDocument, path: Path) -> int:
    line = doc.line_of(path)
    if line is None:
        # A missing root key: name the contract's first line rather than no line at all.
        line = min((n for p, n in doc.lines.items() if len(p) == 1), default=1)
    return line


def _located(doc: SourceDocument, error: ValidationError, version: str) -> ManifestError:
    path: Path = tuple(error.absolute_path)
    message = _describe(error)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        unexpected = _UNEXPECTED.findall(error.message)
        if unexpected:
            path = (*path, unexpected[0])
            keys = ", ".join(f"'{k}'" for k in unexpected)
            message = f"unknown ODCS key {keys} (extensions go in customProperties)"
            if path == ("quality",):
                message = ROOT_QUALITY_HINT
    where = _dotted(path)
    text = f"{where}: {message}" if where else message
    return ManifestError(
        f"{text} (ODCS {version} JSON Schema)", Location(file=doc.source, line=_line(doc, path))
    )


def _describe(error: ValidationError) -> str:
    validator = error.validator
    if validator == "required":
        missing = _UNEXPECTED.findall(error.message)
        return f"'{missing[0]}' is required" if missing else error.message
    if validator == "enum" and isinstance(error.validator_value, list):
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{_shown(error.instance)} is not one of {allowed}"
    if validator == "type":
        return f"expected {_type_name(error.validator_value)}, got {_kind(error.instance)}"
    if validator == "const":
        return f"must be {error.validator_value!r}, got {_shown(error.instance)}"
    text = error.message
    return text if len(text) <= 200 else text[:197] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, list):
        return " or ".join(str(v) for v in value)
    return str(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else _kind(value)


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "nothing"
    return names.get(type(value), type(value).__name__)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
