"""One ``meshgov serve`` process: the HTTP API, the web console (``/ui/``), and the PostgreSQL wire
protocol when configured.

The faces share one ``Service`` (serving state, caches, decision log, policy revision); this module
is where they are put together, so that no face imports another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshgov.api.app import create_app
from meshgov.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from meshgov.pgwire.server import PgListener
    from meshgov.service import Service
    from meshgov.tokens import TokenRegistry


def create_process_app(settings: Settings, *, bootstrap: bool = True) -> FastAPI:
    """The HTTP app with the console under ``/ui/``, and the wire listener in its lifespan when
    ``pg_port`` is set."""
    from meshgov.console import install_console

    if settings.pg_port is None:
        return install_console(create_app(settings, bootstrap=bootstrap))

    def make_listener(service: Service, tokens: TokenRegistry) -> PgListener:
        from meshgov.pgwire.server import PgListener, WireSettings
        from meshgov.pgwire.throttle import LoginLimits

        return PgListener(
            service,
            tokens,
            WireSettings(
                host=settings.pg_host,
                port=settings.pg_port or 0,
                tls_cert=settings.pg_tls_cert,
                tls_key=settings.pg_tls_key,
                max_connections=settings.pg_max_connections,
                max_connections_per_principal=settings.pg_max_connections_per_principal,
                idle_timeout_seconds=settings.pg_idle_timeout_seconds,
                catalogue_dsn=settings.wire_catalog_dsn(),
                catalogue_prefix=settings.pg_catalog_prefix,
                login_limits=LoginLimits(
                    max_failures=settings.pg_login_max_failures,
                    max_failures_per_address=settings.pg_login_max_failures_per_address,
                    window_seconds=settings.pg_login_window_seconds,
                    delay_seconds=settings.pg_login_delay_seconds,
                    max_delay_seconds=settings.pg_login_max_delay_seconds,
                    max_tracked=settings.pg_login_tracked,
                ),
            ),
        )

    return install_console(create_app(settings, bootstrap=bootstrap, listeners=[make_listener]))


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` workers: settings from ``MESHGOV_*``; no re-seeding.

    ``meshgov serve`` seeds the store once before starting workers, so workers only load state.
    """
    return create_process_app(Settings(), bootstrap=False)
