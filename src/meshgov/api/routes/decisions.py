"""``GET /v1/decisions``: the decision log, filtered."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from meshgov.api.deps import CallerDep, ServiceDep
from meshgov.api.security import GUILD_GROUP
from meshgov.core.principal import Principal
from meshgov.errors import AccessDenied, InputError
from meshgov.serving.state import ServingState
from meshgov.store.base import DECISION_KINDS, DecisionFilter
from meshgov.visibility import hidden_names, redact_value, sees_everything

router = APIRouter(prefix="/v1", tags=["decisions"])


class Decision(BaseModel):
    id: str
    time: dt.datetime
    kind: str
    principal: str
    product: str | None
    input_digest: str
    allowed: bool
    result: dict[str, Any]
    revision: str


class DecisionList(BaseModel):
    decisions: list[Decision]


@router.get("/decisions", response_model=DecisionList)
def list_decisions(
    service: ServiceDep,
    caller: CallerDep,
    principal: Annotated[str | None, Query(max_length=256)] = None,
    product: Annotated[str | None, Query(max_length=256)] = None,
    allowed: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DecisionList:
    """Newest first. The guild sees every decision; anyone else only their own, without the
    names of the columns hidden from it in the products a decision is about (as the console)."""
    if GUILD_GROUP not in caller.groups:
        if principal is not None and principal != caller.id:
            raise AccessDenied("only the guild may read other principals' decisions")
        principal = caller.id
    if kind is not None and kind not in DECISION_KINDS:
        raise InputError(f"unknown kind {kind!r}; use one of: {', '.join(DECISION_KINDS)}")
    records = service.decisions(
        DecisionFilter(
            principal=principal,
            product=product,
            allowed=_boolean("allowed", allowed),
            kind=kind,
            since=_epoch(since),
            until=_epoch(until),
            limit=limit,
        )
    )
    return DecisionList(
        decisions=[
            Decision(
                id=r.id,
                time=dt.datetime.fromtimestamp(r.time, dt.UTC),
                kind=r.kind,
                principal=r.principal,
                product=r.product,
                input_digest=r.input_digest,
                allowed=r.allowed,
                result=_shown_result(service.state, caller, r),
                revision=r.revision,
            )
            for r in records
        ]
    )


def _boolean(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() in {"true", "1"}:
        return True
    if value.lower() in {"false", "0"}:
        return False
    raise InputError(f"unknown {name} value {value!r}; use true or false")


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _shown_result(state: ServingState, viewer: Principal, record: Any) -> dict[str, Any]:
    """A decision's result as shown to ``viewer``: the columns hidden from it in the products the
    decision is about taken out of its text (the guild's is unchanged; see the console's
    ``pages_graph._redacted``)."""
    result: dict[str, Any] = record.result
    if sees_everything(viewer):
        return result
    products = {record.product} if record.product else set()
    for table in result.get("tables", []) or []:
        port = state.gateway.resolve_port(tuple(str(table).lower().split(".")))
        if port is not None:
            products.add(port.product)
    names = hidden_names(state, viewer, products)
    if not names:
        return result
    shown: dict[str, Any] = redact_value(result, names)
    return shown
