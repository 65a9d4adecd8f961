"""The release gate: check manifests against the guild's policies and return a ``Report``.

Used by ``meshgov check`` and by the HTTP service (publish is gated by the same check). The policy
bundle is compiled once per ``Gate``; every manifest is then one evaluation of
``data.meshgov.main.violations`` with the input
``{"product", "previous", "scan", "identity_facts", "row_filter_facts"}`` (see
docs/architecture.md).

Inputs that cannot be read (a manifest that does not parse, a missing snapshot, a previous version
that does not parse) become ``invalid_input`` findings on their manifest, so that one bad file
neither hides the others' results nor passes: the report's exit code is then 2. Policy compile and
evaluation errors are raised (``PolicyError``, exit 4): without policies nothing can be judged.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshgov.core.graph.identity import MeshFacts
from meshgov.core.policy import PolicyBundle, PolicyEngine, PreparedPolicy
from meshgov.core.report import GRANT_LINE, Finding, ManifestResult, Report, policy_findings
from meshgov.core.waivers import (
    DEFAULT_WAIVER_FILE,
    Waiver,
    apply_waivers,
    expired_waiver_findings,
    parse_waivers,
    unmatched_waiver_findings,
)
from meshgov.core.yaml_source import SourceDocument, decode_text, load_yaml
from meshgov.errors import InputError, Location, ManifestError, MeshgovError, PolicyError
from meshgov.mesh_completeness import (
    MESH_NOT_GIVEN_RULE,
    UNKNOWN_INPUT_RULE,
    mesh_not_given,
    unknown_inputs,
)

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from meshgov.core.manifest import Manifest

# The manifest model (pydantic) and the catalogue reader are imported where first needed, so that
# the CLI can import them on a side thread while the policies compile (see cli/check.py).

VIOLATIONS_QUERY = "data.meshgov.main.violations"
VIOLATIONS_ENTRYPOINT = "meshgov/main/violations"
# The policies shipped with meshgov: <repo>/policies next to src/meshgov.
SHIPPED_POLICIES = Path(__file__).resolve().parents[2] / "policies"

Progress = Callable[[int, int], None]
MAX_WORKERS = 4
PARALLEL_MIN_MANIFESTS = 40


# --- manifests with their source lines -----------------------------------------------------------


@dataclass(frozen=True)
class SourcedManifest:
    """A manifest and the line of each port and column in its file (for finding locations)."""

    manifest: Manifest
    # (port, column) → line; ("port", "") is the port, ("", "") the document.
    lines: Mapping[tuple[str, str], int] = field(default_factory=dict)
    data_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.manifest.id


def _source_lines(
    doc: SourceDocument, port_names: Sequence[str] = ()
) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Lines of ports and columns as written, for meshgov/v1 and ODCS layouts alike.

    ``port_names`` are the ports' names in the model, in order: an ODCS schema object's name is
    normalised (``Air_Quality`` is the port ``air_quality``).
    """
    lines: dict[tuple[str, str], int] = {("", ""): doc.line_of(("metadata",)) or 1}
    data_lines: dict[str, int] = {}
    data = doc.data if isinstance(doc.data, dict) else {}
    spec = data.get("spec")
    access = spec.get("access") if isinstance(spec, dict) else None
    grants = access.get("grants") if isinstance(access, dict) else None
    for index, _ in enumerate(grants if isinstance(grants, list) else []):
        line = doc.line_of(("spec", "access", "grants", index))
        if line is not None:
            lines[(GRANT_LINE, str(index))] = line
    if isinstance(spec, dict) and isinstance(spec.get("outputPorts"), list):
        layout: tuple[tuple[str | int, ...], list[Any], str] = (
            ("spec", "outputPorts"),
            spec["outputPorts"],
            "columns",
        )
    elif isinstance(data.get("schema"), list):
        layout = (("schema",), data["schema"], "properties")
    else:
        return lines, data_lines
    prefix, ports, columns_key = layout
    for i, port in enumerate(ports):
        if not isinstance(port, dict) or not isinstance(port.get("name"), str):
            continue
        name = port_names[i] if i < len(port_names) else port["name"]
        port_path = (*prefix, i)
        lines[(name, "")] = doc.line_of((*port_path, "name")) or doc.line_of(port_path) or 1
        if "data" in port:
            data_lines[name] = doc.line_of((*port_path, "data")) or lines[(name, "")]
        columns = port.get(columns_key)
        if not isinstance(columns, list):
            continue
        for j, column in enumerate(columns):
            if isinstance(column, dict) and isinstance(column.get("name"), str):
                line = doc.line_of((*port_path, columns_key, j))
                if line is not None:
                    lines[(name, column["name"])] = line
    return lines, data_lines


def read_sourced_manifest(raw: str | bytes, source: str) -> SourcedManifest:
    """Parse manifest text, keeping lines. Raises ``ManifestError`` naming ``source``."""
    try:
        text = decode_text(raw, source) if isinstance(raw, bytes) else raw
        doc = load_yaml(text, source)
    except InputError as exc:
        raise ManifestError(exc.message, exc.location) from None
    from meshgov.core.manifest import manifest_from_document

    return sourced(manifest_from_document(doc), doc)


def sourced(manifest: Manifest, doc: SourceDocument) -> SourcedManifest:
    """``manifest`` with the lines of its ports and columns in ``doc`` (the text it came from)."""
    lines, data_lines = _source_lines(doc, [p.name for p in manifest.spec.output_ports])
    return SourcedManifest(manifest, lines, data_lines)


def load_sourced_manifest(path: Path) -> SourcedManifest:
    try:
        if not path.is_file():
            raise ManifestError(
                "no such file" if not path.exists() else "not a file", Location(file=str(path))
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror}", Location(file=str(path))) from None
    return read_sourced_manifest(raw, str(path))


# --- previous versions (--against) ---------------------------------------------------------------


# --- the gate ------------------------------------------------------------------------------------


def default_policies_dir(cwd: Path | None = None) -> Path:
    """``./policies`` when present, else the policies shipped next to the package."""
    local = (cwd or Path.cwd()) / "policies"
    if local.is_dir():
        return local
    if SHIPPED_POLICIES.is_dir():
        return SHIPPED_POLICIES
    raise InputError("no policies: pass --policies DIR (no ./policies and none shipped)")


def load_waivers(path: Path) -> list[Waiver]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("waiver file not found", Location(file=str(path))) from None
    except OSError as exc:
        raise InputError(
            f"cannot read waiver file: {exc.strerror}", Location(file=str(path))
        ) from None
    return parse_waivers(decode_text(raw, str(path)), str(path))


def default_waiver_file(cwd: Path | None = None) -> Path | None:
    # Named as found (relative to the current directory): reports show repository paths.
    path = (cwd / DEFAULT_WAIVER_FILE) if cwd is not None else Path(DEFAULT_WAIVER_FILE)
    return path if path.is_file() else None


@dataclass(frozen=True)
class ScanOptions:
    enabled: bool = True
    sample_size: int = 1000
    threshold: float = 0.2


def _row_filter_facts(manifest: Manifest) -> list[dict[str, Any]]:
    """The row filters that cannot be applied; sqlglot is loaded only when there are filters."""
    if not any(grant.row_filter is not None for grant in manifest.spec.access.grants):
        return []
    from meshgov.core.sql.grant_facts import row_filter_facts

    return row_filter_facts(manifest)


def _identity_facts(
    identity: MeshFacts, mesh: Mapping[str, Manifest], checked: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Identity facts per checked product id, against the whole catalogue (see ``MeshFacts``)."""
    facts = identity.facts(mesh, checked)
    per_product: dict[str, list[dict[str, Any]]] = {}
    for fact in facts:
        product = fact.get("product")
        if isinstance(product, str):
            per_product.setdefault(product, []).append(fact)
    return per_product


class Gate:
    """A policy bundle compiled once, checking any number of manifests."""

    def __init__(
        self,
        bundle: PolicyBundle,
        engine: PolicyEngine | None = None,
        *,
        workers: int | None = None,
    ) -> None:
        if engine is None:
            from meshgov.policy_backends.embedded import EmbeddedEngine

            engine = EmbeddedEngine()
        self.bundle = bundle
        # Compiled here, on the calling thread, so that a broken bundle fails before any manifest.
        self.prepared: PreparedPolicy = engine.prepare(bundle, entrypoints=[VIOLATIONS_ENTRYPOINT])
        from meshgov.policy_backends import engine_label

        self.engine_label = engine_label(engine)
        self.workers = workers if workers is not None else min(os.cpu_count() or 1, MAX_WORKERS)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        # Public: ``identity.facts(mesh, [])`` indexes a mesh ahead of its checks (the console).
        self.identity = MeshFacts(self.registry.get("entities"))

    def _pool(self) -> ThreadPoolExecutor:
        """Worker threads kept for the gate's life: each compiles the bundle once, on first use."""
        with self._executor_lock:
            if self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="meshgov-gate")
            return self._executor

    def close(self) -> None:
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    @classmethod
    def from_dir(cls, policies: Path, engine: PolicyEngine | None = None) -> Gate:
        from meshgov.policy_backends import load_bundle_dir

        try:
            return cls(load_bundle_dir(policies), engine)
        except PolicyError as exc:
            # Bundle paths are relative to the bundle; the user needs them relative to here.
            loc = exc.location
            if loc is not None and loc.file and not Path(loc.file).is_absolute():
                exc.location = replace(loc, file=str(policies / loc.file))
            raise

    @property
    def revision(self) -> str:
        return self.prepared.revision

    def known_rules(self) -> set[str]:
        """Every rule id a finding can carry: the policies' declared rules and meshgov's own."""
        from meshgov.core.policy_lint import declared_rules

        return declared_rules(self.bundle.modules) | {UNKNOWN_INPUT_RULE, MESH_NOT_GIVEN_RULE}

    @property
    def registry(self) -> Mapping[str, Any]:
        registry = self.bundle.data.get("registry")
        return registry if isinstance(registry, Mapping) else {}

    def evaluate(
        self,
        sourced: SourcedManifest,
        previous: Manifest | None,
        scan: Sequence[Mapping[str, Any]] = (),
        identity_facts: Sequence[Mapping[str, Any]] = (),
    ) -> list[Finding]:
        """The policy findings for one manifest (raises ``PolicyError`` when evaluation fails)."""
        manifest = sourced.manifest
        document = {
            "product": manifest.policy_document(),
            "previous": previous.policy_document() if previous is not None else None,
            "scan": list(scan),
            "identity_facts": list(identity_facts),
            "row_filter_facts": _row_filter_facts(manifest),
        }
        violations = self.prepared.evaluate(VIOLATIONS_QUERY, document)
        return policy_findings(
            violations, product=manifest.id, file=manifest.source, lines=sourced.lines
        )

    def check(
        self,
        manifests: Sequence[SourcedManifest | MeshgovError],
        *,
        sources: Sequence[str] | None = None,
        previous: Mapping[str, Manifest | MeshgovError] | None = None,
        catalog: Iterable[Manifest] = (),
        waivers: Sequence[Waiver] = (),
        scan: ScanOptions = ScanOptions(),
        today: dt.date | None = None,
        progress: Progress | None = None,
        mesh_given: bool = True,
        problems: Sequence[MeshgovError] = (),
    ) -> Report:
        """Check manifests (or the errors met reading them) and return the report.

        Args:
            manifests: the products to check; a ``MeshgovError`` stands for one that could not
                be read and becomes an ``invalid_input`` finding.
            sources: the file of each entry (for the errors); defaults to the manifest source.
            previous: the previous version by product id (or the error met reading it).
            catalog: other products of the mesh, for identity facts (checked ones win).
            waivers: active waivers suppress matching findings; expired ones become warnings.
            scan: whether and how to scan the ports' data snapshots for undeclared PII.
            today: the date waivers are judged against (UTC today by default).
            progress: called with (done, total) after each manifest.
            mesh_given: whether ``catalog`` is the rest of the mesh. When it is, an input naming
                a product of neither is an error; when not, the checks that need the mesh are
                named in a warning per product that would need it.
            problems: errors about the run rather than one manifest (an unreadable catalogue
                manifest); each becomes an ``invalid_input`` finding of the report.
        """
        today = today or dt.datetime.now(dt.UTC).date()
        previous = previous or {}
        readable = [m for m in manifests if isinstance(m, SourcedManifest)]
        duplicates = _duplicate_ids(readable)
        mesh = {m.id: m for m in catalog}
        mesh.update({m.id: m.manifest for m in readable})
        general: list[Finding] = [f for p in problems for f in Finding.from_errors(p)]
        try:
            checked_ids = [m.id for m in readable]
            facts = _identity_facts(self.identity, mesh, checked_ids) if readable else {}
        except InputError as exc:
            # The mesh cannot be indexed (the manifests parse, but do not fit together): the
            # report says so and stays invalid (exit 2), and every manifest is still listed.
            general.extend(Finding.from_errors(exc))
            facts = {}

        def check_entry(index: int) -> ManifestResult:
            entry = manifests[index]
            source = sources[index] if sources else None
            if isinstance(entry, MeshgovError):
                file = source or (entry.location.file if entry.location else None) or "<input>"
                return ManifestResult(file=file, findings=tuple(Finding.from_errors(entry)))
            result = self._check_one(
                entry, source, previous, facts, duplicates, waivers, scan, today
            )
            if mesh_given and result.product is not None:
                unknown = unknown_inputs(entry, source, mesh)
                if unknown:
                    outcome = apply_waivers(unknown, waivers, today)
                    result = _with(
                        result,
                        findings=(*result.findings, *outcome.kept),
                        waived=(*result.waived, *outcome.waived),
                    )
            return result

        total = len(manifests)
        # The embedded engine evaluates outside the GIL, so threads scale with cores; each one
        # compiles the bundle once, which pays off only for larger runs.
        if self.workers > 1 and len(readable) >= PARALLEL_MIN_MANIFESTS:
            outcomes: Iterator[ManifestResult] = self._pool().map(check_entry, range(total))
        else:
            outcomes = map(check_entry, range(total))
        results: list[ManifestResult] = []
        for result in outcomes:
            results.append(result)
            if progress:
                progress(len(results), total)
        checked = {
            m.id: {
                p.name: {c.name.lower() for c in p.columns} for p in m.manifest.spec.output_ports
            }
            for m in readable
        }
        general += expired_waiver_findings(waivers, today, checked)
        general += unmatched_waiver_findings(
            waivers, self.known_rules(), checked, set(mesh) if mesh_given else None
        )
        if not mesh_given:
            entries = [
                (entry, sources[index] if sources else None)
                for index, entry in enumerate(manifests)
                if isinstance(entry, SourcedManifest)
            ]
            general += mesh_not_given(entries, mesh, self.registry)
        return Report(
            revision=self.revision,
            results=tuple(results),
            general=tuple(general),
            engine=self.engine_label,
        )

    def _check_one(
        self,
        sourced: SourcedManifest,
        source: str | None,
        previous: Mapping[str, Manifest | MeshgovError],
        facts: Mapping[str, list[dict[str, Any]]],
        duplicates: Mapping[str, str],
        waivers: Sequence[Waiver],
        scan: ScanOptions,
        today: dt.date,
    ) -> ManifestResult:
        manifest = sourced.manifest
        file = source or manifest.source or "<manifest>"
        base = ManifestResult(file=file, product=manifest.id, version=manifest.metadata.version)
        if manifest.id in duplicates and duplicates[manifest.id] != file:
            error = ManifestError(
                f"product {manifest.id} is also defined in {duplicates[manifest.id]}",
                Location(file=file, line=sourced.lines.get(("", "")), product=manifest.id),
            )
            return _with(base, findings=(Finding.from_error(error),))
        prior = previous.get(manifest.id)
        if isinstance(prior, MeshgovError):
            error = ManifestError(f"previous version: {prior}", prior.location)
            return _with(base, findings=(Finding.from_error(error, product=manifest.id),))
        try:
            scanned = _scan(sourced, scan)
        except InputError as exc:
            return _with(base, findings=(Finding.from_error(exc, product=manifest.id),))
        findings = self.evaluate(sourced, prior, scanned, facts.get(manifest.id, ()))
        outcome = apply_waivers(findings, waivers, today)
        return _with(
            base,
            previous_version=prior.metadata.version if prior else None,
            findings=outcome.kept,
            waived=outcome.waived,
        )

    def check_paths(
        self,
        paths: Sequence[str | Path],
        *,
        against: str | None = None,
        catalog_dir: Path | None = None,
        catalog_manifests: Sequence[Manifest] | None = None,
        waivers: Sequence[Waiver] = (),
        scan: ScanOptions = ScanOptions(),
        today: dt.date | None = None,
        progress: Progress | None = None,
    ) -> Report:
        """Check manifest files and directories (the CLI's entry point).

        Raises:
            InputError: ``against`` is neither a directory nor a git revision, a path does not
                exist, or the catalogue cannot be read.
        """
        files = _expand(paths)
        if not files:
            # An empty gate must not pass: a wrong path in CI would release everything unchecked.
            shown = ", ".join(str(p) for p in paths) or "(no paths)"
            raise InputError(f"no manifests found in {shown}")
        loaded: list[SourcedManifest | MeshgovError] = []
        for path in files:
            try:
                loaded.append(load_sourced_manifest(path))
            except MeshgovError as exc:
                loaded.append(exc)
        previous = self._previous(against, files, loaded)
        catalog: list[Manifest] = []
        problems: list[MeshgovError] = []
        if catalog_dir is not None:
            if not catalog_dir.is_dir():
                raise InputError("catalog directory not found", Location(file=str(catalog_dir)))
            from meshgov.catalog import manifest_paths

            for path in manifest_paths([catalog_dir]):
                try:
                    catalog.append(load_sourced_manifest(path).manifest)
                except MeshgovError as exc:
                    problems.append(exc)
        if catalog_manifests is not None:
            catalog = [*catalog, *catalog_manifests]
        return self.check(
            loaded,
            sources=[str(p) for p in files],
            previous=previous,
            catalog=catalog,
            waivers=waivers,
            scan=scan,
            today=today,
            progress=progress,
            mesh_given=catalog_dir is not None or catalog_manifests is not None,
            problems=problems,
        )

    @staticmethod
    def _previous(
        against: str | None, files: Sequence[Path], loaded: Sequence[SourcedManifest | MeshgovError]
    ) -> dict[str, Manifest | MeshgovError]:
        if against is None:
            return {}
        from meshgov.previous_versions import load_previous_dir, load_previous_git

        against_dir = Path(against)
        if against_dir.is_dir():
            return dict(load_previous_dir(against_dir))
        by_path = load_previous_git(against, files)
        previous: dict[str, Manifest | MeshgovError] = {}
        for path, current in zip(files, loaded, strict=True):
            prior = by_path.get(path)
            if not isinstance(current, SourcedManifest) or prior is None:
                continue
            if isinstance(prior, MeshgovError):
                previous[current.id] = prior
            elif prior.id == current.id:
                previous[current.id] = prior.manifest
        return previous


def _with(base: ManifestResult, **changes: Any) -> ManifestResult:
    return replace(base, **changes)


def _duplicate_ids(manifests: Sequence[SourcedManifest]) -> dict[str, str]:
    """Product ids defined by more than one file → the first file that defined them."""
    first: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for sourced in manifests:
        file = sourced.manifest.source or ""
        if sourced.id in first and first[sourced.id] != file:
            duplicates[sourced.id] = first[sourced.id]
        first.setdefault(sourced.id, file)
    return duplicates


def _expand(paths: Sequence[str | Path]) -> list[Path]:
    # A missing path stays in the list: reading it reports the invalid input.
    from meshgov.catalog import manifest_paths

    files = manifest_paths(paths)
    unique: list[Path] = []
    seen: set[Path] = set()
    for path in files:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _scan(sourced: SourcedManifest, options: ScanOptions) -> list[dict[str, Any]]:
    manifest = sourced.manifest
    if not options.enabled or not any(p.data for p in manifest.spec.output_ports):
        return []
    from meshgov.scan import ScanSettings, scan_manifest

    settings = ScanSettings(sample_size=options.sample_size, threshold=options.threshold)
    return [f.as_dict() for f in scan_manifest(manifest, settings, sourced.data_lines)]


def check_paths(
    paths: Sequence[str | Path],
    *,
    policies: Path | None = None,
    against: str | None = None,
    catalog_dir: Path | None = None,
    waiver_file: Path | None = None,
    scan: ScanOptions = ScanOptions(),
    today: dt.date | None = None,
    progress: Progress | None = None,
) -> Report:
    """One call for the whole gate: load policies and waivers, check ``paths``."""
    waivers = load_waivers(waiver_file) if waiver_file is not None else []
    gate = Gate.from_dir(policies or default_policies_dir())
    try:
        return gate.check_paths(
            paths,
            against=against,
            catalog_dir=catalog_dir,
            waivers=waivers,
            scan=scan,
            today=today,
            progress=progress,
        )
    finally:
        gate.close()
