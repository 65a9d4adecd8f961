"""The registry side of the service: the release gate on a revision, and publishing versions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from meshgov.catalog import (
    Catalog,
    check_data_paths,
    port_location,
    read_manifest_document,
    read_manifest_text,
)
from meshgov.core.manifest import SEMVER, Manifest
from meshgov.core.principal import Principal
from meshgov.core.yaml_source import SourceDocument
from meshgov.errors import InputError, Location, ManifestError, NotFound
from meshgov.gate import Gate, SourcedManifest, sourced
from meshgov.limits import check_deadline
from meshgov.serving.decisions import DecisionLogging
from meshgov.serving.state import ServingState, data_root_of, manifest_of
from meshgov.store.base import ProductVersion


@dataclass(frozen=True)
class PublishResult:
    published: bool
    product: str
    version: str
    findings: list[dict[str, Any]]


class Registry(DecisionLogging):
    """Checks manifests against the active revision and publishes the versions that pass."""

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
            previous = manifest_of(stored) if stored else None
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
            previous = manifest_of(stored) if stored else None
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
                result={
                    "version": manifest.metadata.version,
                    "findings": len(found),
                    "checked": [finding_summary(f) for f in found],
                },
                revision=state.revision,
            )
            if not passed:
                return PublishResult(False, manifest.id, manifest.metadata.version, found)
            check_deadline()  # past the request's budget nothing is written (meshgov.limits)
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


def finding_summary(finding: dict[str, Any]) -> dict[str, Any]:
    """What the decision log keeps of one release-gate finding (rule, message, fix, file:line)."""
    location = finding.get("location") or {}
    return {
        "rule": finding.get("rule"),
        "severity": finding.get("severity"),
        "message": finding.get("message"),
        "fix": finding.get("fix"),
        "file": location.get("file"),
        "line": location.get("line"),
    }


def gate_passes(findings: list[dict[str, Any]]) -> bool:
    return not any(
        f.get("severity") == "error" or f.get("kind") == "invalid_input" for f in findings
    )
