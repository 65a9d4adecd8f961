"""What may I see? The ports a principal may read for a purpose, as the gateway enforces them.

The answer is the gateway's own: for every table port, the access decision and then the rewrite
of ``SELECT * FROM <table>`` (sqlglot-built), so the masks, hidden columns and the row filter bound
to the principal are exactly what a query would get. ``meshgov access`` and ``GET /v1/access``
show it; a port the principal may not read is counted, never named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlglot import exp

from meshgov.core.principal import Principal
from meshgov.core.sql.model import Mask, PortRef

if TYPE_CHECKING:
    from meshgov.gateway import Gateway


class ReadableColumn(BaseModel):
    name: str
    type: str
    mask: str | None = None  # the mask kind applied (hash, redact, partial, null, year, expr)


class ReadablePort(BaseModel):
    product: str
    port: str
    version: str
    table: str
    columns: list[ReadableColumn]
    hidden_columns: list[str]
    row_filter: str | None  # the row filter bound to the principal (SQL), None: every row
    reasons: list[str]


class AccessOverview(BaseModel):
    """The ports ``principal`` may read for ``purpose``; ``denied``: how many it may not."""

    principal: str
    purpose: str | None
    policy_revision: str
    catalog_revision: str
    dialect: str
    ports: list[ReadablePort]
    denied: int
    # The registered purposes for which the principal may read at least one port.
    purposes: list[str]


def access_overview(
    gateway: Gateway,
    principal: Principal,
    purpose: str | None,
    ports: Sequence[PortRef] | None = None,
    *,
    with_purposes: bool = True,
) -> AccessOverview:
    """Every table port ``principal`` may read for ``purpose`` (default: the principal's own).

    ``ports``: only these (a page of the catalogue's ports, in order; default every table port,
    sorted): each costs one decision and, when readable, one rewrite, so a large catalogue is
    evaluated a page at a time. ``denied`` then counts the given ports only. ``with_purposes``:
    also list the purposes with any access (a decision per port and registered purpose).
    """
    from meshgov.gateway import catalog_ports

    purpose = purpose if purpose is not None else principal.purpose
    readable: list[ReadablePort] = []
    denied = 0
    if ports is None:
        ports = sorted(catalog_ports(gateway.catalog), key=lambda p: (p.product, p.port))
    for port in ports:
        if gateway.resolve_port(port.table) is None:
            denied += 1  # two ports claim the table: the gateway refuses it
            continue
        decision = gateway.decide(principal, purpose, port.product, port.port)
        if not decision.allow:
            denied += 1
            continue
        authorization = gateway.authorize(
            _select_all(port, gateway.default_dialect), principal, purpose
        )
        access = next((t for t in authorization.tables if t.port == port.port), None)
        if not authorization.allowed or access is None:
            denied += 1  # e.g. a row filter naming an attribute the principal lacks
            continue
        readable.append(
            ReadablePort(
                product=port.product,
                port=port.port,
                version=port.version,
                table=port.table_name,
                columns=[
                    ReadableColumn(
                        name=column.name,
                        type=str(column.type),
                        mask=access.masks[column.name].kind
                        if column.name in access.masks
                        else None,
                    )
                    for column in port.columns
                    if column.name not in access.hidden_columns
                ],
                hidden_columns=sorted(access.hidden_columns),
                row_filter=access.row_filter_sql,
                reasons=list(decision.reasons),
            )
        )
    return AccessOverview(
        principal=principal.id,
        purpose=purpose,
        policy_revision=gateway.policy.revision,
        catalog_revision=gateway.catalog.revision,
        dialect=gateway.default_dialect,
        ports=readable,
        denied=denied,
        purposes=granted_purposes(gateway, principal) if with_purposes else [],
    )


def granted_purposes(gateway: Gateway, principal: Principal) -> list[str]:
    """The registered purposes for which ``principal`` may read at least one port."""
    from meshgov.gateway import catalog_ports, registered_purposes

    ports = catalog_ports(gateway.catalog)
    return [
        purpose
        for purpose in sorted(registered_purposes(gateway.bundle))
        if any(gateway.decide(principal, purpose, p.product, p.port).allow for p in ports)
    ]


def _mask_kind(mask: Mask | None) -> str | None:
    return mask.kind if mask is not None else None


def _select_all(port: PortRef, dialect: str) -> str:
    parts = list(port.table)
    table = exp.table_(
        parts[-1],
        db=parts[-2] if len(parts) > 1 else None,
        catalog=parts[-3] if len(parts) > 2 else None,
        quoted=True,
    )
    return exp.select(exp.Star()).from_(table).sql(dialect=dialect)
