"""Where ``meshgov check --catalog`` finds the rest of the mesh: a directory, a file, or a URL.

A domain repository holds only its own products. The rest of the mesh (for the identity rules and
for inputs) comes from the catalogue the service publishes: ``GET /v1/catalog`` read over HTTP
(``--catalog https://meshgov.example/v1/catalog``, token in ``MESHGOV_TOKEN``), or that document
saved to a file (``curl … > mesh.json``, ``--catalog mesh.json``), or a directory of manifests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from meshgov.catalog import manifest_paths, read_manifest_text
from meshgov.core.manifest import Manifest
from meshgov.errors import BackendUnavailable, InputError, Location, MeshgovError

EXPORT_FORMAT = "meshgov-catalog/v1"
TOKEN_VARIABLE = "MESHGOV_TOKEN"
TIMEOUT_SECONDS = 30.0


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def load_catalog_source(spec: str) -> list[Manifest]:
    """The manifests of a catalogue directory, an exported catalogue file, or its URL."""
    if is_url(spec):
        return _parse_export(_fetch(spec), spec)
    path = Path(spec)
    if path.is_dir():
        from meshgov.gate import load_sourced_manifest

        return [load_sourced_manifest(p).manifest for p in manifest_paths([path])]
    if not path.is_file():
        raise InputError(
            "catalogue not found: give a directory of manifests, a file saved from "
            "GET /v1/catalog, or its https:// URL",
            Location(file=spec),
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the catalogue: {exc}", Location(file=spec)) from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InputError(
            f"not a catalogue export (JSON from GET /v1/catalog): {exc}", Location(file=spec)
        ) from None
    return _parse_export(document, spec)


def _fetch(url: str) -> Any:
    import httpx

    token = os.environ.get(TOKEN_VARIABLE)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url, headers=headers, timeout=TIMEOUT_SECONDS, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise BackendUnavailable(
            f"catalogue {url} unreachable: {type(exc).__name__}: {exc}"
        ) from None
    if response.status_code == 401:
        raise InputError(f"catalogue {url} answered 401: set {TOKEN_VARIABLE} to a meshgov token")
    if response.status_code != 200:
        raise BackendUnavailable(f"catalogue {url} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise InputError(f"catalogue {url} did not answer JSON (is it …/v1/catalog?)") from None


def _parse_export(document: Any, source: str) -> list[Manifest]:
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InputError(
            f"not a meshgov catalogue export (expected format {EXPORT_FORMAT!r} from "
            "GET /v1/catalog)",
            Location(file=source),
        )
    entries = document.get("products")
    if not isinstance(entries, list):
        raise InputError("products: expected a list", Location(file=source))
    manifests: list[Manifest] = []
    for index, entry in enumerate(entries):
        text = entry.get("manifest") if isinstance(entry, dict) else None
        if not isinstance(text, str):
            raise InputError(f"products[{index}].manifest: expected text", Location(file=source))
        try:
            manifests.append(read_manifest_text(text, f"{source}#products[{index}]"))
        except MeshgovError as exc:
            raise InputError(f"products[{index}]: {exc}", Location(file=source)) from None
    return manifests
