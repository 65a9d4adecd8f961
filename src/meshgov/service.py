"""The policy service facade: what ``meshgov serve`` (and every face: HTTP, wire…) does.

A ``Service`` wires a store, a policy engine and the gateway together. Its concerns live in
``meshgov.serving``, one module each:

- ``state``: the **serving state** (policy revision + catalogue + compiled policies + gateway), one
  immutable ``ServingState`` swapped in atomically when a revision is activated or a product
  published;
- ``decisions``: every decision is queued to the decision log, written in batches off the request
  path;
- ``registry``: the release gate on the active revision, and publishing versions that pass it;
- ``policy_lifecycle``: revisions are staged (compiled, tested, linted, dry-run against every
  registered product) and only a revision whose compile and tests passed can become active;
- ``queries``: access decisions, secure SQL, execution and the Data API;
- ``access``: what a principal may read (ports, columns, masks, bound row filters).

This module keeps the process lifecycle (start, seed, refresh, close). Authorisation (who may
publish, change policies…) is the faces' job (``api/security.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from meshgov.errors import Conflict, MeshgovError
from meshgov.serving.access import AccessListing
from meshgov.serving.decisions import data_api_outcome
from meshgov.serving.policy_checks import check_bundle, check_bundle_child
from meshgov.serving.policy_lifecycle import PolicyLifecycle, policy_impact
from meshgov.serving.queries import Queries, data_query
from meshgov.serving.registry import PublishResult, Registry, gate_findings, gate_passes
from meshgov.serving.state import ServingState, catalog_data, data_root_of
from meshgov.store.base import AUDIT_ACTIVATED, ProductVersion, open_store
from meshgov.store.decision_log import DecisionLog

__all__ = [
    "PublishResult",
    "Service",
    "ServingState",
    "catalog_data",
    "check_bundle",
    "check_bundle_child",
    "data_api_outcome",
    "data_query",
    "data_root_of",
    "gate_findings",
    "gate_passes",
    "policy_impact",
]

log = logging.getLogger("meshgov.service")

SYSTEM_ACTOR = "system:startup"


class Service(Registry, PolicyLifecycle, Queries, AccessListing):
    """One meshgov service process. Build with settings, ``start()``, use, ``close()``."""

    def start(self, *, bootstrap: bool = True, refresh_seconds: float = 1.0) -> None:
        """Open the store, optionally seed it (policies dir, catalogue dir), load the state."""
        if self._store is None:
            self._store = open_store(self.settings.resolved_store_url())
        self._decision_log = DecisionLog(
            self._store,
            batch_size=self.settings.decision_batch_size,
            flush_seconds=self.settings.decision_flush_seconds,
            engine=self.engine_label,
        )
        if bootstrap:
            self.bootstrap()
        self.reload()
        self._warm_port_names()
        if refresh_seconds > 0:
            self._refresher = threading.Thread(
                target=self._refresh_loop,
                args=(refresh_seconds,),
                name="meshgov-refresh",
                daemon=True,
            )
            self._refresher.start()

    def _warm_port_names(self) -> None:
        """Parse every port's table name now (each is remembered by name): a publication checks
        the new product's tables against all of them, and the first one would parse 10,000."""
        state = self._state
        if state is not None:
            from meshgov.engines.base import collect_port_sources

            collect_port_sources(state.catalog)

    def bootstrap(self) -> None:
        """Stage ``policies_dir`` and activate it when it is new; publish ``catalog_dir``.

        A revision of ``policies_dir`` the store already knows is not activated again, so that an
        activation or rollback made through the API survives a restart; a changed directory (a
        new commit of ``policies/``) is a new revision and becomes active when it passes.
        """
        from meshgov.policy_backends import load_bundle_dir

        policies = Path(self.settings.policies_dir)
        if policies.is_dir():
            bundle = load_bundle_dir(policies)
            known = self.store.revision(bundle.revision) is not None
            revision = self.stage_bundle(bundle, author=SYSTEM_ACTOR)
            active = self.active_revision_id()
            if revision.activatable and (active is None or (not known and active != revision.id)):
                self.store.activate(revision.id, SYSTEM_ACTOR, time.time())
                self._audit(SYSTEM_ACTOR, AUDIT_ACTIVATED, revision.id, active)
            elif not revision.activatable:
                failures = revision.report.get("tests", {}).get("failures", [])
                log.error(
                    "policies in %s are not activated: %s",
                    policies,
                    revision.report.get("compile", {}).get("error")
                    or ", ".join(f["test"] for f in failures[:5]),
                )
        if self.settings.catalog_dir is not None:
            self.seed_catalog(Path(self.settings.catalog_dir))

    def seed_catalog(self, root: Path) -> list[str]:
        """Publish every manifest under ``root`` whose version is not yet in the store."""
        from meshgov.catalog import load_catalog

        catalog = load_catalog(root)
        published: list[str] = []
        known = {(v.product_id, v.version) for v in self.store.latest_products()}
        for key in sorted(catalog.manifests):
            manifest = catalog.manifests[key]
            if (key, manifest.metadata.version) in known:
                continue
            text = Path(manifest.source or "").read_text(encoding="utf-8")
            try:
                self.store.publish(
                    ProductVersion(
                        manifest.metadata.domain,
                        manifest.metadata.name,
                        manifest.metadata.version,
                        text,
                        f"file:{Path(manifest.source or '').resolve()}",
                        time.time(),
                    )
                )
                published.append(f"{key}@{manifest.metadata.version}")
            except Conflict:
                continue  # another worker seeded it first
        return published

    def close(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
        if self._decision_log is not None:
            self._decision_log.close()
        if self._query_engine is not None:
            try:
                self._query_engine.close()
            except Exception:  # closing is best effort
                log.debug("query engine close failed", exc_info=True)
        if self._store is not None:
            self._store.close()

    def _stale(self) -> bool:
        """Whether the store holds another activation or other products than the state."""
        state = self._state
        activations = self.store.activations()
        seq = activations[-1].seq if activations else 0
        return (
            state is None
            or seq != state.activation_seq
            or self._products_signature() != state.products_signature
        )

    def reload_if_stale(self) -> None:
        """Reload when another worker activated a revision or published a product."""
        if self._stale():
            with self._write_lock:
                # Asked again under the lock: a publication of this process reloads before it
                # lets go, and that revision must not be built twice.
                if self._stale():
                    self.reload()

    def _refresh_loop(self, seconds: float) -> None:
        # Other workers activate revisions and publish products; pick their changes up.
        while not self._stop.wait(seconds):
            try:
                self.reload_if_stale()
            except MeshgovError as exc:
                log.warning("state refresh failed: %s", exc.message)
