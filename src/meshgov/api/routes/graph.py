"""The entity linkage graph over HTTP, mirroring ``meshgov graph`` on the registered products."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from meshgov.api.deps import CallerDep, ServiceDep
from meshgov.core.graph.questions import plain as plain
from meshgov.service import Service

router = APIRouter(prefix="/v1/graph", tags=["graph"])

ProductQuery = Annotated[
    str, Query(pattern=r"^[a-z][a-z0-9_-]*/[a-z][a-z0-9_-]*$", description="domain/name")
]


def _graph(service: Service) -> Any:
    """The graph of the serving state, built once per state."""
    state = service.state
    graph = state.cache.get("graph")
    if graph is None:
        from meshgov.core.graph import build_graph

        registry = state.bundle.data.get("registry", {})
        entities = registry.get("entities") if isinstance(registry, dict) else None
        graph = build_graph(list(state.catalog.manifests.values()), entities)
        state.cache["graph"] = graph
    return graph


@router.get("/entities")
async def entities(service: ServiceDep, _caller: CallerDep) -> JSONResponse:
    """Each entity, its owner, and every product/port/column that carries it."""
    from meshgov.core.graph import entities as graph_entities

    result = graph_entities(await run_in_threadpool(_graph, service))
    return JSONResponse([{**plain(e), "products": list(e.products)} for e in result])


@router.get("/paths")
async def paths(
    service: ServiceDep,
    _caller: CallerDep,
    left: ProductQuery,
    right: ProductQuery,
    max_hops: Annotated[int, Query(ge=1, le=6)] = 3,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JSONResponse:
    """The ways to join two products through shared entity ids, shortest first."""
    from meshgov.core.graph import join_paths

    graph = await run_in_threadpool(_graph, service)
    result = join_paths(graph, left, right, max_hops=max_hops, limit=limit)
    return JSONResponse([{**plain(p), "hops": p.hops} for p in result])


@router.get("/lineage")
async def lineage(
    service: ServiceDep,
    _caller: CallerDep,
    product: ProductQuery,
    direction: Literal["upstream", "downstream"] = "upstream",
) -> JSONResponse:
    """Products upstream (default) or downstream of a product."""
    from meshgov.core.graph import Direction
    from meshgov.core.graph import lineage as graph_lineage

    graph = await run_in_threadpool(_graph, service)
    return JSONResponse(plain(graph_lineage(graph, product, Direction(direction))))


@router.get("/impact")
async def impact(
    service: ServiceDep,
    _caller: CallerDep,
    target: Annotated[
        str,
        Query(
            pattern=r"^[a-z][a-z0-9_-]*/[a-z][a-z0-9_-]*(:[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)?)?$",
            description="domain/name[:port[:column]]",
        ),
    ],
) -> JSONResponse:
    """What may break downstream if the target changes, and which owners to notify."""
    from meshgov.core.graph import impact as graph_impact

    graph = await run_in_threadpool(_graph, service)
    return JSONResponse(plain(graph_impact(graph, target)))


@router.get("/pii")
async def pii(service: ServiceDep, _caller: CallerDep) -> JSONResponse:
    """Products that declare no PII but read PII upstream."""
    from meshgov.core.graph import pii_flows

    graph = await run_in_threadpool(_graph, service)
    return JSONResponse(plain(pii_flows(graph)))


@router.get("/export", response_model=None)
async def export(
    service: ServiceDep,
    _caller: CallerDep,
    format: Literal["json", "graphml", "html"] = "json",
) -> Response:
    """The whole graph as node-link JSON, GraphML or one self-contained HTML page."""
    from meshgov import graph_export

    graph = await run_in_threadpool(_graph, service)
    if format == "json":
        return JSONResponse(graph_export.to_json(graph))
    if format == "graphml":
        return Response(graph_export.to_graphml(graph), media_type="application/graphml+xml")
    return HTMLResponse(graph_export.to_html(graph, title="meshgov"))
