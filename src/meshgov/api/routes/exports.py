"""``GET /v1/products/{domain}/{name}/ports/{port}/export``: a governed export, streamed.

The caller's token is the principal; the decision is the gateway's (as for SQL) and is logged
(kind ``export``) before the first byte. The body is produced batch by batch from the snapshot.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from meshgov.api.deps import service_and_caller
from meshgov.api.streaming import governed_runner

router = APIRouter(prefix="/v1/products", tags=["exports"])

NamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]*$", max_length=128)]
_SUFFIX = {"parquet": "parquet", "csv": "csv", "arrow": "arrows"}


@router.get(
    "/{domain}/{name}/ports/{port}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/vnd.apache.parquet": {},
                "text/csv": {},
                "application/vnd.apache.arrow.stream": {},
            },
            "description": "the rows and values the caller may see; decision in the headers",
        },
        400: {"description": "unknown format, or the port has no snapshot"},
        403: {"description": "denied: the body says why"},
        404: {"description": "no such product or port"},
    },
)
async def export_port(
    domain: NamePath,
    name: NamePath,
    port: NamePath,
    request: Request,
    format: Annotated[str, Query(max_length=16, description="parquet | csv | arrow")] = "parquet",
    purpose: Annotated[str | None, Query(max_length=128)] = None,
) -> StreamingResponse:
    """The port's snapshot as the caller may see it (row filter, masks, hidden columns absent).

    Parquet carries the decision id, policy revision and product version in its key-value
    metadata, Arrow IPC in its schema metadata; every format has them in ``X-Meshgov-*`` headers.
    """
    from meshgov.errors import NotFound
    from meshgov.exports import MEDIA_TYPES, export_chunks, parse_export_format, plan_export

    service, caller = service_and_caller(request)
    fmt = parse_export_format(format)
    state = service.state
    product = f"{domain}/{name}"
    manifest = state.catalog.manifests.get(product)
    if manifest is None:
        raise NotFound(f"unknown product {product!r}")
    if not any(p.name == port for p in manifest.spec.output_ports):
        raise NotFound(f"product {product} has no output port {port!r}")
    decision = state.gateway.decide(caller, purpose, product, port)

    def log(allowed: bool, reason: str | None) -> str:
        return service.record(
            kind="export",
            principal=caller.id,
            product=product,
            document=None,
            allowed=allowed,
            result={"port": port, "format": fmt.value, "purpose": purpose, "reason": reason},
            revision=state.revision,
        )

    reason = None if decision.allow else "; ".join(decision.reasons) or "access denied"
    decision_id = log(decision.allow, reason)
    # Denied, engine failure, no snapshot: 403 / 503 / 400 before the first byte.
    plan = await run_in_threadpool(
        plan_export, state.gateway, caller, purpose, product, port, decision_id
    )
    runner = governed_runner(request)
    headers = {
        f"X-Meshgov-{k.split('.', 1)[1].replace('_', '-').title()}": v
        for k, v in plan.metadata().items()
    }
    filename = f"{name}-{port}.{_SUFFIX[fmt.value]}"
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return StreamingResponse(
        export_chunks(plan, runner, fmt), media_type=MEDIA_TYPES[fmt], headers=headers
    )
