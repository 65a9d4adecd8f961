"""Policy lifecycle: revisions, staging a change (compile, test, impact), activate, roll back.

``GET /v1/policies`` and ``GET /v1/policies/{id}`` also speak OPA's Policy API for OPA's clients:
``result`` lists the active revision's modules as ``{id, raw, ast}`` (``ast``: the outline of
``core/rego_outline.py``); meshgov's revision list stays beside it (``active``, ``revisions``),
keys that OPA's clients ignore.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from meshgov.api.deps import CallerDep, ServiceDep
from meshgov.api.routes._body import text_body, text_request_body
from meshgov.api.security import require_guild
from meshgov.authz import visible_report
from meshgov.core.rego_outline import rego_outline
from meshgov.errors import NotFound
from meshgov.service import Service
from meshgov.store.base import PolicyAuditEvent, PolicyRevision

router = APIRouter(prefix="/v1/policies", tags=["policies"])


class RevisionSummary(BaseModel):
    id: str
    author: str
    created_at: dt.datetime
    status: str
    activatable: bool
    active: bool
    modules: int


class RevisionReport(RevisionSummary):
    report: dict[str, Any]


class AuditEvent(BaseModel):
    """Who staged, activated or rolled back to a revision, and when."""

    at: dt.datetime
    actor: str
    action: str  # staged | activated | rolled_back
    revision: str
    previous: str | None  # the revision active just before (activations and rollbacks)


class AuditTrail(BaseModel):
    events: list[AuditEvent]


class RevisionDetail(RevisionReport):
    files: dict[str, str]
    data: dict[str, Any]
    audit: list[AuditEvent]


class PolicyModule(BaseModel):
    """A module in the shape of OPA's Policy API (``PolicyV1``)."""

    id: str
    raw: str
    ast: dict[str, Any]


class RevisionList(BaseModel):
    result: list[PolicyModule]
    active: str | None
    revisions: list[RevisionSummary]


class PolicyDocument(BaseModel):
    result: PolicyModule


class ChangeRequest(BaseModel):
    """Several files changed at once (``null`` removes one), on top of ``base`` or the active."""

    files: Annotated[dict[str, str | None], Field(min_length=1, max_length=200)]
    base: Annotated[str | None, Field(max_length=64)] = None


class ActivateRequest(BaseModel):
    revision: Annotated[str, Field(min_length=1, max_length=64)]


class ActivationResponse(BaseModel):
    active: str
    previous: str | None


def _summary(revision: PolicyRevision, active: str | None) -> dict[str, Any]:
    return {
        "id": revision.id,
        "author": revision.author,
        "created_at": dt.datetime.fromtimestamp(revision.created_at, dt.UTC),
        "status": revision.status,
        "activatable": revision.activatable,
        "active": revision.id == active,
        "modules": len(revision.modules),
    }


def _active_modules(service: Service) -> dict[str, str]:
    active = service.active_revision_id()
    revision = service.store.revision(active) if active is not None else None
    return dict(revision.modules) if revision is not None else {}


def _module(path: str, text: str) -> PolicyModule:
    return PolicyModule(id=path, raw=text, ast=rego_outline(text))


def _event(event: PolicyAuditEvent) -> AuditEvent:
    return AuditEvent(
        at=dt.datetime.fromtimestamp(event.at, dt.UTC),
        actor=event.actor,
        action=event.action,
        revision=event.revision,
        previous=event.previous,
    )


@router.get("/audit", response_model=AuditTrail)
def audit_trail(
    service: ServiceDep,
    _caller: CallerDep,
    revision: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditTrail:
    """The policy audit trail, oldest first: every staging, activation and rollback."""
    return AuditTrail(events=[_event(e) for e in service.store.audit(revision)])


@router.get("", response_model=RevisionList)
def list_revisions(service: ServiceDep, _caller: CallerDep) -> RevisionList:
    """The active revision's modules (OPA's ``result``) and meshgov's revisions."""
    active = service.active_revision_id()
    modules = _active_modules(service)
    return RevisionList(
        result=[_module(path, modules[path]) for path in sorted(modules)],
        active=active,
        revisions=[RevisionSummary(**_summary(r, active)) for r in service.store.revisions()],
    )


@router.get("/revisions/{revision}", response_model=RevisionDetail)
def get_revision(
    revision: Annotated[str, Path(max_length=64)], service: ServiceDep, caller: CallerDep
) -> RevisionDetail:
    """A revision with its files, data and its compile/test/impact report (the access impact on
    other principals for the guild only)."""
    found = service.store.revision(revision)
    if found is None:
        raise NotFound(f"no policy revision {revision}")
    return RevisionDetail(
        **_summary(found, service.active_revision_id()),
        report=visible_report(found.report, caller),
        files=found.modules,
        data=found.data,
        audit=[_event(e) for e in service.store.audit(found.id)],
    )


@router.get("/{policy_id:path}", response_model=RevisionList | PolicyDocument)
def get_policy(policy_id: str, service: ServiceDep, caller: CallerDep) -> Any:
    """One module of the active revision (OPA's ``GET /v1/policies/{id}``); ``/v1/policies/``
    is the list, as OPA's clients call it."""
    if not policy_id.strip("/"):
        return list_revisions(service, caller)
    modules = _active_modules(service)
    text = modules.get(policy_id)
    if text is None:
        raise NotFound(f"no policy module {policy_id!r} in the active revision")
    return PolicyDocument(result=_module(policy_id, text))


@router.post("/activate", response_model=ActivationResponse)
async def activate(
    request: ActivateRequest, service: ServiceDep, caller: CallerDep
) -> ActivationResponse:
    """Make a valid revision active, atomically; in-flight requests finish on theirs."""
    require_guild(caller)
    previous = service.active_revision_id()
    revision = await run_in_threadpool(service.activate, caller.id, request.revision)
    return ActivationResponse(active=revision.id, previous=previous)


@router.post("/rollback", response_model=ActivationResponse)
async def rollback(service: ServiceDep, caller: CallerDep) -> ActivationResponse:
    """Re-activate the revision that was active before the current one."""
    require_guild(caller)
    previous = service.active_revision_id()
    revision = await run_in_threadpool(service.rollback, caller.id)
    return ActivationResponse(active=revision.id, previous=previous)


@router.post("/changes", response_model=RevisionReport)
async def stage_changes(
    request: ChangeRequest, service: ServiceDep, caller: CallerDep
) -> RevisionReport:
    """Stage a change of several files (a rule and its test) as one revision, with the same
    compile, test, lint and impact report as a one-file change.
    """
    require_guild(caller)
    revision = await run_in_threadpool(
        lambda: service.stage_files(caller.id, request.files, base=request.base)
    )
    return RevisionReport(
        **_summary(revision, service.active_revision_id()), report=revision.report
    )


@router.put(
    "/{path:path}",
    response_model=RevisionReport,
    openapi_extra=text_request_body("content", "The new content of the Rego module or data file."),
)
async def stage_change(
    path: str,
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    base: Annotated[str | None, Query(max_length=64)] = None,
) -> RevisionReport:
    """Stage a change to one file of revision ``base`` (default: the active one): compile, run
    every Rego test, dry-run the gate over every registered product. The new revision is stored
    (never activated here); ``status`` says whether it may be activated, ``report.impact`` which
    findings would change.
    """
    require_guild(caller)
    content = await text_body(request, json_field="content")
    revision = await run_in_threadpool(
        lambda: service.stage_file(caller.id, path, content, base=base)
    )
    return RevisionReport(
        **_summary(revision, service.active_revision_id()), report=revision.report
    )


@router.delete("/{path:path}", response_model=RevisionReport)
async def stage_removal(
    path: str,
    service: ServiceDep,
    caller: CallerDep,
    base: Annotated[str | None, Query(max_length=64)] = None,
) -> RevisionReport:
    """Stage the removal of one file of revision ``base`` or the active one (same checks)."""
    require_guild(caller)
    revision = await run_in_threadpool(lambda: service.stage_file(caller.id, path, None, base=base))
    return RevisionReport(
        **_summary(revision, service.active_revision_id()), report=revision.report
    )
