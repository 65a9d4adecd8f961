"""The decision log side of the service: every decision recorded, off the request path."""

from __future__ import annotations

from typing import Any

from meshgov.errors import BackendUnavailable
from meshgov.gateway import Authorization
from meshgov.serving.state import ServiceCore, ServingState
from meshgov.store.base import DecisionFilter, DecisionKind, DecisionRecord
from meshgov.store.decision_log import input_digest


class DecisionLogging(ServiceCore):
    """Records decisions (queued, written in batches) and reads them back."""

    def record(
        self,
        *,
        kind: DecisionKind,
        principal: str,
        product: str | None,
        document: Any,
        allowed: bool,
        result: dict[str, Any],
        revision: str,
        digest: str | None = None,
    ) -> str:
        self.metrics.observe_decision(kind, allowed)
        if self._decision_log is None:
            raise BackendUnavailable("the decision log is not running")
        return self._decision_log.record(
            kind=kind,
            principal=principal,
            product=product,
            document=document,
            allowed=allowed,
            result=result,
            revision=revision,
            digest=digest,
        )

    def flush_decisions(self, timeout: float = 10.0) -> bool:
        return self._decision_log.flush(timeout) if self._decision_log else True

    def decisions(self, query: DecisionFilter) -> list[DecisionRecord]:
        self.flush_decisions(2.0)
        return self.store.decisions(query)


# Per serving state: what the decision log keeps of an authorization (by the identity of the
# gateway's cached ``Authorization``, held by the entry so the id cannot be reused) and the digests
# of request inputs. Bounded: cleared when full, the next requests fill it again.
_OUTCOME_CACHE = "decision_outcomes"
_DIGEST_CACHE = "request_digests"
_REQUEST_CACHE_SIZE = 8192


def logged_outcome(
    state: ServingState, authorization: Authorization
) -> tuple[str | None, dict[str, Any]]:
    """(product, result) of the decision record of ``authorization`` (cached per state)."""
    cache: dict[int, tuple[Authorization, str | None, dict[str, Any]]] = state.cache.setdefault(
        _OUTCOME_CACHE, {}
    )
    entry = cache.get(id(authorization))
    if entry is not None and entry[0] is authorization:
        return entry[1], entry[2]
    ports = sorted({(t.product, t.port) for t in authorization.tables})
    if authorization.denied_port is not None:
        ports = [authorization.denied_port]
    products = sorted({p for p, _ in ports})
    result = {
        "reason": authorization.reason,
        "code": authorization.code,
        "tables": [f"{p}:{port}" for p, port in ports],
        "products": products,
    }
    product = products[0] if len(products) == 1 else None
    if len(cache) >= _REQUEST_CACHE_SIZE:
        cache.clear()
    cache[id(authorization)] = (authorization, product, result)
    return product, result


def request_digest(
    state: ServingState,
    sql: str,
    purpose: str | None,
    read_dialect: str | None,
    write_dialect: str | None,
) -> str:
    """``input_digest`` of an authorize request's input (cached per state: same input, same
    digest)."""
    cache: dict[tuple[str, str | None, str | None, str | None], str] = state.cache.setdefault(
        _DIGEST_CACHE, {}
    )
    key = (sql, purpose, read_dialect, write_dialect)
    digest = cache.get(key)
    if digest is None:
        digest = input_digest(
            {"sql": sql, "purpose": purpose, "read": read_dialect, "write": write_dialect}
        )
        if len(cache) >= _REQUEST_CACHE_SIZE:
            cache.clear()
        cache[key] = digest
    return digest


def data_api_outcome(path: str, document: Any, value: Any) -> tuple[str | None, bool, list[str]]:
    """(product, allowed, ports) of a Data API decision, for the decision log.

    For ``meshgov.access`` (the access decision and its rules), the subject is the input's
    ``product``/``port`` and ``allowed`` the access outcome (``decision.allow``), not whether the
    evaluation succeeded; for any other path, a defined, non-false value.
    """
    product: str | None = None
    ports: list[str] = []
    if path.strip("/").startswith("meshgov/access") and isinstance(document, dict):
        raw_product, raw_port = document.get("product"), document.get("port")
        if isinstance(raw_product, str):
            product = raw_product
            if isinstance(raw_port, str):
                ports = [f"{raw_product}:{raw_port}"]
    if isinstance(value, dict) and "allow" in value:
        allowed = value["allow"] is True
    else:
        allowed = value is not None and value is not False
    return product, allowed, ports
