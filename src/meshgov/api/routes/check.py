"""``POST /v1/check``: the release gate over HTTP, without publishing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from meshgov.api.deps import CallerDep, CpuDep, ServiceDep
from meshgov.limits import check_size
from meshgov.service import Service, gate_passes
from meshgov.visibility import findings_scope, redact_findings

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


def check_manifest_size(service: Service, text: str, what: str = "the manifest") -> None:
    check_size(
        len(text.encode()), service.settings.max_manifest_bytes, what, "MESHGOV_MAX_MANIFEST_BYTES"
    )


@router.post(
    "/check",
    response_model=CheckResponse,
    responses={
        413: {"description": "a manifest is larger than MESHGOV_MAX_MANIFEST_BYTES"},
        422: {"description": "the request exceeded its time budget (time_budget_exceeded)"},
    },
)
async def check(
    request: CheckRequest, service: ServiceDep, caller: CallerDep, pool: CpuDep
) -> CheckResponse:
    """Findings of the active policies for one manifest (as ``meshgov check`` would report);
    a column of another product hidden from the caller is not named in them."""
    check_manifest_size(service, request.manifest)
    if request.previous is not None:
        check_manifest_size(service, request.previous, "the previous manifest")
    findings, decision_id, revision = await pool.run(
        service.check, caller, request.manifest, request.previous
    )
    shown = redact_findings(
        service.state, caller, findings, *findings_scope(request.manifest, None, request.previous)
    )
    return CheckResponse(
        passed=gate_passes(findings), revision=revision, decision_id=decision_id, findings=shown
    )
