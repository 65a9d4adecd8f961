"""Reading manifests and catalogues (directories of manifests) from disk."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from meshgov.core.manifest import Manifest, manifest_from_document
from meshgov.core.yaml_source import decode_text, load_yaml
from meshgov.errors import InputError, Location, ManifestError

MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}
# Files in a catalogue directory that are not manifests.
IGNORED_NAMES = {".meshgov-waivers.yaml", "principals", "tokens.yaml"}


def read_manifest_text(text: str | bytes, source: str) -> Manifest:
    """Parse manifest bytes/text; every problem is a ``ManifestError`` naming ``source``."""
    try:
        decoded = decode_text(text, source) if isinstance(text, bytes) else text
        doc = load_yaml(decoded, source)
    except InputError as exc:
        raise ManifestError(exc.message, exc.location) from None
    return manifest_from_document(doc)


def load_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        if not path.is_file():
            raise ManifestError("no such file", Location(file=str(path)))
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror}", Location(file=str(path))) from None
    return read_manifest_text(raw, str(path))


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
    return b"apiVersion" in head and (b"DataProduct" in head or b"DataContract" in head)


@dataclass
class Catalog:
    """Every product of a mesh, keyed by ``domain/name``, with a content revision."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    revision: str = ""
    root: Path | None = None

    @classmethod
    def from_manifests(cls, manifests: Iterable[Manifest], root: Path | None = None) -> Catalog:
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
            digest.update(items[key].model_dump_json(by_alias=True).encode())
        return cls(items, digest.hexdigest()[:16], root)

    def resolve_data_path(self, manifest: Manifest, data: str) -> Path:
        """Snapshot paths are relative to the manifest file."""
        base = Path(manifest.source).parent if manifest.source else (self.root or Path("."))
        return (base / data).resolve()


def load_catalog(root: str | Path) -> Catalog:
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"catalog directory not found: {base}", Location(file=str(base)))
    return Catalog.from_manifests((load_manifest(p) for p in manifest_paths([base])), base)
