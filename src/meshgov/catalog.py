"""Reading manifests and catalogues (directories of manifests) from disk.

Also where a port's ``data:`` snapshot path is resolved, and confined: a snapshot path never leaves
the directory its manifest may read from (the catalogue directory for manifests on disk, the
domain's data directory for manifests published through the service), whatever ``..``, absolute
paths or symbolic links it uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, TypeVar, cast

from meshgov.core.collection import FreezeEvery, collection_paused, freeze_if_large
from meshgov.core.manifest import Manifest, manifest_from_document
from meshgov.core.yaml_source import SourceDocument, decode_text, load_yaml
from meshgov.errors import InputError, Location, ManifestError

T = TypeVar("T")
MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}
# Files in a catalogue directory that are not manifests.
IGNORED_NAMES = {".meshgov-waivers.yaml", "principals", "tokens.yaml"}


def read_manifest_document(text: str | bytes, source: str) -> tuple[Manifest, SourceDocument]:
    """Parse manifest bytes/text, keeping the document (for lines); problems name ``source``."""
    try:
        decoded = decode_text(text, source) if isinstance(text, bytes) else text
        doc = load_yaml(decoded, source)
    except InputError as exc:
        raise ManifestError(exc.message, exc.location) from None
    return manifest_from_document(doc), doc


def read_manifest_text(text: str | bytes, source: str) -> Manifest:
    """Parse manifest bytes/text; every problem is a ``ManifestError`` naming ``source``."""
    return read_manifest_document(text, source)[0]


# Validated manifests by the SHA-256 of their text, most recently used last: the service builds
# a catalogue revision from every stored manifest at each publication, and all but one are
# unchanged. Bounded (20,000 texts): a mesh of 10,000 products holds ~150 MB of models.
_PARSED: OrderedDict[str, Manifest] = OrderedDict()
# The same manifests with another ``source`` (as the service names them), by (digest, source):
# the same object every time, so that values derived from it (``PER_MANIFEST``) are reused.
_SOURCED: OrderedDict[tuple[str, str], Manifest] = OrderedDict()
_PARSED_LIMIT = 20_000
_PARSED_LOCK = threading.Lock()


def _remember(digest: str, manifest: Manifest) -> None:
    with _PARSED_LOCK:
        _PARSED[digest] = manifest
        _PARSED.move_to_end(digest)
        while len(_PARSED) > _PARSED_LIMIT:
            _PARSED.popitem(last=False)


def parse_manifest_cached(text: str, source: str, as_source: str | None = None) -> Manifest:
    """``read_manifest_text``, remembered by content: the same text is validated once per process.

    Errors name ``source``; the manifest returned has the source ``as_source`` (default
    ``source``), and is the same object for the same text and source.
    """
    wanted = as_source if as_source is not None else source
    digest = hashlib.sha256(text.encode()).hexdigest()
    with _PARSED_LOCK:
        manifest = _PARSED.get(digest)
        if manifest is not None:
            _PARSED.move_to_end(digest)
            sourced = _SOURCED.get((digest, wanted))
            if sourced is not None:
                _SOURCED.move_to_end((digest, wanted))
                return sourced
    if manifest is None:
        manifest = read_manifest_text(text, source)
        _remember(digest, manifest)
    if manifest.source != wanted:
        manifest = manifest.model_copy(update={"source": wanted})
    with _PARSED_LOCK:
        _SOURCED[(digest, wanted)] = manifest
        while len(_SOURCED) > _PARSED_LIMIT:
            _SOURCED.popitem(last=False)
    return manifest


def _read_manifest_file(path: str | Path) -> tuple[Manifest, SourceDocument]:
    path = Path(path)
    try:
        if not path.is_file():
            raise ManifestError("no such file", Location(file=str(path)))
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror}", Location(file=str(path))) from None
    return read_manifest_document(raw, str(path))


def load_manifest(path: str | Path) -> Manifest:
    return _read_manifest_file(path)[0]


@dataclass(frozen=True)
class DataRoot:
    """Where a manifest's relative ``data:`` paths start (``base``) and what they may not leave
    (``root``, symbolic links resolved); ``label`` names the root in messages without a path."""

    base: Path
    root: Path
    label: str = "the catalogue directory"


def data_path_problem(data: str, root: DataRoot) -> tuple[Path | None, str | None]:
    """Resolve ``data`` against ``root.base`` → (path, None), or (None, why it is refused).

    Refused: empty paths, absolute paths (POSIX or Windows), NUL bytes, and every path that ends
    outside ``root.root`` once ``..`` and symbolic links are resolved.
    """
    if not data.strip():
        return None, "is empty"
    if "\x00" in data:
        return None, "contains a NUL byte"
    if (
        PurePosixPath(data).is_absolute()
        or PureWindowsPath(data).is_absolute()
        or (PureWindowsPath(data).drive)
    ):
        return None, f"is an absolute path; it must be relative, inside {root.label}"
    try:
        boundary = root.root.resolve()
        path = (root.base / data).resolve()
    except (OSError, RuntimeError, ValueError):
        return None, "cannot be resolved (a symbolic link loop?)"
    if not path.is_relative_to(boundary):
        return None, f"leaves {root.label} (through '..' or a symbolic link)"
    return path, None


def manifest_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories into the manifest files under them (sorted); keep files as given."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if (
                    child.is_file()
                    and child.suffix in MANIFEST_SUFFIXES
                    and not any(
                        part in IGNORED_NAMES or part.startswith(".")
                        for part in child.relative_to(path).parts
                    )
                    and _looks_like_manifest(child)
                ):
                    found.append(child)
        else:
            found.append(path)
    return found


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(part in IGNORED_NAMES or part.startswith(".") for part in parts)


def _looks_like_manifest(path: Path) -> bool:
    try:
        head = path.read_bytes()[:4096]
    except OSError:
        return False
    if b"apiVersion" not in head:
        return False
    # An ODCS contract without `kind` is still one (the schema then refuses it, and says so).
    return (
        b"DataProduct" in head
        or b"DataContract" in head
        or re.search(rb"""apiVersion["']?\s*:\s*["']?v3\.""", head) is not None
    )


class PerManifest:
    """Values derived from a manifest object (its JSON for the catalogue digest, its access
    view…), remembered while the object lives in a recent catalogue: a new catalogue revision
    after one publication derives one product's values, not ten thousand. Keyed by the object's
    identity (manifests are immutable) and the value's name; the entry keeps the object alive
    so that its id is not reused. Bounded: the least recently used entries are dropped."""

    def __init__(self, limit: int = 40_000) -> None:
        self._items: OrderedDict[tuple[int, str], tuple[Manifest, Any]] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, manifest: Manifest, name: str, derive: Callable[[Manifest], T]) -> T:
        key = (id(manifest), name)
        with self._lock:
            entry = self._items.get(key)
            if entry is not None and entry[0] is manifest:
                self._items.move_to_end(key)
                return cast(T, entry[1])
        value = derive(manifest)
        with self._lock:
            self._items[key] = (manifest, value)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)
        return value


PER_MANIFEST = PerManifest()


def _manifest_digest(manifest: Manifest) -> bytes:
    """SHA-256 of the manifest's JSON: the catalogue revision hashes these, one per product."""
    return hashlib.sha256(manifest.model_dump_json(by_alias=True).encode()).digest()


@dataclass
class Catalog:
    """Every product of a mesh, keyed by ``domain/name``, with a content revision."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    revision: str = ""
    root: Path | None = None
    # Per product id: where its snapshots resolve; None = it may not have any (a published
    # manifest on a service without a data directory). Products not listed resolve next to their
    # manifest file, inside ``root`` (or the manifest's own directory without a root).
    data_roots: dict[str, DataRoot | None] = field(default_factory=dict)

    @classmethod
    def from_manifests(
        cls,
        manifests: Iterable[Manifest],
        root: Path | None = None,
        data_roots: Mapping[str, DataRoot | None] | None = None,
    ) -> Catalog:
        items: dict[str, Manifest] = {}
        for manifest in manifests:
            if manifest.id in items:
                raise ManifestError(
                    f"product {manifest.id} is defined twice "
                    f"({items[manifest.id].source} and {manifest.source})",
                    Location(file=manifest.source),
                )
            items[manifest.id] = manifest
        digest = hashlib.sha256()
        for key in sorted(items):
            digest.update(PER_MANIFEST.get(items[key], "digest", _manifest_digest))
        return cls(items, digest.hexdigest()[:16], root, dict(data_roots or {}))

    def data_root(self, manifest: Manifest) -> DataRoot | None:
        """Where ``manifest``'s snapshots resolve, and the directory they may not leave."""
        if manifest.id in self.data_roots:
            return self.data_roots[manifest.id]
        base = Path(manifest.source).parent if manifest.source else (self.root or Path("."))
        if self.root is None:
            return DataRoot(base, base, "the manifest's directory")
        return DataRoot(base, self.root)

    def resolve_data_path(self, manifest: Manifest, data: str, port: str | None = None) -> Path:
        """A snapshot path: relative to the manifest file (or, for a manifest published through
        the service, to its domain's data directory), never outside the allowed root.

        Raises ``ManifestError`` naming the product and port when the path is refused.
        """
        where = Location(file=manifest.source, product=manifest.id, port=port)
        root = self.data_root(manifest)
        if root is None:
            raise ManifestError(
                f"data {data!r}: this service has no data directory for published snapshots "
                "(set MESHGOV_DATA_DIR)",
                where,
            )
        path, problem = data_path_problem(data, root)
        if path is None:
            raise ManifestError(f"data {data!r} {problem}", where)
        return path


def port_location(manifest: Manifest, doc: SourceDocument | None, index: int, key: str) -> Location:
    """Where ``spec.outputPorts[index].<key>`` of ``manifest`` is written (line from ``doc``)."""
    return Location(
        file=manifest.source,
        line=doc.line_of(("spec", "outputPorts", index, key)) if doc else None,
        product=manifest.id,
        port=manifest.spec.output_ports[index].name,
    )


def check_data_paths(
    manifest: Manifest, doc: SourceDocument | None, root: DataRoot | None
) -> dict[int, Path]:
    """Refuse any ``data:`` of ``manifest`` that ``root`` does not allow; else the resolved
    snapshot path of each port that has one, by port index.

    The error names ``spec.outputPorts[i].data``, the manifest's source and the line.
    """
    paths: dict[int, Path] = {}
    for index, port in enumerate(manifest.spec.output_ports):
        if not port.data:
            continue
        key = f"spec.outputPorts[{index}].data"
        if root is None:
            raise ManifestError(
                f"{key} {port.data!r}: this service has no data directory for the snapshots of "
                "published manifests (set MESHGOV_DATA_DIR, or remove `data:`)",
                port_location(manifest, doc, index, "data"),
            )
        path, problem = data_path_problem(port.data, root)
        if path is None:
            raise ManifestError(
                f"{key} {port.data!r} {problem}", port_location(manifest, doc, index, "data")
            )
        paths[index] = path
    return paths


def cache_root() -> Path | None:
    """meshgov's cache directory (``MESHGOV_CACHE_DIR``; ``off`` disables every cache)."""
    configured = os.environ.get("MESHGOV_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured not in {"", "off", "0"} else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "meshgov"


# Catalogue directories whose parsed manifests stay on disk (each file: ~1.5 MB per 1,000).
KEPT_CATALOGUES = 16


def _model_digest() -> str:
    """The code that turns a file into a ``Manifest``: a cache entry of other code is stale."""
    from meshgov.core import manifest, odcs, odcs_schema, yaml_source

    digest = hashlib.sha256()
    for module in (manifest, odcs, odcs_schema, yaml_source):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


class _ParsedManifests:
    """The validated manifests of one catalogue directory, kept on disk between processes.

    Parsing and validating YAML costs milliseconds per manifest: most of a cold ``meshgov
    rewrite`` over 10,000 products. An entry is keyed by the file's path and the SHA-256 of its
    bytes (and the file holds the digest of the parsing code), so an edited file, or new code, is
    parsed again. The file is private to the user (0600 in a 0700 directory, owner checked
    before loading, as it is unpickled); any problem with it means parsing everything.
    """

    def __init__(self, base: Path) -> None:
        self.entries: dict[str, tuple[str, Manifest]] = {}
        self.changed = False
        self.file: Path | None = None
        root = cache_root()
        if root is None:
            return
        key = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:24]
        self.file = root / "manifests" / f"{key}.pickle"
        self.code = _model_digest()
        try:
            stat = self.file.stat()
            if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
                return
            # Unpickling builds millions of objects and no garbage: no collection walks them,
            # now (paused) or later (frozen, before the collector runs again).
            with self.file.open("rb") as handle, collection_paused():
                stored = pickle.load(handle)
                entries = stored.get("entries") if isinstance(stored, dict) else None
                freeze_if_large(len(entries) if isinstance(entries, dict) else 0, collect=False)
            if isinstance(stored, dict) and stored.get("code") == self.code:
                self.entries = stored["entries"]
        except (OSError, pickle.PickleError, EOFError, AttributeError, KeyError, TypeError):
            self.entries = {}

    def get(self, rel: str, digest: str) -> Manifest | None:
        entry = self.entries.get(rel)
        return entry[1] if entry is not None and entry[0] == digest else None

    def put(self, rel: str, digest: str, manifest: Manifest) -> None:
        self.entries[rel] = (digest, manifest)
        self.changed = True

    def save(self, kept: set[str]) -> None:
        if self.file is None or not (self.changed or kept != set(self.entries)):
            return
        entries = {rel: entry for rel, entry in self.entries.items() if rel in kept}
        try:
            self.file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, staging = tempfile.mkstemp(prefix=".manifests-", dir=self.file.parent)
            try:
                with os.fdopen(handle, "wb") as out:
                    pickle.dump({"code": self.code, "entries": entries}, out, protocol=5)
                os.replace(staging, self.file)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(staging)
            self._evict()
        except OSError:
            return

    def _evict(self) -> None:
        """Keep the files of the ``KEPT_CATALOGUES`` most recently saved catalogues."""
        if self.file is None:
            return
        files = sorted(
            (entry.stat().st_mtime, entry)
            for entry in self.file.parent.glob("*.pickle")
            if entry.is_file()
        )
        for _, entry in files[:-KEPT_CATALOGUES]:
            with contextlib.suppress(OSError):
                entry.unlink()


def load_catalog(root: str | Path) -> Catalog:
    """Every manifest under ``root``; a ``data:`` path that leaves ``root`` is an error (exit 2)
    naming the file and line. Validated manifests are kept on disk (``_ParsedManifests``)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"catalog directory not found: {base}", Location(file=str(base)))
    cache = _ParsedManifests(base)
    manifests: list[Manifest] = []
    seen: set[str] = set()
    # Parsed manifests live on: moved out of the collector's reach as they accumulate.
    freezer = FreezeEvery()
    for path in manifest_paths([base]):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ManifestError(f"cannot read: {exc.strerror}", Location(file=str(path))) from None
        rel = path.relative_to(base).as_posix()
        digest = hashlib.sha256(raw).hexdigest()
        seen.add(rel)
        data_root = DataRoot(path.parent, base)
        manifest = cache.get(rel, digest)
        if manifest is not None:
            if manifest.source != str(path):
                manifest = manifest.model_copy(update={"source": str(path)})
            try:
                # Checked on every load: the paths depend on the files and links around them.
                check_data_paths(manifest, None, data_root)
            except ManifestError:
                manifest = None  # parsed again below, for the error's line
        if manifest is None:
            manifest, doc = read_manifest_document(raw, str(path))
            check_data_paths(manifest, doc, data_root)
            cache.put(rel, digest, manifest)
        _remember(digest, manifest)
        manifests.append(manifest)
        freezer.tick()
    cache.save(seen)
    catalog = Catalog.from_manifests(manifests, base)
    freezer.done()
    return catalog
