"""Service configuration: one ``Settings`` object, read from ``MESHGOV_*`` environment variables.

Adapters (``meshgov serve``, tests, the benchmark) build a ``Settings`` and pass it in; nothing here
runs at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from meshgov import limits

STATE_DIR = ".meshgov"
# System session properties principals may set through Trino by default: the ones the CLI's
# `--session` and JDBC clients commonly set, none of which widens what anyone may read.
DEFAULT_TRINO_SESSION_PROPERTIES = (
    "query_max_run_time",
    "query_max_execution_time",
    "query_max_planning_time",
    "query_max_cpu_time",
    "query_max_scan_physical_bytes",
    "query_priority",
    "join_distribution_type",
    "join_reordering_strategy",
    "task_concurrency",
    "spill_enabled",
)
# Used only when no key is configured (`meshgov serve` warns): hashes are then guessable.
DEVELOPMENT_HASH_KEY = b"meshgov-development-key"
# Said by every command that hashes with the development key (`meshgov serve`, `meshgov query`).
DEVELOPMENT_KEY_WARNING = (
    "no hash-mask key configured (MESHGOV_HASH_KEY): using the public development key, so "
    "hashed values can be guessed"
)


class Settings(BaseSettings):
    """Everything ``meshgov serve`` needs; each field is also ``MESHGOV_<FIELD>`` in the env."""

    model_config = SettingsConfigDict(env_prefix="MESHGOV_", extra="ignore")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8181
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Products published into the store on start (the example mesh for `make run`); None = none.
    catalog_dir: Path | None = None
    # Snapshots of manifests published through the API: `data:` of product `domain/name` is
    # relative to `<data_dir>/<domain>/` and may not leave it. None = the catalogue directory.
    data_dir: Path | None = None
    policies_dir: Path = Path("policies")
    # sqlite:///path or postgresql://…; empty = a SQLite file under .meshgov/.
    store_url: str = ""
    # `auto` (regorus when the extra meshgov[regorus] is installed, else regopy), `embedded`
    # (regopy), `regorus` or `opa+http://host:port`.
    policy_engine: str = "auto"
    # `duckdb` (in-process) or `postgresql://…`.
    query_engine: str = "duckdb"
    # YAML file of hashed bearer tokens; None = examples/tokens.yaml when it exists.
    tokens_file: Path | None = None
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    # Trino's OPA plugin cannot send a bearer token: allow tokenless Data API calls (private
    # networks only); Trino endpoints then trust input.context.identity.
    data_api_anonymous: bool = False
    # Purpose of Trino queries when the OPA context file gives none (context.properties.purpose).
    trino_default_purpose: str = "analytics"
    # Trino catalogs that hold products (comma-separated); a table elsewhere is not a product.
    trino_catalogs: str = "lake"
    # Session properties principals may set through Trino (comma-separated fnmatch patterns:
    # `name` for a system property, `catalog.name` for a catalog property).
    trino_session_properties: str = ",".join(DEFAULT_TRINO_SESSION_PROPERTIES)
    # Body limit of the Trino paths: a FilterTables batch lists every table of a catalog
    # (about 110 bytes each), so it outgrows `max_body_bytes` at about 9,500 tables.
    trino_max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1_048_576
    # Where the mesh-wide hash-mask key comes from: `env:VAR` or `file:/path`. Never logged.
    hash_key_source: str = "env:MESHGOV_HASH_KEY"
    # Decision log batching: flush at this many records or after this many seconds.
    decision_batch_size: Annotated[int, Field(ge=1)] = 256
    decision_flush_seconds: Annotated[float, Field(gt=0)] = 0.2
    # NATS server of the events ports (`nats://host:port`); empty: no relay, no events API.
    nats_url: str = ""
    # Relay events ports to governed subjects inside `meshgov serve` (needs nats_url).
    stream_relay: bool = True
    # Prepended to the relay's subjects and streams (`<ns>gov.…`, `<ns>dlq.…`, `<NS>MESHGOV_…`):
    # several meshgov deployments (or test runs) on one NATS server stay apart.
    stream_namespace: Annotated[str, Field(pattern=r"^[a-z0-9_-]*$", max_length=32)] = ""
    # Per-request time budget (authorize, rewrite, Rego, parsing, the engine's statement
    # timeout): past it the request is refused (422 time_budget_exceeded). docs/enforcement.md.
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    # Worker threads for CPU-bound request work (off the event loop); more requests wait.
    cpu_workers: Annotated[int, Field(ge=1, le=64)] = 4
    # Sizes refused (413) before any work.
    max_sql_chars: Annotated[int, Field(ge=1)] = limits.DEFAULT_MAX_SQL_CHARS
    max_data_input_bytes: Annotated[int, Field(ge=2)] = limits.DEFAULT_MAX_DATA_INPUT_BYTES
    max_manifest_bytes: Annotated[int, Field(ge=1024)] = limits.DEFAULT_MAX_MANIFEST_BYTES
    # Results: a query past either cap is stopped and refused (422 result_too_large).
    result_max_rows: Annotated[int, Field(ge=1)] = limits.DEFAULT_RESULT_MAX_ROWS
    result_max_bytes: Annotated[int, Field(ge=1024)] = limits.DEFAULT_RESULT_MAX_BYTES
    # Engines: DuckDB memory_limit / threads / spill directory and its size; PostgreSQL work_mem
    # and temp_file_limit (when the connecting role may set them).
    engine_memory_mb: Annotated[int, Field(ge=64)] = limits.DEFAULT_ENGINE_MEMORY_MB
    engine_threads: Annotated[int, Field(ge=1, le=256)] = limits.DEFAULT_ENGINE_THREADS
    engine_temp_dir: Path | None = None
    engine_temp_mb: Annotated[int, Field(ge=0)] = limits.DEFAULT_ENGINE_TEMP_MB
    engine_work_mem_mb: Annotated[int, Field(ge=1)] = limits.DEFAULT_ENGINE_WORK_MEM_MB
    # PostgreSQL wire protocol (docs/wire.md): off unless a port is set.
    pg_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    pg_host: str = "127.0.0.1"
    pg_tls_cert: Path | None = None
    pg_tls_key: Path | None = None
    pg_max_connections: Annotated[int, Field(ge=1)] = 100
    pg_max_connections_per_principal: Annotated[int, Field(ge=1)] = 20
    pg_idle_timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # Failed logins (docs/wire.md): after each failure for a user name (or from an address) the
    # next login waits, doubling from `delay` up to `max_delay`; past `max_failures` within the
    # window it is refused (28P01). 0 failures = that counter is off. `tracked`: keys per counter.
    pg_login_max_failures: Annotated[int, Field(ge=0)] = 10
    pg_login_max_failures_per_address: Annotated[int, Field(ge=0)] = 100
    pg_login_window_seconds: Annotated[float, Field(gt=0)] = 300.0
    pg_login_delay_seconds: Annotated[float, Field(ge=0, le=5)] = 0.1
    pg_login_max_delay_seconds: Annotated[float, Field(ge=0, le=30)] = 2.0
    pg_login_tracked: Annotated[int, Field(ge=1)] = 10_000
    # The PostgreSQL server that holds the governed catalogue (one database per visible view;
    # the role needs CREATEDB and CREATEROLE). Empty = the query engine's server when it is
    # PostgreSQL, else introspection is refused (data queries still work).
    pg_catalog_dsn: str = ""
    pg_catalog_prefix: str = "meshgov_catalogue_"

    @field_validator("policy_engine")
    @classmethod
    def _known_policy_engine(cls, value: str) -> str:
        if value in {"auto", "embedded", "regorus"} or value.startswith(
            ("opa+http://", "opa+https://")
        ):
            return value
        raise ValueError(
            "policy_engine must be 'auto', 'embedded', 'regorus' or 'opa+http(s)://host:port'"
        )

    @field_validator("query_engine")
    @classmethod
    def _known_query_engine(cls, value: str) -> str:
        if value == "duckdb" or value.startswith(("postgresql://", "postgres://")):
            return value
        # Spark (engines/spark.py engine_is_spark): local mode, a cluster, a Connect server.
        if value in {"spark", "local"} or value.startswith(("spark://", "local[", "sc://")):
            return value
        raise ValueError(
            "query_engine must be 'duckdb', 'postgresql://…' or a Spark engine "
            "(spark, local[N], spark://…, sc://…)"
        )

    @field_validator("store_url")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value or value.startswith(("sqlite://", "postgresql://", "postgres://")):
            return value
        raise ValueError("store_url must be sqlite:///path or postgresql://…")

    def resolved_store_url(self) -> str:
        """The store URL, defaulting to a SQLite file under ``.meshgov/``."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{Path(STATE_DIR) / 'meshgov.db'}"

    def published_data_dir(self) -> Path | None:
        """Where published manifests' snapshots live (one directory per domain), if anywhere."""
        chosen = self.data_dir if self.data_dir is not None else self.catalog_dir
        return chosen.resolve() if chosen is not None else None

    def wire_catalog_dsn(self) -> str | None:
        """Where the wire protocol's governed catalogue lives (see ``pg_catalog_dsn``)."""
        if self.pg_catalog_dsn:
            return self.pg_catalog_dsn
        if self.query_engine.startswith(("postgresql://", "postgres://")):
            return self.query_engine
        return None

    def resolved_tokens_file(self) -> Path | None:
        if self.tokens_file is not None:
            return self.tokens_file
        for candidate in (Path("examples/tokens.yaml"),):
            if candidate.is_file():
                return candidate
        return None

    def configured_hash_key(self) -> bytes | None:
        """The key from ``hash_key_source``, or None when it gives none."""
        import os

        source = self.hash_key_source
        if source.startswith("env:"):
            value = os.environ.get(source.removeprefix("env:"), "")
            return value.encode() if value else None
        if source.startswith("file:"):
            path = Path(source.removeprefix("file:"))
            return path.read_bytes().strip() or None if path.is_file() else None
        return None

    def hash_key(self) -> bytes:
        """The mesh-wide key for `hash` masks; a fixed development key when none is configured."""
        return self.configured_hash_key() or DEVELOPMENT_HASH_KEY
