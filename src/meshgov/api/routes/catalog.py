"""``GET /v1/catalog``: the published catalogue (latest version of every product), for CI.

A domain repository checks its products against the rest of the mesh with
``meshgov check --catalog https://meshgov.example/v1/catalog`` (token in ``MESHGOV_TOKEN``), or
saves this document and passes the file.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from meshgov.api.deps import CallerDep, ServiceDep
from meshgov.catalog import read_manifest_text
from meshgov.core.principal import Principal
from meshgov.serving.state import ServingState
from meshgov.visibility import manifest_text, sees_everything, shown_manifest

router = APIRouter(prefix="/v1", tags=["products"])


class CatalogEntry(BaseModel):
    product: str
    version: str
    manifest: str  # the manifest text as published


class CatalogExport(BaseModel):
    format: str = "meshgov-catalog/v1"
    revision: str  # the catalogue's content revision
    products: list[CatalogEntry]


@router.get("/catalog", response_model=CatalogExport)
def export_catalog(service: ServiceDep, caller: CallerDep) -> CatalogExport:
    """The latest published version of every product (any token may read it): as published to
    the guild and to a product's own domain; to anyone else without the columns hidden from it
    (see ``meshgov.visibility``), as meshgov/v1 YAML."""
    state = service.state
    return CatalogExport(
        revision=state.catalog.revision,
        products=[
            CatalogEntry(
                product=key, version=stored.version, manifest=_shown(state, caller, key, stored)
            )
            for key, stored in sorted(state.products.items())
        ],
    )


def _shown(state: ServingState, caller: Principal, key: str, stored: Any) -> str:
    registered = state.catalog.manifests.get(key)
    if registered is not None and sees_everything(caller, registered):
        return str(stored.manifest)
    manifest = (
        registered  # parsed already when it is the version served
        if registered is not None and registered.metadata.version == stored.version
        else read_manifest_text(stored.manifest, f"store:{key}")
    )
    shown = shown_manifest(state, caller, manifest)
    return str(stored.manifest) if shown is manifest else manifest_text(shown)
