"""`meshgov serve`: the policy service (registry, query gateway, policies, OPA and Trino APIs)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from meshgov.cli._common import err_console, hash_key_of, reports_errors

DEV_TOKENS_FILE = Path("examples/tokens.yaml")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("serve")(serve_command)


@reports_errors
def serve_command(
    catalog: Path | None = typer.Option(
        None,
        "--catalog",
        "-c",
        envvar="MESHGOV_CATALOG_DIR",
        help="Publish the manifests of this directory on start.",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        envvar="MESHGOV_DATA_DIR",
        help="Snapshots of published manifests, one directory per domain (default: --catalog).",
    ),
    policies: Path = typer.Option(
        Path("policies"), "--policies", "-p", envvar="MESHGOV_POLICIES_DIR", help="Policies."
    ),
    host: str = typer.Option("127.0.0.1", "--host", envvar="MESHGOV_HOST", help="Address."),
    port: int = typer.Option(8181, "--port", envvar="MESHGOV_PORT", help="Port to listen on."),
    store: str = typer.Option(
        "",
        "--store",
        envvar="MESHGOV_STORE_URL",
        help="sqlite:///file.db or postgresql://… (default .meshgov/meshgov.db).",
    ),
    policy_engine: str = typer.Option(
        "auto",
        "--policy-engine",
        envvar="MESHGOV_POLICY_ENGINE",
        help="auto (regorus when meshgov[regorus] is installed, else embedded), embedded "
        "(regopy), regorus, or opa+http://host:port.",
    ),
    engine: str = typer.Option(
        "duckdb",
        "--engine",
        envvar="MESHGOV_QUERY_ENGINE",
        help="duckdb, postgresql://…, spark/local[N]/spark://…, or sc://host:15002",
    ),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, envvar="MESHGOV_WORKERS", help="Worker processes."
    ),
    nats: str = typer.Option(
        "",
        "--nats",
        envvar="MESHGOV_NATS_URL",
        help="NATS server of the events ports (nats://host:port): relay them to governed subjects.",
    ),
    tokens: Path | None = typer.Option(
        None,
        "--tokens",
        envvar="MESHGOV_TOKENS_FILE",
        help="Hashed bearer tokens (default examples/tokens.yaml if present).",
    ),
    pg_port: int | None = typer.Option(
        None,
        "--pg-port",
        envvar="MESHGOV_PG_PORT",
        help="Also serve the PostgreSQL wire protocol on this port (user = principal, password = "
        "token, database = purpose). Off unless set.",
    ),
) -> None:
    """Run the HTTP service. Settings also come from MESHGOV_* environment variables."""
    import uvicorn

    from meshgov.config import Settings
    from meshgov.service import Service

    # Options win over the environment; workers re-read the same values from the environment.
    overrides = {
        "MESHGOV_HOST": host,
        "MESHGOV_PORT": str(port),
        "MESHGOV_POLICIES_DIR": str(policies.resolve()),
        "MESHGOV_POLICY_ENGINE": policy_engine,
        "MESHGOV_QUERY_ENGINE": engine,
        "MESHGOV_WORKERS": str(workers),
    }
    if catalog is not None:
        overrides["MESHGOV_CATALOG_DIR"] = str(catalog.resolve())
    if data_dir is not None:
        overrides["MESHGOV_DATA_DIR"] = str(data_dir.resolve())
    if store:
        overrides["MESHGOV_STORE_URL"] = store
    if tokens is not None:
        overrides["MESHGOV_TOKENS_FILE"] = str(tokens.resolve())
    if pg_port is not None:
        overrides["MESHGOV_PG_PORT"] = str(pg_port)
    if nats:
        overrides["MESHGOV_NATS_URL"] = nats
    os.environ.update(overrides)
    settings = Settings()
    found_tokens = settings.resolved_tokens_file()
    if settings.tokens_file is None and found_tokens is not None:
        os.environ["MESHGOV_TOKENS_FILE"] = str(found_tokens.resolve())
        settings = Settings()

    # Seed once here (policies staged and activated, catalogue published), not in every worker.
    with err_console.status("checking policies and publishing the catalogue…"):
        seeding = Service(settings)
        try:
            seeding.start(bootstrap=True, refresh_seconds=0)
            revision = seeding.active_revision_id()
            products = len(seeding.store.latest_products())
            rego_engine = seeding.engine_label
        finally:
            seeding.close()
    base = f"http://{'127.0.0.1' if host in {'0.0.0.0', '::'} else host}:{port}"
    err_console.print(
        f"[bold]meshgov[/] policy revision [cyan]{revision or 'none (denying everything)'}[/], "
        f"{products} products, store {settings.resolved_store_url().split('://')[0]}, "
        f"policy engine {rego_engine}, query engine {engine.split('://')[0]}, "
        f"{workers} worker(s)"
    )
    hash_key_of(settings)  # warns when it is the development key
    err_console.print(f"OpenAPI docs: [link={base}/docs]{base}/docs[/]")
    if settings.nats_url and settings.stream_relay:
        err_console.print(
            f"event streams: relaying events ports via {settings.nats_url} to "
            f"{settings.stream_namespace}gov.<purpose>.<principal>.<domain>.<name>.<port> "
            "(a warning follows if unreachable)",
            markup=False,
        )
    elif settings.nats_url:
        err_console.print(
            f"event streams: served by the pull API from {settings.nats_url}; not relayed "
            "(MESHGOV_STREAM_RELAY is off)",
            markup=False,
        )
    if found_tokens is not None and found_tokens.resolve() == DEV_TOKENS_FILE.resolve():
        err_console.print("Try a query as the EU analyst (development token):")
        err_console.print(
            f"  curl -s -X POST {base}/v1/query/execute "
            "-H 'Authorization: Bearer dev-analyst-eu' -H 'Content-Type: application/json' "
            '-d \'{"sql": "SELECT customer_id, email, region FROM customer.customers LIMIT 5", '
            '"purpose": "analytics", "format": "json"}\'',
            markup=False,
        )
        err_console.print("… export what they may see, and pull their governed order events:")
        err_console.print(
            f"  curl -s -o customers.parquet -H 'Authorization: Bearer dev-analyst-eu' "
            f"'{base}/v1/products/customer/customers/ports/customers/export?format=parquet"
            "&purpose=analytics'",
            markup=False,
        )
        if settings.nats_url:
            err_console.print(
                f"  curl -sN -H 'Authorization: Bearer dev-analyst-eu' "
                f"'{base}/v1/products/commerce/orders/ports/order_events/events?purpose=analytics"
                "&limit=5'",
                markup=False,
            )
    if settings.pg_port is not None:
        pg_host = settings.pg_host
        err_console.print(
            f"PostgreSQL protocol on {pg_host}:{settings.pg_port} (catalogue introspection "
            f"{'on' if settings.wire_catalog_dsn() else 'off: set MESHGOV_PG_CATALOG_DSN'}), e.g.",
            markup=False,
        )
        err_console.print(
            f'  psql "host={pg_host} port={settings.pg_port} dbname=analytics user=analyst-eu '
            'password=dev-analyst-eu"',
            markup=False,
        )
    uvicorn.run(
        "meshgov.process:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_graceful_shutdown=10,
        # Explicit (both are dependencies): the C HTTP parser and event loop. No access log (the
        # decision log and /metrics record every request), no Server header.
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
    )
