"""The guild's side of the service: staging, activating and rolling back policy revisions.

A staged revision is compiled and tested (in a child process: a module can crash the native
engine), linted, and dry-run against every registered product and known principal; only a revision
whose compile and tests passed can become active.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshgov.catalog import Catalog, read_manifest_document
from meshgov.core.manifest import Manifest
from meshgov.core.policy import PolicyBundle
from meshgov.core.registry import validate_registry
from meshgov.core.yaml_source import SourceDocument
from meshgov.errors import Conflict, InputError, MeshgovError, NotFound, PolicyError
from meshgov.gate import Gate, SourcedManifest, sourced
from meshgov.gateway import Gateway, access_impact, registered_purposes
from meshgov.serving.policy_checks import check_bundle_isolated
from meshgov.serving.registry import gate_findings, gate_passes
from meshgov.serving.state import ServiceCore, ServingState, catalog_data, manifest_of
from meshgov.store.base import (
    AUDIT_ACTIVATED,
    AUDIT_ROLLED_BACK,
    AUDIT_STAGED,
    REVISION_FAILED,
    REVISION_VALID,
    PolicyRevision,
)

# Bootstrap re-stages the policies directory on every start; only a new revision is audited.
_SYSTEM_ACTOR_PREFIX = "system:"

# Compile-and-test results by (bundle revision, catalogue revision): same content, same result, so
# restarts and repeated stagings in one process do not pay for them again.
_CHECKED: dict[tuple[str, str, str], dict[str, Any]] = {}


class PolicyLifecycle(ServiceCore):
    """Stages, activates and rolls back revisions of the policy bundle."""

    def stage_bundle(self, bundle: PolicyBundle, *, author: str) -> PolicyRevision:
        """Compile, test and dry-run ``bundle``; store it as a revision (valid or failed).

        The same content hash gives the same result, so a known revision is not checked again.
        """
        known = self.store.revision(bundle.revision)
        if known is not None:
            if not author.startswith(_SYSTEM_ACTOR_PREFIX):
                self._audit(author, AUDIT_STAGED, known.id)
            return known
        report: dict[str, Any] = {"compile": {"ok": False}, "tests": {}, "impact": []}
        status = REVISION_FAILED
        state = self._state
        catalog = state.catalog if state else Catalog()
        # Candidates are compiled, tested and dry-run on the engine that would serve them (an
        # OPA server holds only the active revision: then on the in-process default).
        engine = self.staging_engine
        cache_key = (bundle.revision, catalog.revision, engine.name)
        checked = _CHECKED.get(cache_key)
        if checked is None:
            # A module can crash the native engine: compile and test in a child process.
            checked = check_bundle_isolated(bundle, catalog_data(catalog), engine=engine.name)
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
            try:
                gate = Gate(bundle, engine)
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
        self._audit(author, AUDIT_STAGED, revision.id)
        return revision

    def _audit(self, actor: str, action: str, revision: str, previous: str | None = None) -> None:
        self.store.append_audit(actor, action, revision, previous, time.time())

    def _impact(self, gate: Gate, state: ServingState | None) -> list[dict[str, Any]]:
        """Findings that would change on every registered product (latest version)."""
        if state is None:
            return []
        previous = {
            key: self._previous_version(manifest)
            for key, manifest in state.catalog.manifests.items()
        }
        return policy_impact(state.gate, gate, state.catalog, previous, self._impact_sources(state))

    def _impact_sources(self, state: ServingState) -> dict[str, SourcedManifest]:
        """Each product as stored, with its lines, named relative to the catalogue directory.

        A seeded product is named by its path under the catalogue (``commerce/orders.yaml``,
        never the server's absolute path); one published through the API by
        ``store:domain/name@version``.
        """
        catalog_dir = self.settings.catalog_dir
        root = Path(catalog_dir).resolve() if catalog_dir is not None else None
        sources: dict[str, SourcedManifest] = {}
        for key, stored in state.products.items():
            name = f"store:{key}@{stored.version}"
            if stored.publisher.startswith("file:"):
                path = Path(stored.publisher.removeprefix("file:")).resolve()
                name = (
                    path.relative_to(root).as_posix()
                    if root and path.is_relative_to(root)
                    else path.name
                )
            try:
                manifest, doc = read_manifest_document(stored.manifest, name)
            except MeshgovError:
                continue  # the catalogue entry is used as is; its findings name no lines
            sources[key] = sourced(manifest.model_copy(update={"source": name}), doc)
        return sources

    def _access_impact(
        self, bundle: PolicyBundle, state: ServingState | None
    ) -> list[dict[str, Any]]:
        """Access decisions that would change, for every port × known principal × purpose."""
        if state is None or not self.principals:
            return []
        candidate = Gateway(state.catalog, bundle, self.staging_engine)
        purposes = registered_purposes(state.bundle) | registered_purposes(bundle)
        return access_impact(state.gateway, candidate, self.principals, purposes)

    def _previous_version(self, manifest: Manifest) -> Manifest | None:
        versions = self.store.product_versions(manifest.metadata.domain, manifest.metadata.name)
        older = [v for v in versions if v.version != manifest.metadata.version]
        return manifest_of(older[-1]) if older else None

    def stage_file(
        self, author: str, path: str, content: str | None, *, base: str | None = None
    ) -> PolicyRevision:
        """Change (or delete, ``content=None``) one file and stage the result.

        The change applies to revision ``base`` (a staged one too) or, by default, the active one.
        """
        return self.stage_files(author, {path: content}, base=base)

    def stage_files(
        self, author: str, changes: Mapping[str, str | None], *, base: str | None = None
    ) -> PolicyRevision:
        """Change several files at once (a rule and its test) and stage them as one revision.

        ``changes`` maps a path to its new content, or ``None`` to remove the file; the change
        applies to revision ``base`` (stored, staged or active) or, by default, the active one.
        """
        if not changes:
            raise InputError("a change names at least one file")
        bundle = self._base_bundle(base)
        modules = dict(bundle.modules)
        registry = dict(bundle.data.get("registry", {}))
        docs: dict[str, SourceDocument] = {}
        for path, content in changes.items():
            clean = _policy_path(path)
            if clean.endswith(".rego"):
                if content is None:
                    if clean not in modules:
                        raise NotFound(f"no policy module {clean}")
                    del modules[clean]
                else:
                    modules[clean] = content
                continue
            stem = _data_stem(clean)
            if content is None:
                registry.pop(stem, None)
                docs.pop(stem, None)
            else:
                docs[stem] = _parse_data_file(clean, content)
                registry[stem] = docs[stem].data
        # Refused before anything is stored: Rego would read a misshapen file silently.
        validate_registry(registry, docs)
        data = {**bundle.data, "registry": registry}
        return self.stage_bundle(PolicyBundle.create(modules, data), author=author)

    def _base_bundle(self, base: str | None) -> PolicyBundle:
        if base is None:
            return self.state.bundle
        revision = self.store.revision(base)
        if revision is None:
            raise NotFound(f"no policy revision {base} to stage on (see GET /v1/policies)")
        return PolicyBundle.create(revision.modules, revision.data)

    def activate(
        self, actor: str, revision_id: str, *, action: str = AUDIT_ACTIVATED
    ) -> PolicyRevision:
        with self._write_lock:
            revision = self.store.revision(revision_id)
            if revision is None:
                raise NotFound(f"no policy revision {revision_id}")
            if not revision.activatable:
                raise Conflict(
                    f"revision {revision_id} failed to compile or test and cannot be activated"
                )
            previous = self.active_revision_id()
            now = time.time()
            self.store.activate(revision_id, actor, now)
            self.store.append_audit(actor, action, revision_id, previous, now)
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
            return self.activate(actor, stack[-2], action=AUDIT_ROLLED_BACK)


def policy_impact(
    before: Gate,
    after: Gate,
    catalog: Catalog,
    previous: Mapping[str, Manifest | None] | None = None,
    sources: Mapping[str, SourcedManifest] | None = None,
    *,
    scan: bool = False,
) -> list[dict[str, Any]]:
    """The gate findings that change between two revisions, for every product of ``catalog``.

    One entry per product whose findings differ: ``added`` and ``removed`` findings, and whether
    the product passes before and after (a product that starts failing blocks its next release).
    ``sources`` gives products their file name and lines for the findings' locations.
    """
    changes: list[dict[str, Any]] = []
    for key in sorted(catalog.manifests):
        manifest = catalog.manifests[key]
        entry: Manifest | SourcedManifest = (sources or {}).get(key) or manifest
        prior = (previous or {}).get(key)
        results = []
        for gate in (before, after):
            try:
                results.append(gate_findings(gate, entry, prior, catalog, scan=scan))
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
