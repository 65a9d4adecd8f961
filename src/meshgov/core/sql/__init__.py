"""The read-time SQL rewriter: one sqlglot pass per module, chained by ``rewrite.rewrite``.

Pure: no I/O. Callers supply ``resolve_port`` (physical name → port) and ``decide`` (port → access
decision); see ``meshgov.gateway`` for the facade that wires them to the catalogue and the policy.
"""

# Nothing is imported here: importing one pass (the release gate's row-filter check) must not
# load the whole rewriter. Import from the modules (``meshgov.core.sql.rewrite.rewrite``, …).
