"""ODCS v3.1/v3.2 data contracts normalised into the meshgov model (to be written)."""

from __future__ import annotations

from meshgov.core.manifest import Manifest
from meshgov.core.yaml_source import SourceDocument
from meshgov.errors import Location, ManifestError


def manifest_from_odcs(doc: SourceDocument) -> Manifest:
    raise ManifestError("ODCS contracts are not supported yet", Location(file=doc.source))
