"""What the Data API expects of ``input``, and whose fault an evaluation error is.

The Data API evaluates the guild's policies on the caller's ``input``. The rule (docs/service.md,
*OPA compatibility*):

1. The entrypoints meshgov documents declare an input contract, checked before evaluation; a
   mismatch is 400 ``invalid_input`` naming the first offending field (``input.principal: …``):
   - ``meshgov.access`` (``decision`` and every rule of the package): ``{principal, purpose,
     product, port, columns}``, every key optional, unknown keys refused, each of its type
     (``principal`` as the gateway sends it: ``{id, groups, domain, attributes, clearances}``).
     This contract is *complete*: it is all the policy reads.
   - the release gate (``meshgov.main``, ``meshgov.pii``, ``meshgov.identity``,
     ``meshgov.release``): ``{product, previous, scan, identity_facts}``, products as objects (or
     null), the others lists of objects. This contract is *shallow*: the product documents are
     not checked field by field.
2. An evaluation error is blamed on what was not checked. The active revision compiled and passed
   its tests before it was activated, so an error under an input that was never checked (a path
   without a contract, or the unchecked depth of a shallow one) is the caller's: 400
   ``invalid_input``. An error with no input, or under an input that passed a complete contract,
   is the service's own fault: 500 ``evaluation_error`` (and the answer denies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from meshgov.core.principal import AttributeValue
from meshgov.errors import InputError, PolicyEvaluationError

_STRICT = ConfigDict(extra="forbid", strict=True)


class PrincipalInput(BaseModel):
    """``input.principal`` as the gateway sends it (``Principal.policy_document``)."""

    model_config = _STRICT

    id: str | None = None
    groups: list[str] = Field(default_factory=list)
    domain: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    clearances: list[str] = Field(default_factory=list)

    @field_validator("attributes")
    @classmethod
    def _clearances_are_strings(cls, value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        clearances = value.get("clearances")
        if clearances is not None and not (
            isinstance(clearances, list) and all(isinstance(c, str) for c in clearances)
        ):
            raise ValueError("attributes.clearances must be a list of strings")
        return value


class AccessInput(BaseModel):
    """The input of ``data.meshgov.access``."""

    model_config = _STRICT

    principal: PrincipalInput | None = None
    purpose: str | None = None
    product: str | None = None
    port: str | None = None
    columns: list[str] | None = None


class GateInput(BaseModel):
    """The input of the release gate's packages (the product documents are not checked here)."""

    model_config = _STRICT

    product: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    scan: list[dict[str, Any]] = Field(default_factory=list)
    identity_facts: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class InputContract:
    name: str
    model: type[BaseModel]
    complete: bool  # True: everything the policy reads is checked
    shape: str  # what the input must be, in words (for messages)

    def check(self, document: Any) -> None:
        """Raise ``InputError`` naming the first field of ``document`` that breaks the contract."""
        if not isinstance(document, dict):
            raise InputError(f"input: {self.name} expects an object {self.shape}")
        try:
            self.model.model_validate(document)
        except ValidationError as exc:
            raise InputError(_located(exc, self)) from None


ACCESS = InputContract(
    "meshgov.access",
    AccessInput,
    complete=True,
    shape="{principal, purpose, product, port, columns}",
)
GATE = InputContract(
    "the release gate",
    GateInput,
    complete=False,
    shape="{product, previous, scan, identity_facts}",
)
_CONTRACTS: dict[tuple[str, str], InputContract] = {
    ("meshgov", "access"): ACCESS,
    **{("meshgov", package): GATE for package in ("main", "pii", "identity", "release")},
}


def contract_for(path: str) -> InputContract | None:
    """The contract of the package a Data API path is in (``None``: no declared contract)."""
    parts = tuple(p for p in path.strip("/").split("/") if p)
    if len(parts) < 2:
        return None
    return _CONTRACTS.get((parts[0], parts[1]))


def check_input(path: str, document: Any) -> bool:
    """Check ``document`` against the contract of ``path`` (400 when it breaks it).

    Returns whether everything the policy reads was checked (a complete contract passed).
    """
    contract = contract_for(path)
    if document is None or contract is None:
        return False
    contract.check(document)
    return contract.complete


def blame(error: PolicyEvaluationError, path: str, document: Any, checked: bool) -> Exception:
    """The error to answer for an evaluation error: the service's (500, as is) or the input's
    (400), by rule 2 of the module docstring."""
    if document is None or checked:
        return error
    contract = contract_for(path)
    expected = f"; {contract.name} expects {contract.shape}" if contract else ""
    return InputError(
        f"input: the policy cannot evaluate data.{'.'.join(path.strip('/').split('/'))} on this "
        f"input (a value has a type the policy does not accept){expected}"
    )


_TYPE_MESSAGES = {
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "string_type": "must be a string",
}


def _located(exc: ValidationError, contract: InputContract) -> str:
    first = exc.errors()[0]
    where = ".".join(["input", *(str(p) for p in first["loc"])])
    if first["type"] == "extra_forbidden":
        message = f"{where}: unknown key (expected {contract.shape})"
    else:
        message = f"{where}: {_TYPE_MESSAGES.get(first['type'], first['msg'])}"
        shown = first.get("input")
        if isinstance(shown, str | int | float | bool) and len(str(shown)) < 60:
            message += f" (got {shown!r})"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return message
