"""What the console's graph page shows: the graph questions' answers (without the columns hidden
from the viewer), the whole-mesh picture's graph, and the re-identification risk answer computed
in the background once per serving state (no request, no HTML here)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from meshgov.console import drawing, visibility
from meshgov.core.collection import gc_paused
from meshgov.core.graph.questions import plain as plain
from meshgov.core.manifest import Manifest
from meshgov.core.principal import Principal
from meshgov.errors import InputError, NotFound
from meshgov.serving.state import ServingState

_GRAPH_CACHE = "graph"  # the same key the HTTP graph endpoints cache the graph under
_MEMO_SIZE = 256


def graph_of(state: ServingState) -> Any:
    """The entity graph of the serving state, built once per state."""
    graph = state.cache.get(_GRAPH_CACHE)
    if graph is None:
        from meshgov.core.graph import build_graph

        registry = state.bundle.data.get("registry", {})
        entities = registry.get("entities") if isinstance(registry, dict) else None
        graph = build_graph(list(state.catalog.manifests.values()), entities)
        state.cache[_GRAPH_CACHE] = graph
    return graph


@gc_paused  # the answers allocate many small objects while the large graph is alive
def graph_answer(
    state: ServingState,
    prefix: str,
    question: str,
    left: str,
    right: str,
    target: str,
    viewer: Principal,
) -> dict[str, Any]:
    """The answer of one ``meshgov graph`` question: its plain data (without the columns hidden
    from ``viewer``, see ``visibility``) and its drawing."""
    from meshgov.console import visibility
    from meshgov.core import graph as questions

    graph = graph_of(state)

    def shown(data: Any) -> Any:
        return visibility.filter_graph_answer(state, viewer, question, data)

    if question == "paths":
        _require(left, "the first product")
        _require(right, "the second product")
        paths = shown(
            [
                {**plain(p), "hops": p.hops}
                for p in questions.join_paths(graph, left, right, max_hops=3, limit=10)
            ]
        )
        return {"data": paths, "drawing": drawing.paths_drawing(prefix, left, right, paths)}
    if question == "impact":
        _require(target, "the target")
        product, _, rest = target.strip().partition(":")
        port, _, column = rest.partition(":")
        if column and not visibility.visible_column(state, viewer, product, port, column):
            # The same answer as for a column that does not exist: no oracle.
            raise NotFound(f"port {product}:{port} has no column '{column}'")
        answer = shown(plain(questions.impact(graph, target)))
        return {"data": answer, "drawing": drawing.impact_drawing(prefix, answer)}
    if question == "pii":
        flows = shown([plain(flow) for flow in questions.pii_flows(graph)])
        return {"data": flows, "drawing": drawing.pii_drawing(prefix, flows)}
    if question in ("upstream", "downstream"):
        _require(target, "the product")
        answer = plain(questions.lineage(graph, target, questions.Direction(question)))
        return {"data": answer, "drawing": drawing.lineage_drawing(prefix, answer)}
    raise InputError(f"unknown graph question {question!r}")


def picture_graph(state: ServingState, viewer: Principal) -> Any:
    """The graph the whole-mesh picture draws for ``viewer``: the guild's is the mesh's; anyone
    else's is built from the manifests with the columns hidden from it left out (the picture
    lists columns only on small catalogues, so this is built only there)."""
    from meshgov.console import visibility
    from meshgov.core.graph import build_graph
    from meshgov.graph_export import HTML_COLUMNS_UP_TO

    manifests = state.catalog.manifests
    if visibility.sees_everything(viewer) or len(manifests) > HTML_COLUMNS_UP_TO:
        return graph_of(state)
    shown = []
    for manifest in manifests.values():
        hidden = visibility.hidden_in(
            manifest, visibility.port_views(state, viewer, None, manifest)
        )
        if hidden:
            spec = manifest.spec.model_copy(
                update={
                    "output_ports": [
                        port.model_copy(
                            update={"columns": [c for c in port.columns if c.name not in hidden]}
                        )
                        for port in manifest.spec.output_ports
                    ]
                }
            )
            manifest = manifest.model_copy(update={"spec": spec})
        shown.append(manifest)
    registry = state.bundle.data.get("registry", {})
    entities = registry.get("entities") if isinstance(registry, dict) else None
    return build_graph(shown, entities)


def _require(value: str, what: str) -> None:
    if not value.strip():
        raise InputError(f"name {what} (domain/name)")


def risk_answer(
    state: ServingState,
    prefix: str,
    principal: Principal,
    purpose: str | None,
    progress: RiskProgress | None = None,
) -> dict[str, Any]:
    """Re-identification risk of ``principal`` under the access policy of the serving state:
    quasi-identifiers it can combine by joining products on shared entity ids. ``progress``
    counts the ports decided (of every output port of the catalogue)."""
    from meshgov.core.graph import (
        policy_access,
        principal_view,
        quasi_identifier_policy,
        reidentification_risk,
    )

    registry = state.bundle.data.get("registry", {})
    config = registry.get("quasi_identifiers") if isinstance(registry, dict) else None
    if config is None:
        raise InputError(
            "the active policies have no quasi-identifier list (data/quasi_identifiers.yaml)"
        )
    view = principal_view(
        {
            "id": principal.id,
            "groups": list(principal.groups),
            "domain": principal.domain,
            "attributes": dict(principal.attributes),
        },
        purpose,
    )
    gateway = state.gateway
    decided = policy_access(
        lambda p, product, port: gateway.decide(principal, p, product, port), purpose
    )

    def access(manifest: Manifest, port: str) -> Any:
        if progress is not None:
            progress.done += 1
        return decided(manifest, port)

    report = plain(
        reidentification_risk(
            graph_of(state), view, quasi_identifier_policy(config), access, "policy"
        )
    )
    return {"data": report, "drawing": drawing.risk_drawing(prefix, report)}


@dataclass
class RiskProgress:
    """How far a risk answer computed in the background is: ports decided of ``total``."""

    total: int
    done: int = 0


@dataclass
class RiskJob:
    progress: RiskProgress
    future: Future[dict[str, Any]]


_RISK_JOBS = "console_risk_jobs"
_RISK_LOCK = threading.Lock()


def risk_job(
    state: ServingState, prefix: str, principal: Principal, purpose: str | None
) -> RiskJob:
    """The risk answer of ``(principal, purpose)`` on ``state``, computed once per serving state
    (a policy activation or a publication makes a new state) in the background: the page waits
    for it a moment and otherwise shows its progress."""
    key = (principal.cache_key(), purpose or "")
    with _RISK_LOCK:
        jobs: dict[tuple[str, str], RiskJob] = state.cache.setdefault(_RISK_JOBS, {})
        job = jobs.get(key)
        if job is not None and not (job.future.done() and job.future.exception() is not None):
            return job  # a failed answer is tried again on the next load
        if len(jobs) >= _MEMO_SIZE:
            for stale in [k for k, j in jobs.items() if j.future.done()]:
                del jobs[stale]
        total = sum(len(m.spec.output_ports) for m in state.catalog.manifests.values())
        progress = RiskProgress(total)
        future = visibility.BACKGROUND.submit(
            risk_answer, state, prefix, principal, purpose, progress
        )
        job = jobs[key] = RiskJob(progress, future)
        return job
