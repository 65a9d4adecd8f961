"""The console's side of column visibility: the rule itself lives in ``meshgov.visibility``
(shared with the HTTP API); here the console's background worker that decides, ahead of a
search, which columns of every product a viewer may see.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from meshgov.core.principal import Principal
from meshgov.serving.state import ServingState
from meshgov.visibility import (
    HIDDEN,
    filter_graph_answer,
    hidden_in,
    hidden_names,
    known_hidden,
    mentions,
    port_views,
    product_columns,
    redact,
    redact_checks,
    redact_value,
    row_filter_shown,
    sees_everything,
    visible_column,
)

__all__ = [
    "BACKGROUND",
    "HIDDEN",
    "check_every_product",
    "filter_graph_answer",
    "hidden_in",
    "hidden_names",
    "known_hidden",
    "mentions",
    "port_views",
    "product_columns",
    "redact",
    "redact_checks",
    "redact_value",
    "row_filter_shown",
    "sees_everything",
    "visible_column",
]

_JOBS_LOCK = threading.Lock()
# The console's background work (risk answers, column checks), one at a time, on one thread that
# keeps its policy engine.
BACKGROUND = ThreadPoolExecutor(1, thread_name_prefix="meshgov-console-background")


def check_every_product(state: ServingState, principal: Principal) -> None:
    """Decide, in the background, which columns of every product ``principal`` may see (for the
    catalogue's search by column name), once per serving state and principal."""
    with _JOBS_LOCK:
        jobs: dict[str, Future[None]] = state.cache.setdefault("console_column_jobs", {})
        key = principal.cache_key()
        if key in jobs:
            return

        def run() -> None:
            for manifest in list(state.catalog.manifests.values()):
                port_views(state, principal, None, manifest)

        jobs[key] = BACKGROUND.submit(run)
