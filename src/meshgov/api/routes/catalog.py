"""``GET /v1/catalog``: the published catalogue (latest version of every product), for CI.

A domain repository checks its products against the rest of the mesh with
``meshgov check --catalog https://meshgov.example/v1/catalog`` (token in ``MESHGOV_TOKEN``), or
saves this document and passes the file.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from meshgov.api.deps import CallerDep, ServiceDep

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
def export_catalog(service: ServiceDep, _caller: CallerDep) -> CatalogExport:
    """The latest published version of every product, as published (any token may read it)."""
    state = service.state
    return CatalogExport(
        revision=state.catalog.revision,
        products=[
            CatalogEntry(product=key, version=stored.version, manifest=stored.manifest)
            for key, stored in sorted(state.products.items())
        ],
    )
