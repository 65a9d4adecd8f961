"""The read-time SQL rewriter: one sqlglot pass per module, chained by ``rewrite.rewrite``.

Pure: no I/O. Callers supply ``resolve_port`` (physical name → port) and ``decide`` (port → access
decision); see ``meshgov.gateway`` for the facade that wires them to the catalogue and the policy.
"""

from meshgov.core.sql.model import (
    AccessDecision,
    Decide,
    Mask,
    PortColumn,
    PortRef,
    ResolvePort,
    RewrittenQuery,
    TableAccess,
    ports_of,
)
from meshgov.core.sql.rewrite import rewrite

__all__ = [
    "AccessDecision",
    "Decide",
    "Mask",
    "PortColumn",
    "PortRef",
    "ResolvePort",
    "RewrittenQuery",
    "TableAccess",
    "ports_of",
    "rewrite",
]
