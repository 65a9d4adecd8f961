"""``GET /v1/access``: what the caller may read (ports, columns, masks, bound row filters)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from meshgov.access_overview import AccessOverview
from meshgov.api.deps import CallerDep, ServiceDep
from meshgov.visibility import redact_access

router = APIRouter(prefix="/v1", tags=["query"])


@router.get("/access", response_model=AccessOverview)
async def access(
    service: ServiceDep,
    caller: CallerDep,
    purpose: Annotated[str | None, Query(max_length=128)] = None,
) -> AccessOverview:
    """The ports the token's principal may read for ``purpose`` (default: the principal's own
    default purpose), with their visible columns, masks, hidden columns and the row filter bound
    to the principal: the same decisions and rewrites its queries get. Ports it may not read are
    counted (``denied``), never named. As in the console, the guild and a product's own domain
    see its hidden columns named; anyone else gets ``hidden_columns`` empty and reasons and row
    filters without their names (``meshgov.visibility``).
    """

    def shown() -> AccessOverview:
        overview = service.access_overview(caller, purpose)
        redacted: AccessOverview = redact_access(service.state, caller, overview)
        return redacted

    return await run_in_threadpool(shown)
