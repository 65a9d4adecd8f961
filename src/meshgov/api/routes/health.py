"""``/health`` and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from meshgov import __version__
from meshgov.api.deps import ServiceDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str  # ok | degraded
    version: str
    revision: str | None
    products: int
    store: str
    policy_engine: str  # the Rego engine and its version ("regorus 0.13.0")


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(service: ServiceDep) -> JSONResponse:
    """Liveness and readiness: 503 when no policy revision is active (every decision denies).

    On the event loop (it only reads the serving state): it answers while workers are busy."""
    ready = service.ready
    state = service.current
    body = Health(
        status="ok" if ready else "degraded",
        version=__version__,
        revision=state.revision if state else None,
        products=len(state.products) if state else 0,
        store=service.store.url.split("://", 1)[0],
        policy_engine=service.engine_label,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(service: ServiceDep) -> PlainTextResponse:
    """Prometheus text format (version 0.0.4), per worker process."""
    state = service.current
    stats = state.gateway.cache_stats() if state is not None else None
    return PlainTextResponse(
        service.metrics.render(stats), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
