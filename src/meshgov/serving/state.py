"""The serving state: one immutable snapshot of policy revision + catalogue that a request uses.

The state is rebuilt from the store (active revision + latest product versions) whenever either
changes, and swapped in atomically (a reference assignment): a request takes a reference at its
start and finishes on it, so an activation or a publish meanwhile never mixes revisions.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshgov.catalog import Catalog, DataRoot, parse_manifest_cached
from meshgov.config import Settings
from meshgov.core.manifest import Manifest
from meshgov.core.policy import LazyPrepared, PolicyBundle, PolicyEngine, PreparedPolicy
from meshgov.core.principal import Principal
from meshgov.errors import BackendUnavailable, ManifestError, PolicyError
from meshgov.gate import Gate
from meshgov.gateway import Gateway, catalog_policy_data
from meshgov.metrics import Metrics
from meshgov.store.base import ProductVersion, Store
from meshgov.store.decision_log import DecisionLog

log = logging.getLogger("meshgov.service")


@dataclass(frozen=True)
class ServingState:
    """Everything one request needs, fixed for the request's lifetime."""

    revision: str
    bundle: PolicyBundle
    prepared: PreparedPolicy  # production modules + catalogue data: Data API and access queries
    gate: Gate
    catalog: Catalog
    products: dict[str, ProductVersion]
    gateway: Gateway  # access decisions and secure SQL (cached) for this revision and catalogue
    activation_seq: int
    products_signature: tuple[int, float]
    # Derived views built on first use (port index, graph…); same lifetime as the state.
    cache: dict[str, Any] = field(default_factory=dict, compare=False)


def catalog_data(catalog: Catalog) -> dict[str, Any]:
    """``data.catalog``: what the policies see of the catalogue (see ``catalog_policy_data``)."""
    return catalog_policy_data({k: m.policy_document() for k, m in catalog.manifests.items()})


def manifest_of(version: ProductVersion) -> Manifest:
    """The stored version's manifest, validated once per content and source (every catalogue
    revision reads every stored manifest; after one publication all but one are unchanged)."""
    # Seeded from disk: keep the original path so snapshot files resolve next to it.
    seeded = version.publisher.startswith("file:")
    return parse_manifest_cached(
        version.manifest,
        f"store:{version.product_id}@{version.version}",
        version.publisher.removeprefix("file:") if seeded else None,
    )


def data_root_of(settings: Settings, domain: str, publisher: str) -> DataRoot | None:
    """Where the snapshots of a stored version resolve, and the directory they may not leave.

    - seeded from the catalogue directory (publisher ``file:…``): next to the manifest file,
      inside the catalogue directory (inside the file's own directory when the file is no longer
      under the configured catalogue);
    - published through the API: ``<data dir>/<domain>/`` (``MESHGOV_DATA_DIR``, by default the
      catalogue directory), which a domain's owners cannot leave: no absolute paths, ``..`` or
      symbolic links out of it, so one domain's manifest never reads another domain's files;
      ``None`` (no snapshots allowed) when the service has neither directory.
    """
    if publisher.startswith("file:"):
        catalog = str(settings.catalog_dir) if settings.catalog_dir is not None else None
        # The directory by string (10,000 products: no Path built per product and revision).
        return _seeded_data_root(os.path.dirname(publisher.removeprefix("file:")), catalog)
    published = settings.published_data_dir()
    if published is None:
        return None
    domain_dir = published / domain
    return DataRoot(domain_dir, domain_dir, f"the data directory of domain {domain!r}")


@functools.lru_cache(maxsize=4096)
def _seeded_data_root(base_dir: str, catalog_dir: str | None) -> DataRoot:
    """``data_root_of`` for a seeded file, by directory: every catalogue revision asks it for
    every product, and resolving paths costs system calls. Snapshot paths themselves are still
    resolved (symbolic links followed) each time they are used (``data_path_problem``)."""
    base = Path(base_dir)
    catalog = Path(catalog_dir).resolve() if catalog_dir is not None else None
    inside = catalog is not None and base.resolve().is_relative_to(catalog)
    return DataRoot(base, catalog if inside and catalog is not None else base)


class ServiceCore:
    """What every concern of the service shares: settings, store, policy engine, serving state."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        engine: PolicyEngine | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._engine = engine
        self._staging_engine: PolicyEngine | None = None
        self.metrics = Metrics()
        self._state: ServingState | None = None
        self._write_lock = threading.RLock()
        self._decision_log: DecisionLog | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._query_engine: Any = None
        self._query_engine_catalog: str = ""
        self._engine_lock = threading.Lock()
        self.started_at = time.time()
        # Whose access the dry run of a staged revision compares (the HTTP app sets its tokens'
        # principals): authorisation is the adapters' business, so the service is told.
        self.principals: list[Principal] = []

    @property
    def store(self) -> Store:
        if self._store is None:
            raise BackendUnavailable("the service is not started")
        return self._store

    @property
    def engine(self) -> PolicyEngine:
        if self._engine is None:
            from meshgov.policy_backends import engine_from_url

            self._engine = engine_from_url(self.settings.policy_engine)
        return self._engine

    @property
    def staging_engine(self) -> PolicyEngine:
        """The engine that compiles, tests and dry-runs a candidate revision: the serving engine
        when it runs in this process (the candidate is judged by the engine that will serve it);
        an OPA server holds only the active revision, so then the in-process default (regorus
        when installed, else regopy)."""
        engine = self.engine
        if engine.name in {"embedded", "regorus"}:
            return engine
        if self._staging_engine is None:
            from meshgov.policy_backends import engine_from_url

            self._staging_engine = engine_from_url("auto")
        return self._staging_engine

    @property
    def engine_label(self) -> str:
        """The policy engine and its version ("regorus 0.13.0"): health, serve, decision log."""
        from meshgov.policy_backends import engine_label

        return engine_label(self.engine)

    def _products_signature(self) -> tuple[int, float]:
        return self.store.products_signature()

    def active_revision_id(self) -> str | None:
        activations = self.store.activations()
        return activations[-1].revision if activations else None

    @property
    def state(self) -> ServingState:
        state = self._state
        if state is None:
            raise PolicyError("no policy revision is active; the service denies everything")
        return state

    @property
    def current(self) -> ServingState | None:
        """The serving state, or None when no revision is active (health, metrics)."""
        return self._state

    @property
    def ready(self) -> bool:
        return self._state is not None

    def reload(self) -> None:
        """Rebuild the serving state from the store (active revision + latest products)."""
        with self._write_lock:
            activations = self.store.activations()
            if not activations:
                self._state = None
                return
            revision = self.store.revision(activations[-1].revision)
            if revision is None or not revision.activatable:
                raise PolicyError(f"active revision {activations[-1].revision} is not valid")
            # The signature first: a publication in between makes the next refresh reload again.
            signature = self._products_signature()
            versions = self.store.latest_products()
            if self._state is not None:
                self.metrics.retire_cache_stats(self._state.gateway.cache_stats())
            self._state = self._build_state(
                PolicyBundle(revision.modules, revision.data, revision.id),
                versions,
                activations[-1].seq,
                signature,
            )
            self.metrics.active_revision = revision.id

    def _build_state(
        self,
        bundle: PolicyBundle,
        versions: list[ProductVersion],
        seq: int,
        signature: tuple[int, float],
    ) -> ServingState:
        manifests: list[Manifest] = []
        for version in versions:
            try:
                manifests.append(manifest_of(version))
            except ManifestError as exc:
                log.error("stored manifest %s unreadable: %s", version.product_id, exc)
        data_roots = {
            v.product_id: data_root_of(self.settings, v.domain, v.publisher) for v in versions
        }
        catalog = Catalog.from_manifests(manifests, data_roots=data_roots)
        # The Data API's whole-catalogue policy is prepared on its first use (see LazyPrepared);
        # the gate depends on the bundle alone, so a new catalogue revision keeps it.
        engine = self.engine
        prepared = LazyPrepared(
            bundle.revision, lambda: engine.prepare(bundle, catalog_data(catalog))
        )
        previous = self._state
        same_bundle = previous is not None and previous.bundle.revision == bundle.revision
        return ServingState(
            revision=bundle.revision,
            bundle=bundle,
            prepared=prepared,
            gate=previous.gate if previous is not None and same_bundle else Gate(bundle, engine),
            catalog=catalog,
            products={v.product_id: v for v in versions},
            gateway=Gateway(catalog, bundle, self.engine),
            activation_seq=seq,
            products_signature=signature,
        )
