"""Who asks: the principal of a request (id, groups, domain, attributes, purpose).

Principals come from YAML/JSON files (the CLI) or from a bearer token (the service). Clearances
live in ``attributes.clearances``; row-filter placeholders ``{principal.X}`` read ``attributes.X``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from meshgov.core.yaml_source import load_yaml, located_validation_error
from meshgov.errors import InputError, Location, PrincipalError

# Attribute values a row filter can turn into SQL literals.
AttributeValue = str | int | float | bool | None | list[str | int | float | bool]


class Principal(BaseModel):
    """A requester. Frozen: decisions are cached per principal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=256)]
    groups: tuple[str, ...] = ()
    domain: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    purpose: str | None = None
    _cache_key: str | None = PrivateAttr(default=None)

    @field_validator("attributes")
    @classmethod
    def _clearances_are_a_list(cls, value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        clearances = value.get("clearances")
        if clearances is not None and not isinstance(clearances, list):
            raise ValueError("attributes.clearances must be a list of strings")
        for name, item in value.items():
            for number in item if isinstance(item, list) else [item]:
                # NaN and infinities are not JSON, and a row filter would write them as
                # identifiers (``region = nan``).
                if isinstance(number, float) and not math.isfinite(number):
                    raise ValueError(f"attributes.{name} must be a finite number, not {number}")
        return value

    @property
    def clearances(self) -> tuple[str, ...]:
        raw = self.attributes.get("clearances")
        return tuple(str(c) for c in raw) if isinstance(raw, list) else ()

    def policy_document(self) -> dict[str, Any]:
        """What Rego sees as ``input.principal``."""
        return {
            "id": self.id,
            "groups": list(self.groups),
            "domain": self.domain,
            "attributes": self.attributes,
            "clearances": list(self.clearances),
        }

    def cache_key(self) -> str:
        """A stable text identity of everything a decision may depend on (purpose excluded)."""
        if self._cache_key is None:
            self._cache_key = json.dumps(
                [self.id, sorted(self.groups), self.domain, self.attributes],
                sort_keys=True,
                default=str,
            )
        return self._cache_key


def parse_principal(text: str, source: str = "<principal>") -> Principal:
    """Parse a principal from YAML/JSON text; problems are ``PrincipalError`` naming the place."""
    try:
        doc = load_yaml(text, source)
    except InputError as exc:
        raise PrincipalError(exc.message, exc.location) from None
    if not isinstance(doc.data, dict):
        raise PrincipalError("a principal must be a mapping", Location(file=source, line=1))
    try:
        return Principal.model_validate(doc.data)
    except ValidationError as exc:
        raise PrincipalError(*located_validation_error(exc, doc)) from None
