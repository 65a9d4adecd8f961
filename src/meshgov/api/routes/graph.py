"""The entity linkage graph over HTTP, mirroring ``meshgov graph`` on the registered products.

Answers leave out the columns hidden from the caller, as the console's graph does (the guild's
and, for exports, a product's own domain's are whole; see ``meshgov.visibility``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from meshgov.api.deps import CallerDep, ServiceDep
from meshgov.core.graph.questions import plain as plain
from meshgov.core.principal import Principal
from meshgov.errors import NotFound
from meshgov.service import Service
from meshgov.visibility import filter_entities, filter_graph_answer, graph_for, visible_column

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


def _viewer_graph(service: Service, caller: Principal) -> Any:
    return graph_for(service.state, caller, _graph(service))


@router.get("/entities")
async def entities(service: ServiceDep, caller: CallerDep) -> JSONResponse:
    """Each entity, its owner, and every product/port/column that carries it."""
    from meshgov.core.graph import entities as graph_entities

    def answer() -> Any:
        result = graph_entities(_graph(service))
        data = [{**plain(e), "products": list(e.products)} for e in result]
        return filter_entities(service.state, caller, data)

    return JSONResponse(await run_in_threadpool(answer))


@router.get("/paths")
async def paths(
    service: ServiceDep,
    caller: CallerDep,
    left: ProductQuery,
    right: ProductQuery,
    max_hops: Annotated[int, Query(ge=1, le=6)] = 3,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JSONResponse:
    """The ways to join two products through shared entity ids, shortest first."""
    from meshgov.core.graph import join_paths

    def answer() -> Any:
        result = join_paths(_graph(service), left, right, max_hops=max_hops, limit=limit)
        data = [{**plain(p), "hops": p.hops} for p in result]
        return filter_graph_answer(service.state, caller, "paths", data)

    return JSONResponse(await run_in_threadpool(answer))


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
    caller: CallerDep,
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

    def answer() -> Any:
        product, _, rest = target.partition(":")
        port, _, column = rest.partition(":")
        if column and not visible_column(service.state, caller, product, port, column):
            # The same answer as for a column that does not exist: no oracle.
            raise NotFound(f"port {product}:{port} has no column '{column}'")
        data = plain(graph_impact(_graph(service), target))
        return filter_graph_answer(service.state, caller, "impact", data)

    return JSONResponse(await run_in_threadpool(answer))


@router.get("/pii")
async def pii(service: ServiceDep, caller: CallerDep) -> JSONResponse:
    """Products that declare no PII but read PII upstream."""
    from meshgov.core.graph import pii_flows

    def answer() -> Any:
        data = plain(pii_flows(_graph(service)))
        return filter_graph_answer(service.state, caller, "pii", data)

    return JSONResponse(await run_in_threadpool(answer))


@router.get("/export", response_model=None)
async def export(
    service: ServiceDep,
    caller: CallerDep,
    format: Literal["json", "graphml", "html"] = "json",
) -> Response:
    """The whole graph as node-link JSON, GraphML or one self-contained HTML page (built, for a
    caller who may not see every column, from the manifests as it may see them)."""
    from meshgov import graph_export

    graph = await run_in_threadpool(_viewer_graph, service, caller)
    if format == "json":
        return JSONResponse(graph_export.to_json(graph))
    if format == "graphml":
        return Response(graph_export.to_graphml(graph), media_type="application/graphml+xml")
    return HTMLResponse(graph_export.to_html(graph, title="meshgov"))
