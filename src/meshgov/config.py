"""Service configuration: one ``Settings`` object, read from ``MESHGOV_*`` environment variables.

Adapters (``meshgov serve``, tests, the benchmark) build a ``Settings`` and pass it in; nothing here
runs at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STATE_DIR = ".meshgov"
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
    # `embedded` (regopy) or `opa+http://host:port`.
    policy_engine: str = "embedded"
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
    # Where the mesh-wide hash-mask key comes from: `env:VAR` or `file:/path`. Never logged.
    hash_key_source: str = "env:MESHGOV_HASH_KEY"
    # Decision log batching: flush at this many records or after this many seconds.
    decision_batch_size: Annotated[int, Field(ge=1)] = 256
    decision_flush_seconds: Annotated[float, Field(gt=0)] = 0.2
    # Per-request evaluation budget; past it the request is denied (503).
    request_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    # PostgreSQL wire protocol (docs/wire.md): off unless a port is set.
    pg_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    pg_host: str = "127.0.0.1"
    pg_tls_cert: Path | None = None
    pg_tls_key: Path | None = None
    pg_max_connections: Annotated[int, Field(ge=1)] = 100
    pg_max_connections_per_principal: Annotated[int, Field(ge=1)] = 20
    pg_idle_timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # The PostgreSQL server that holds the governed catalogue (one database per visible view;
    # the role needs CREATEDB and CREATEROLE). Empty = the query engine's server when it is
    # PostgreSQL, else introspection is refused (data queries still work).
    pg_catalog_dsn: str = ""
    pg_catalog_prefix: str = "meshgov_catalogue_"

    @field_validator("policy_engine")
    @classmethod
    def _known_policy_engine(cls, value: str) -> str:
        if value == "embedded" or value.startswith(("opa+http://", "opa+https://")):
            return value
        raise ValueError("policy_engine must be 'embedded' or 'opa+http(s)://host:port'")

    @field_validator("query_engine")
    @classmethod
    def _known_query_engine(cls, value: str) -> str:
        if value == "duckdb" or value.startswith(("postgresql://", "postgres://")):
            return value
        raise ValueError("query_engine must be 'duckdb' or 'postgresql://…'")

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
