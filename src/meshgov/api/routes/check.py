"""``POST /v1/check``: the release gate over HTTP, without publishing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from meshgov.api.deps import CallerDep, ServiceDep
from meshgov.service import gate_passes

router = APIRouter(prefix="/v1", tags=["check"])


class CheckRequest(BaseModel):
    manifest: Annotated[str, Field(min_length=1, description="meshgov/v1 or ODCS v3 YAML/JSON")]
    previous: Annotated[
        str | None,
        Field(description="the previous version; default: the registered latest version"),
    ] = None


class CheckResponse(BaseModel):
    passed: bool
    revision: str
    decision_id: str
    findings: list[dict[str, Any]]


@router.post("/check", response_model=CheckResponse)
async def check(request: CheckRequest, service: ServiceDep, caller: CallerDep) -> CheckResponse:
    """Findings of the active policies for one manifest (as ``meshgov check`` would report)."""
    findings, decision_id, revision = await run_in_threadpool(
        service.check, caller, request.manifest, request.previous
    )
    return CheckResponse(
        passed=gate_passes(findings), revision=revision, decision_id=decision_id, findings=findings
    )
