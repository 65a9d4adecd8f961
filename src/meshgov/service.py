"""The policy service facade: what ``meshgov serve`` (and the HTTP API) does, independent of HTTP.

A ``Service`` wires a store, a policy engine and the gateway together:

- the **serving state** (policy revision + catalogue + compiled policies + gateway) is one immutable
  ``ServingState``; a request takes a reference at its start and finishes on it, and activation or
  a new publish swaps in a new state atomically (a reference assignment);
- policy revisions are staged (compiled, tested, dry-run against every registered product) and only
  a revision whose compile and tests passed can become active;
- every decision is queued to the decision log, which writes in batches off the request path.

Authorisation (who may publish, change policies…) is the adapters' job (``api/security.py``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from meshgov.api.metrics import Metrics
from meshgov.catalog import (
    Catalog,
    DataRoot,
    check_data_paths,
    parse_manifest_cached,
    port_location,
    read_manifest_document,
    read_manifest_text,
)
from meshgov.config import Settings
from meshgov.core.manifest import SEMVER, Manifest
from meshgov.core.policy import (
    LazyPrepared,
    PolicyBundle,
    PolicyEngine,
    PreparedPolicy,
    discover_tests,
)
from meshgov.core.principal import Principal
from meshgov.core.registry import validate_registry
from meshgov.core.sql.model import AccessDecision, PortRef, ports_of
from meshgov.core.yaml_source import SourceDocument
from meshgov.errors import (
    AccessDenied,
    BackendUnavailable,
    Conflict,
    InputError,
    Location,
    ManifestError,
    MeshgovError,
    NotFound,
    PolicyError,
)
from meshgov.execution import run_secure_sql
from meshgov.gate import Gate, SourcedManifest, sourced
from meshgov.gateway import (
    Authorization,
    Gateway,
    access_impact,
    catalog_policy_data,
    registered_purposes,
)
from meshgov.store.base import (
    REVISION_FAILED,
    REVISION_VALID,
    DecisionFilter,
    DecisionRecord,
    PolicyRevision,
    ProductVersion,
    Store,
    open_store,
)
from meshgov.store.decision_log import DecisionLog, input_digest

if TYPE_CHECKING:
    from meshgov.core.yaml_source import SourceDocument
    from meshgov.engines.base import QueryEngine

log = logging.getLogger("meshgov.service")

ACCESS_QUERY = "data.meshgov.access.decision"
SYSTEM_ACTOR = "system:startup"
# Compile-and-test results by (engine, bundle revision, catalogue revision): same content, same
# result, so restarts and repeated stagings in one process do not pay for them again.
_CHECKED: dict[tuple[str, str], dict[str, Any]] = {}
CHILD_ENTRY = "from meshgov.service import check_bundle_child; check_bundle_child()"
MAX_POLICY_FILE_BYTES = 512 * 1024


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


@dataclass(frozen=True)
class PublishResult:
    published: bool
    product: str
    version: str
    findings: list[dict[str, Any]]


def catalog_data(catalog: Catalog) -> dict[str, Any]:
    """``data.catalog``: what the policies see of the catalogue (see ``catalog_policy_data``)."""
    return catalog_policy_data({k: m.policy_document() for k, m in catalog.manifests.items()})


def _manifest_of(version: ProductVersion) -> Manifest:
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
        return _seeded_data_root(str(Path(publisher.removeprefix("file:")).parent), catalog)
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


def _finding_key(finding: Mapping[str, Any]) -> str:
    location = finding.get("location") or {}
    return "|".join(
        str(v)
        for v in (
            finding.get("rule"),
            finding.get("severity"),
            location.get("product") if isinstance(location, dict) else None,
            location.get("port") if isinstance(location, dict) else None,
            location.get("column") if isinstance(location, dict) else None,
            finding.get("message"),
        )
    )


class Service:
    """One meshgov service process. Build with settings, ``start()``, use, ``close()``."""

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

    # ----------------------------------------------------------------- lifecycle
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
    def engine_label(self) -> str:
        """The policy engine and its version ("regorus 0.13.0"): health, serve, decision log."""
        from meshgov.policy_backends import engine_label

        return engine_label(self.engine)

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
        if refresh_seconds > 0:
            self._refresher = threading.Thread(
                target=self._refresh_loop,
                args=(refresh_seconds,),
                name="meshgov-refresh",
                daemon=True,
            )
            self._refresher.start()

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

    def _refresh_loop(self, seconds: float) -> None:
        # Other workers activate revisions and publish products; pick their changes up.
        while not self._stop.wait(seconds):
            try:
                state = self._state
                activations = self.store.activations()
                seq = activations[-1].seq if activations else 0
                if (
                    state is None
                    or seq != state.activation_seq
                    or (self._products_signature() != state.products_signature)
                ):
                    self.reload()
            except MeshgovError as exc:
                log.warning("state refresh failed: %s", exc.message)

    def _products_signature(self) -> tuple[int, float]:
        latest = self.store.latest_products()
        return len(latest), max((v.published_at for v in latest), default=0.0)

    # ----------------------------------------------------------------- state
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
            versions = self.store.latest_products()
            if self._state is not None:
                self.metrics.retire_cache_stats(self._state.gateway.cache_stats())
            self._state = self._build_state(
                PolicyBundle(revision.modules, revision.data, revision.id),
                versions,
                activations[-1].seq,
            )
            self.metrics.active_revision = revision.id

    def _build_state(
        self, bundle: PolicyBundle, versions: list[ProductVersion], seq: int
    ) -> ServingState:
        manifests: list[Manifest] = []
        for version in versions:
            try:
                manifests.append(_manifest_of(version))
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
            products_signature=(
                len(versions),
                max((v.published_at for v in versions), default=0.0),
            ),
        )

    # ----------------------------------------------------------------- decisions
    def record(
        self,
        *,
        kind: str,
        principal: str,
        product: str | None,
        document: Any,
        allowed: bool,
        result: dict[str, Any],
        revision: str,
        digest: str | None = None,
    ) -> str:
        self.metrics.observe_decision(kind, allowed)
        if self._decision_log is None:
            raise BackendUnavailable("the decision log is not running")
        return self._decision_log.record(
            kind=kind,
            principal=principal,
            product=product,
            document=document,
            allowed=allowed,
            result=result,
            revision=revision,
            digest=digest,
        )

    def flush_decisions(self, timeout: float = 10.0) -> bool:
        return self._decision_log.flush(timeout) if self._decision_log else True

    def decisions(self, query: DecisionFilter) -> list[DecisionRecord]:
        self.flush_decisions(2.0)
        return self.store.decisions(query)

    # ----------------------------------------------------------------- release gate
    def findings(
        self,
        manifest: Manifest,
        previous: Manifest | None,
        *,
        gate: Gate | None = None,
        catalog: Catalog | None = None,
    ) -> list[dict[str, Any]]:
        """The gate's findings for one manifest (against its previous version) on a revision."""
        state = self.state
        return gate_findings(gate or state.gate, manifest, previous, catalog or state.catalog)

    def check(
        self, principal: Principal, manifest_text: str, previous_text: str | None
    ) -> tuple[list[dict[str, Any]], str, str]:
        """The gate's findings for a manifest → (findings, decision id, revision)."""
        state = self.state
        manifest, doc = read_manifest_document(manifest_text, "request:manifest")
        # What publishing would refuse (snapshot paths, table names), check refuses alike.
        self._check_servable(state, manifest, doc)
        previous: Manifest | None
        if previous_text is not None:
            previous = read_manifest_text(previous_text, "request:previous")
        else:
            stored = state.products.get(manifest.id)
            previous = _manifest_of(stored) if stored else None
        found = gate_findings(state.gate, sourced(manifest, doc), previous, state.catalog)
        passed = gate_passes(found)
        decision_id = self.record(
            kind="check",
            principal=principal.id,
            product=manifest.id,
            document={"manifest": manifest_text, "previous": previous_text},
            allowed=passed,
            result={
                "findings": len(found),
                "errors": sum(f.get("severity") == "error" for f in found),
            },
            revision=state.revision,
        )
        return found, decision_id, state.revision

    # ----------------------------------------------------------------- registry
    def publish(
        self, principal: Principal, domain: str, name: str, manifest_text: str
    ) -> PublishResult:
        """Publish a version if the gate passes; the findings either way."""
        with self._write_lock:
            state = self.state
            manifest, doc = read_manifest_document(manifest_text, f"request:{domain}/{name}")
            if (manifest.metadata.domain, manifest.metadata.name) != (domain, name):
                raise InputError(
                    f"the manifest describes {manifest.id}, not {domain}/{name} (the URL)",
                    Location(product=manifest.id),
                )
            if not SEMVER.match(manifest.metadata.version):
                raise ManifestError(
                    f"metadata.version {manifest.metadata.version!r} is not SemVer",
                    Location(product=manifest.id),
                )
            self._check_servable(state, manifest, doc)
            stored = state.products.get(manifest.id)
            previous = _manifest_of(stored) if stored else None
            others = [m for k, m in state.catalog.manifests.items() if k != manifest.id]
            catalog = Catalog.from_manifests([*others, manifest])
            found = gate_findings(state.gate, sourced(manifest, doc), previous, catalog)
            passed = gate_passes(found)
            self.record(
                kind="publish",
                principal=principal.id,
                product=manifest.id,
                document={"manifest": manifest_text},
                allowed=passed,
                result={"version": manifest.metadata.version, "findings": len(found)},
                revision=state.revision,
            )
            if not passed:
                return PublishResult(False, manifest.id, manifest.metadata.version, found)
            self.store.publish(
                ProductVersion(
                    domain,
                    name,
                    manifest.metadata.version,
                    manifest_text,
                    principal.id,
                    time.time(),
                )
            )
            self.reload()
            return PublishResult(True, manifest.id, manifest.metadata.version, found)

    def _check_servable(self, state: ServingState, manifest: Manifest, doc: SourceDocument) -> None:
        """Refuse (``ManifestError``, 400) a manifest the service could not serve.

        Every ``data:`` must stay inside the domain's data directory and name a readable snapshot
        with the declared columns; every table name must be allowed and not another product's.
        The error names ``spec.outputPorts[i]…`` and its line in the request.
        """
        from meshgov.engines.base import collect_port_sources, snapshot_problem

        root = data_root_of(self.settings, manifest.metadata.domain, "api")
        for index, path in check_data_paths(manifest, doc, root).items():
            port = manifest.spec.output_ports[index]
            problem = snapshot_problem(path, port)
            if problem is not None and root is not None:
                raise ManifestError(
                    f"spec.outputPorts[{index}].data {port.data!r}: the snapshot is not available "
                    f"in {root.label} ({problem}); put the file there first, or remove `data:`",
                    port_location(manifest, doc, index, "data"),
                )
        others = [m for k, m in state.catalog.manifests.items() if k != manifest.id]
        candidate = Catalog.from_manifests(
            [*others, manifest],
            data_roots={**state.catalog.data_roots, manifest.id: root},
        )
        _, rejected = collect_port_sources(candidate)
        names = [p.name for p in manifest.spec.output_ports]
        for reject in rejected:
            if reject.product == manifest.id:
                index = names.index(reject.port)
                raise ManifestError(
                    f"spec.outputPorts[{index}].table: {reject.error.message}",
                    port_location(manifest, doc, index, "table"),
                )

    def product_versions(self, domain: str, name: str) -> list[ProductVersion]:
        versions = self.store.product_versions(domain, name)
        if not versions:
            raise NotFound(f"no product {domain}/{name} is registered")
        return versions

    # ----------------------------------------------------------------- policy lifecycle
    def stage_bundle(self, bundle: PolicyBundle, *, author: str) -> PolicyRevision:
        """Compile, test and dry-run ``bundle``; store it as a revision (valid or failed).

        The same content hash gives the same result, so a known revision is not checked again.
        """
        known = self.store.revision(bundle.revision)
        if known is not None:
            return known
        report: dict[str, Any] = {"compile": {"ok": False}, "tests": {}, "impact": []}
        status = REVISION_FAILED
        state = self._state
        catalog = state.catalog if state else Catalog()
        # Staging never touches the serving engine: an OPA server holds only the active revision,
        # so candidates are compiled, tested and dry-run on the embedded engine (same Rego).
        cache_key = (bundle.revision, catalog.revision)
        checked = _CHECKED.get(cache_key)
        if checked is None:
            # A module can crash the native engine: compile and test in a child process.
            checked = check_bundle_isolated(bundle, catalog_data(catalog))
            _CHECKED[cache_key] = checked
        report.update(checked)
        # The guild's conventions (`meshgov policy lint`) hold for staged revisions too: a lint
        # error (a package without tests, a misplaced package, no METADATA…) fails the revision.
        from meshgov.core.policy_lint import lint_bundle

        lint = [
            {"rule": f.rule, "severity": f.severity, "message": f.message, "file": f.path,
             "line": f.line}
            for f in lint_bundle(bundle)
        ]  # fmt: skip
        report["lint"] = lint
        lint_clean = not any(f["severity"] == "error" for f in lint)
        if checked["compile"]["ok"]:
            from meshgov.policy_backends.embedded import EmbeddedEngine

            try:
                gate = Gate(bundle, EmbeddedEngine())
                if checked["tests"].get("failed") == 0 and lint_clean:
                    status = REVISION_VALID
                report["impact"] = self._impact(gate, state)
                report["access"] = self._access_impact(bundle, state)
            except PolicyError as exc:
                status = REVISION_FAILED
                report["compile"] = {"ok": False, "error": str(exc)}
        revision = PolicyRevision(
            bundle.revision,
            author,
            time.time(),
            dict(bundle.modules),
            dict(bundle.data),
            status,
            report,
        )
        existing = self.store.revision(bundle.revision)
        if existing is None or existing.status != status:
            self.store.save_revision(revision)
        return revision

    def _impact(self, gate: Gate, state: ServingState | None) -> list[dict[str, Any]]:
        """Findings that would change on every registered product (latest version)."""
        if state is None:
            return []
        previous = {
            key: self._previous_version(manifest)
            for key, manifest in state.catalog.manifests.items()
        }
        return policy_impact(state.gate, gate, state.catalog, previous)

    def _access_impact(
        self, bundle: PolicyBundle, state: ServingState | None
    ) -> list[dict[str, Any]]:
        """Access decisions that would change, for every port × known principal × purpose."""
        if state is None or not self.principals:
            return []
        from meshgov.policy_backends.embedded import EmbeddedEngine

        candidate = Gateway(state.catalog, bundle, EmbeddedEngine())
        purposes = registered_purposes(state.bundle) | registered_purposes(bundle)
        return access_impact(state.gateway, candidate, self.principals, purposes)

    def _previous_version(self, manifest: Manifest) -> Manifest | None:
        versions = self.store.product_versions(manifest.metadata.domain, manifest.metadata.name)
        older = [v for v in versions if v.version != manifest.metadata.version]
        return _manifest_of(older[-1]) if older else None

    def stage_file(self, author: str, path: str, content: str | None) -> PolicyRevision:
        """Change (or delete, ``content=None``) one file of the active bundle and stage it."""
        base = self.state.bundle
        clean = _policy_path(path)
        modules = dict(base.modules)
        registry = dict(base.data.get("registry", {}))
        if clean.endswith(".rego"):
            if content is None:
                if clean not in modules:
                    raise NotFound(f"no policy module {clean}")
                del modules[clean]
            else:
                modules[clean] = content
        else:
            stem = _data_stem(clean)
            docs: dict[str, SourceDocument] = {}
            if content is None:
                registry.pop(stem, None)
            else:
                docs[stem] = _parse_data_file(clean, content)
                registry[stem] = docs[stem].data
            # Refused before anything is stored: Rego would read a misshapen file silently.
            validate_registry(registry, docs)
        data = {**base.data, "registry": registry}
        return self.stage_bundle(PolicyBundle.create(modules, data), author=author)

    def activate(self, actor: str, revision_id: str) -> PolicyRevision:
        with self._write_lock:
            revision = self.store.revision(revision_id)
            if revision is None:
                raise NotFound(f"no policy revision {revision_id}")
            if not revision.activatable:
                raise Conflict(
                    f"revision {revision_id} failed to compile or test and cannot be activated"
                )
            self.store.activate(revision_id, actor, time.time())
            self.reload()
            return revision

    def rollback(self, actor: str) -> PolicyRevision:
        """Re-activate the revision that was active before the current one, walking back.

        The activation history is replayed as a stack: activating the revision just below the
        top (a rollback, or re-activating it by hand) pops, anything else pushes. So rolling back
        twice goes two revisions back, rather than toggling between the last two.
        """
        with self._write_lock:
            stack: list[str] = []
            for activation in self.store.activations():
                if len(stack) >= 2 and activation.revision == stack[-2]:
                    stack.pop()
                elif not stack or activation.revision != stack[-1]:
                    stack.append(activation.revision)
            if len(stack) < 2:
                raise Conflict("there is no earlier revision to roll back to")
            return self.activate(actor, stack[-2])

    # ----------------------------------------------------------------- queries
    def ports(self, state: ServingState) -> list[PortRef]:
        ports = state.cache.get("ports")
        if ports is None:
            ports = ports_of(state.catalog.manifests)
            state.cache["ports"] = ports
        return list(ports)

    def access_decision(
        self, state: ServingState, principal: Principal, purpose: str | None, port: PortRef
    ) -> AccessDecision:
        """``data.meshgov.access.decision`` for one port (cached by the gateway; never raises)."""
        return state.gateway.decide(principal, purpose, port.product, port.port)

    def authorize(
        self,
        principal: Principal,
        sql: str,
        purpose: str | None,
        read_dialect: str | None,
        write_dialect: str | None,
        *,
        kind: str = "authorize",
        state: ServingState | None = None,
    ) -> tuple[Authorization, str, ServingState]:
        """Secure SQL or a denial; the decision is logged. Returns (authorization, id, state)."""
        state = state or self.state
        authorization = state.gateway.authorize(
            sql, principal, purpose, read_dialect, write_dialect
        )
        product, result = _logged_outcome(state, authorization)
        decision_id = self.record(
            kind=kind,
            principal=principal.id,
            product=product,
            document=None,
            allowed=authorization.allowed,
            result=result,
            revision=state.revision,
            digest=_request_digest(state, sql, purpose, read_dialect, write_dialect),
        )
        return authorization, decision_id, state

    def query_engine(self, state: ServingState) -> QueryEngine:
        """The engine for this state's catalogue (DuckDB reloads when the catalogue changes)."""
        with self._engine_lock:
            if self._query_engine is not None and self._query_engine_catalog == (
                state.catalog.revision
            ):
                return cast("QueryEngine", self._query_engine)
            from meshgov.engines.base import open_engine

            # One product's missing or refused snapshot fails only the queries that read it.
            engine = open_engine(
                self.settings.query_engine,
                state.catalog,
                self.settings.hash_key(),
                timeout_ms=int(self.settings.request_timeout_seconds * 1000),
                isolate_failures=True,
            )
            # The previous engine may still serve in-flight queries; DuckDB frees it on GC.
            self._query_engine = engine
            self._query_engine_catalog = state.catalog.revision
            return engine

    def execute(
        self, principal: Principal, sql: str, purpose: str | None, read_dialect: str | None
    ) -> tuple[Any, Authorization, str]:
        """Authorize, then run the secure SQL on the engine → (Arrow table, authorization, id)."""
        state = self.state
        engine = self.query_engine(state)
        # One state for the whole request: an activation meanwhile does not mix revisions.
        authorization, decision_id, _ = self.authorize(
            principal,
            sql,
            purpose,
            read_dialect or engine.dialect,
            engine.dialect,
            kind="execute",
            state=state,
        )
        if not authorization.allowed:
            # Unparseable SQL or an unknown dialect is the caller's input (400); the rest deny.
            raise authorization.refusal()
        if not authorization.sql:
            raise AccessDenied("the gateway returned no SQL to run")
        return run_secure_sql(engine, authorization.sql), authorization, decision_id

    # ----------------------------------------------------------------- Data API
    def evaluate(self, path: str, input_document: Any) -> tuple[Any, str]:
        """The value of ``data.<path>`` (``None`` = undefined) and the revision that computed it."""
        state = self.state
        query = data_query(path)
        return state.prepared.evaluate(query, input_document), state.revision


def policy_impact(
    before: Gate,
    after: Gate,
    catalog: Catalog,
    previous: Mapping[str, Manifest | None] | None = None,
    *,
    scan: bool = False,
) -> list[dict[str, Any]]:
    """The gate findings that change between two revisions, for every product of ``catalog``.

    One entry per product whose findings differ: ``added`` and ``removed`` findings, and whether
    the product passes before and after (a product that starts failing blocks its next release).
    """
    changes: list[dict[str, Any]] = []
    for key in sorted(catalog.manifests):
        manifest = catalog.manifests[key]
        prior = (previous or {}).get(key)
        results = []
        for gate in (before, after):
            try:
                results.append(gate_findings(gate, manifest, prior, catalog, scan=scan))
            except MeshgovError as exc:
                results.append(
                    [{"rule": "gate_error", "severity": "error", "message": exc.message}]
                )
        old, new = results
        old_keys = {_finding_key(f) for f in old}
        new_keys = {_finding_key(f) for f in new}
        added = [f for f in new if _finding_key(f) not in old_keys]
        removed = [f for f in old if _finding_key(f) not in new_keys]
        if added or removed:
            changes.append(
                {
                    "product": key,
                    "version": manifest.metadata.version,
                    "added": added,
                    "removed": removed,
                    "passes_before": gate_passes(old),
                    "passes_after": gate_passes(new),
                }
            )
    return changes


# Per serving state: what the decision log keeps of an authorization (by the identity of the
# gateway's cached ``Authorization``, held by the entry so the id cannot be reused) and the digests
# of request inputs. Bounded: cleared when full, the next requests fill it again.
_OUTCOME_CACHE = "decision_outcomes"
_DIGEST_CACHE = "request_digests"
_REQUEST_CACHE_SIZE = 8192


def _logged_outcome(
    state: ServingState, authorization: Authorization
) -> tuple[str | None, dict[str, Any]]:
    """(product, result) of the decision record of ``authorization`` (cached per state)."""
    cache: dict[int, tuple[Authorization, str | None, dict[str, Any]]] = state.cache.setdefault(
        _OUTCOME_CACHE, {}
    )
    entry = cache.get(id(authorization))
    if entry is not None and entry[0] is authorization:
        return entry[1], entry[2]
    product = _single_product(authorization)
    result = {
        "reason": authorization.reason,
        "code": authorization.code,
        "tables": [f"{t.product}:{t.port}" for t in authorization.tables],
    }
    if len(cache) >= _REQUEST_CACHE_SIZE:
        cache.clear()
    cache[id(authorization)] = (authorization, product, result)
    return product, result


def _request_digest(
    state: ServingState,
    sql: str,
    purpose: str | None,
    read_dialect: str | None,
    write_dialect: str | None,
) -> str:
    """``input_digest`` of an authorize request's input (cached per state: same input, same
    digest)."""
    cache: dict[tuple[str, str | None, str | None, str | None], str] = state.cache.setdefault(
        _DIGEST_CACHE, {}
    )
    key = (sql, purpose, read_dialect, write_dialect)
    digest = cache.get(key)
    if digest is None:
        digest = input_digest(
            {"sql": sql, "purpose": purpose, "read": read_dialect, "write": write_dialect}
        )
        if len(cache) >= _REQUEST_CACHE_SIZE:
            cache.clear()
        cache[key] = digest
    return digest


def _single_product(authorization: Authorization) -> str | None:
    products = {t.product for t in authorization.tables}
    return products.pop() if len(products) == 1 else None


def data_query(path: str) -> str:
    """``meshgov/access/decision`` → ``data.meshgov.access.decision`` (identifiers only)."""
    parts = [p for p in path.strip("/").split("/") if p]
    for part in parts:
        if not part.replace("_", "a").isalnum() or part[0].isdigit():
            raise InputError(f"invalid data path segment {part!r}")
    return "data" + "".join(f".{p}" for p in parts)


def _policy_path(path: str) -> str:
    clean = path.strip("/")
    parts = clean.split("/")
    if not clean or any(p in {"", ".", ".."} for p in parts):
        raise InputError(f"invalid policy path {path!r}")
    if not (clean.endswith(".rego") or (parts[0] == "data" and len(parts) == 2)):
        raise InputError(f"policy path {path!r} must be a .rego module or data/<name>.json|yaml")
    return clean


def _data_stem(path: str) -> str:
    name = path.split("/")[-1]
    for suffix in (".json", ".yaml", ".yml"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    raise InputError(f"policy data file {path!r} must end in .json, .yaml or .yml")


def _parse_data_file(path: str, content: str) -> SourceDocument:
    from meshgov.core.yaml_source import load_yaml

    return load_yaml(content, path)


def check_bundle(
    engine: PolicyEngine, bundle: PolicyBundle, extra_data: Mapping[str, Any]
) -> dict[str, Any]:
    """Compile ``bundle`` for production, then run every Rego test.

    Each ``_test.rego`` file is compiled with the modules it reaches (its package and every
    ``data.<package>`` it refers to, transitively): smaller compiles, and a test cannot depend on
    an unrelated package.
    """
    try:
        engine.prepare(bundle, extra_data)
    except PolicyError as exc:
        return {"compile": {"ok": False, "error": str(exc)}, "tests": {}}
    passed = 0
    failures: list[dict[str, Any]] = []
    for path in sorted(p for p in bundle.modules if p.endswith("_test.rego")):
        modules = module_closure(bundle, path)
        subset = PolicyBundle(modules, bundle.data, bundle.revision)
        # Tests as compiled entrypoints: an order of magnitude faster than ad-hoc queries.
        entrypoints = [f"{t.package.replace('.', '/')}/{t.name}" for t in discover_tests(subset)]
        try:
            tested = engine.prepare(subset, extra_data, include_tests=True, entrypoints=entrypoints)
        except PolicyError as exc:
            return {"compile": {"ok": False, "error": str(exc)}, "tests": {}}
        result = run_tests(subset, tested)
        passed += result["passed"]
        failures.extend(result["failures"])
    return {
        "compile": {"ok": True},
        "tests": {"passed": passed, "failed": len(failures), "failures": failures},
    }


def module_closure(bundle: PolicyBundle, path: str) -> dict[str, str]:
    """``path`` and the production modules whose packages it reaches through ``data.x.y``."""
    packages: dict[str, list[str]] = {}
    for module in bundle.policy_modules():
        package = bundle.package_of(module)
        if package:
            packages.setdefault(package, []).append(module)
    chosen = {path: bundle.modules[path]}
    pending = [path]
    while pending:
        text = bundle.modules[pending.pop()]
        own = bundle.package_of(path) or ""
        for package, files in packages.items():
            if package == own or f"data.{package}" in text:
                for file in files:
                    if file not in chosen:
                        chosen[file] = bundle.modules[file]
                        pending.append(file)
    return chosen


def check_bundle_child() -> None:
    """Entry point of the isolated check: JSON ``{modules, data, extra}`` on stdin → argv[1]."""
    import json
    import sys

    from meshgov.policy_backends.embedded import EmbeddedEngine

    request = json.load(sys.stdin)
    bundle = PolicyBundle.create(request["modules"], request["data"])
    result = check_bundle(EmbeddedEngine(), bundle, request["extra"])
    Path(sys.argv[1]).write_text(json.dumps(result, default=str), encoding="utf-8")


def check_bundle_isolated(
    bundle: PolicyBundle, extra_data: Mapping[str, Any], timeout: float = 300.0
) -> dict[str, Any]:
    """``check_bundle`` on the embedded engine in a child process: a crash fails the revision."""
    import json
    import subprocess
    import sys
    import tempfile

    payload = json.dumps(
        {"modules": dict(bundle.modules), "data": dict(bundle.data), "extra": dict(extra_data)},
        default=str,
    )
    with tempfile.TemporaryDirectory(prefix="meshgov-check-") as tmp:
        out = Path(tmp) / "result.json"
        why = ""
        try:
            done = subprocess.run(
                [sys.executable, "-c", CHILD_ENTRY, str(out)],
                input=payload.encode(),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            code = done.returncode
            why = f"signal {-code}" if code < 0 else f"exit code {code}"
        except subprocess.TimeoutExpired:
            why = f"no answer within {timeout:.0f} s"
        if out.is_file():
            result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
            return result
    return {
        "compile": {
            "ok": False,
            "error": f"the policy engine crashed compiling or testing this revision ({why})",
        },
        "tests": {},
    }


def run_tests(bundle: PolicyBundle, prepared: PreparedPolicy) -> dict[str, Any]:
    """Run every ``test_*`` rule; a test passes only when it evaluates to ``true``."""
    passed = 0
    failures: list[dict[str, Any]] = []
    for test in discover_tests(bundle):
        try:
            value = prepared.evaluate(f"data.{test.package}.{test.name}", {})
        except PolicyError as exc:
            failures.append(
                {
                    "test": f"{test.package}.{test.name}",
                    "path": test.path,
                    "line": test.line,
                    "error": exc.message,
                }
            )
            continue
        if value is True:
            passed += 1
        else:
            failures.append(
                {
                    "test": f"{test.package}.{test.name}",
                    "path": test.path,
                    "line": test.line,
                    "error": "did not evaluate to true",
                }
            )
    return {"passed": passed, "failed": len(failures), "failures": failures}


def gate_findings(
    gate: Gate,
    manifest: Manifest | SourcedManifest,
    previous: Manifest | None,
    catalog: Catalog,
    *,
    scan: bool = False,
) -> list[dict[str, Any]]:
    """The release gate's findings for one manifest on one revision (as JSON-able dicts).

    ``scan`` reads the ports' snapshots; only for manifests seeded from disk, never for uploads
    (their ``data`` paths would otherwise reach files on the server).
    """
    from meshgov.gate import ScanOptions, SourcedManifest

    entry = manifest if isinstance(manifest, SourcedManifest) else SourcedManifest(manifest)
    report = gate.check(
        [entry],
        previous={manifest.id: previous} if previous else {},
        catalog=[m for k, m in catalog.manifests.items() if k != manifest.id],
        scan=ScanOptions(enabled=scan),
    )
    return [f.as_dict() for f in report.findings()]


def gate_passes(findings: list[dict[str, Any]]) -> bool:
    return not any(
        f.get("severity") == "error" or f.get("kind") == "invalid_input" for f in findings
    )
