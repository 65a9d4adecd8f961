"""The guild's registry (``policies/data/*.yaml``, ``data.registry``): shape and references.

The global rules read these files directly (``data.registry.purposes[p].pii``,
``pii_categories[c].allowed_masks``, ``masks[m].types``, …). Rego does not type-check data, so a
file of the wrong shape does not fail loudly: a purposes file that is a list makes every purpose
unregistered and every query denied; a category naming a mask that does not exist makes every
column of that category fail the release gate. meshgov therefore checks the files it knows when a
bundle is loaded or a data file is staged, and names the file, the key and the line. Other data
files, and keys the rules do not read, are the guild's own and are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from meshgov.core.yaml_source import SourceDocument, located_validation_error
from meshgov.errors import InputError, Location


class _Entry(BaseModel):
    # Further keys are the guild's (descriptions, owners, notes): allowed.
    model_config = ConfigDict(extra="allow")


class Purpose(_Entry):
    pii: StrictBool
    description: StrictStr | None = None


class Tier(_Entry):
    rank: StrictInt
    description: StrictStr | None = None


class Classifications(_Entry):
    tiers: dict[str, Tier]
    pii_minimum: StrictStr


class Mask(_Entry):
    types: list[StrictStr]
    description: StrictStr | None = None


class PiiCategory(_Entry):
    # Both optional for the rules: no default suggests `redact`, no list allows any mask.
    default_mask: StrictStr | None = None
    allowed_masks: list[StrictStr] | None = None
    minimum: StrictStr | None = None
    name_hints: list[StrictStr] = []
    description: StrictStr | None = None


class QuasiIdentifiers(_Entry):
    columns: list[StrictStr] = []
    piiCategories: list[StrictStr] = []


class Entity(_Entry):
    owner: dict[str, Any] = {}
    canonical: dict[str, Any] = {}
    aliases: list[StrictStr] = []


_SHAPES: dict[str, TypeAdapter[Any]] = {
    stem: TypeAdapter(shape)
    for stem, shape in {
        "purposes": dict[str, Purpose],
        "classifications": Classifications,
        "masks": dict[str, Mask],
        "pii_categories": dict[str, PiiCategory],
        "quasi_identifiers": QuasiIdentifiers,
        "entities": dict[str, Entity],
    }.items()
}

KNOWN_FILES = tuple(_SHAPES)


def _document(stem: str, registry: Mapping[str, Any], docs: Mapping[str, SourceDocument]) -> Any:
    return docs.get(stem) or SourceDocument(registry[stem], f"data/{stem}")


def _fail(doc: SourceDocument, path: tuple[str | int, ...], message: str) -> InputError:
    return InputError(message, Location(file=doc.source, line=doc.line_of(path)))


def validate_registry(
    registry: Mapping[str, Any], docs: Mapping[str, SourceDocument] | None = None
) -> None:
    """Raise ``InputError`` at the first file of ``registry`` the global rules cannot read.

    ``docs``: the parsed files by stem, for line numbers (JSON files and staged data have none).
    Checks each known file's shape, then the references between them: a category's masks exist,
    its minimum and the guild-wide PII minimum are tiers, quasi-identifier categories exist, and
    name hints are regular expressions.
    """
    docs = docs or {}
    for stem in KNOWN_FILES:
        if stem not in registry:
            continue
        doc = _document(stem, registry, docs)
        try:
            _SHAPES[stem].validate_python(registry[stem])
        except ValidationError as exc:
            message, location = located_validation_error(exc, doc)
            raise InputError(f"registry file {stem}: {message}", location) from None
    _check_references(registry, docs)


def _check_references(registry: Mapping[str, Any], docs: Mapping[str, SourceDocument]) -> None:
    masks = registry.get("masks")
    tiers = (registry.get("classifications") or {}).get("tiers")
    categories = registry.get("pii_categories") or {}
    if tiers is not None:
        doc = _document("classifications", registry, docs)
        minimum = registry["classifications"]["pii_minimum"]
        if minimum not in tiers:
            raise _fail(
                doc, ("pii_minimum",), f"pii_minimum '{minimum}' is not a tier ({_listing(tiers)})"
            )
    if categories:
        doc = _document("pii_categories", registry, docs)
        for name, category in categories.items():
            default, allowed = category.get("default_mask"), category.get("allowed_masks")
            named: list[tuple[tuple[str | int, ...], str]] = [
                ((name, "allowed_masks", i), mask) for i, mask in enumerate(allowed or [])
            ]
            if default is not None:
                named.insert(0, ((name, "default_mask"), default))
            for path, mask in named:
                if masks is not None and mask not in masks:
                    raise _fail(
                        doc,
                        path,
                        f"pii category '{name}' names mask '{mask}', which data/masks does not "
                        f"define ({_listing(masks)})",
                    )
            if default is not None and allowed is not None and default not in allowed:
                raise _fail(
                    doc,
                    (name, "default_mask"),
                    f"pii category '{name}': default_mask '{category['default_mask']}' is not "
                    "among its allowed_masks",
                )
            minimum = category.get("minimum")
            if tiers is not None and minimum is not None and minimum not in tiers:
                raise _fail(
                    doc,
                    (name, "minimum"),
                    f"pii category '{name}': minimum '{minimum}' is not a tier ({_listing(tiers)})",
                )
            for i, hint in enumerate(category.get("name_hints") or []):
                try:
                    re.compile(hint)
                except re.error as exc:
                    raise _fail(
                        doc,
                        (name, "name_hints", i),
                        f"pii category '{name}': name hint {hint!r} is not a regular expression "
                        f"({exc})",
                    ) from None
    quasi = registry.get("quasi_identifiers")
    if quasi is not None and "pii_categories" in registry:
        doc = _document("quasi_identifiers", registry, docs)
        for i, category in enumerate(quasi.get("piiCategories") or []):
            if category not in categories:
                raise _fail(
                    doc,
                    ("piiCategories", i),
                    f"quasi-identifier category '{category}' is not a pii category "
                    f"({_listing(categories)})",
                )


def _listing(names: Mapping[str, Any]) -> str:
    return "known: " + ", ".join(sorted(names)) if names else "none are defined"
