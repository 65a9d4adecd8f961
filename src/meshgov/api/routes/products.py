"""The products registry: publish (gated by the release check), list, get, versions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from meshgov.api.deps import CallerDep, CpuDep, ServiceDep
from meshgov.api.routes._body import text_body, text_request_body
from meshgov.api.routes.check import check_manifest_size
from meshgov.api.security import require_owner
from meshgov.catalog import read_manifest_text
from meshgov.core.principal import Principal
from meshgov.errors import NotFound
from meshgov.service import Service
from meshgov.store.base import ProductVersion
from meshgov.visibility import findings_scope, manifest_text, redact_findings, shown_manifest

router = APIRouter(prefix="/v1/products", tags=["products"])

NamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]*$", max_length=128)]


class ProductSummary(BaseModel):
    id: str
    domain: str
    name: str
    version: str
    owner: str | None
    status: str | None
    description: str | None
    published_at: dt.datetime
    publisher: str


class ProductDetail(ProductSummary):
    manifest: dict[str, Any]
    manifest_text: str


class ProductList(BaseModel):
    products: list[ProductSummary]


class VersionInfo(BaseModel):
    version: str
    published_at: dt.datetime
    publisher: str


class VersionList(BaseModel):
    product: str
    versions: list[VersionInfo]


class PublishResponse(BaseModel):
    published: bool
    product: str
    version: str
    revision: str
    findings: list[dict[str, Any]]


def _publisher(version: ProductVersion) -> str:
    # Seeded versions record their file; callers only need to know they came from disk.
    return "seed" if version.publisher.startswith("file:") else version.publisher


def _summary(version: ProductVersion) -> dict[str, Any]:
    manifest = read_manifest_text(version.manifest, f"store:{version.product_id}")
    return {
        "id": version.product_id,
        "domain": version.domain,
        "name": version.name,
        "version": version.version,
        "owner": manifest.metadata.owner,
        "status": manifest.metadata.status.value if manifest.metadata.status else None,
        "description": manifest.metadata.description,
        "published_at": dt.datetime.fromtimestamp(version.published_at, dt.UTC),
        "publisher": _publisher(version),
    }


@router.get("", response_model=ProductList)
def list_products(service: ServiceDep, _caller: CallerDep) -> ProductList:
    """The latest version of every registered product."""
    versions = sorted(service.store.latest_products(), key=lambda v: v.product_id)
    return ProductList(products=[ProductSummary(**_summary(v)) for v in versions])


@router.get("/{domain}/{name}", response_model=ProductDetail)
def get_product(
    domain: NamePath, name: NamePath, service: ServiceDep, caller: CallerDep
) -> ProductDetail:
    """The latest version, with its manifest (the columns hidden from the caller absent, see
    ``meshgov.visibility``)."""
    latest = service.product_versions(domain, name)[-1]
    return _detail(service, caller, latest)


@router.get("/{domain}/{name}/versions", response_model=VersionList)
def list_versions(
    domain: NamePath, name: NamePath, service: ServiceDep, _caller: CallerDep
) -> VersionList:
    versions = service.product_versions(domain, name)
    return VersionList(
        product=f"{domain}/{name}",
        versions=[
            VersionInfo(
                version=v.version,
                published_at=dt.datetime.fromtimestamp(v.published_at, dt.UTC),
                publisher=_publisher(v),
            )
            for v in versions
        ],
    )


@router.get("/{domain}/{name}/versions/{version}", response_model=ProductDetail)
def get_version(
    domain: NamePath,
    name: NamePath,
    version: Annotated[str, Path(max_length=128)],
    service: ServiceDep,
    caller: CallerDep,
) -> ProductDetail:
    for stored in service.product_versions(domain, name):
        if stored.version == version:
            return _detail(service, caller, stored)
    raise NotFound(f"{domain}/{name} has no version {version}")


def _detail(service: Service, caller: Principal, version: ProductVersion) -> ProductDetail:
    manifest = read_manifest_text(version.manifest, f"store:{version.product_id}")
    shown = shown_manifest(service.state, caller, manifest)
    return ProductDetail(
        **_summary(version),
        manifest=shown.model_dump(mode="json", by_alias=True, exclude_none=True),
        # The text as published only to whom sees every column; else the manifest as shown.
        manifest_text=version.manifest if shown is manifest else manifest_text(shown),
    )


@router.put(
    "/{domain}/{name}",
    response_model=PublishResponse,
    status_code=201,
    responses={
        422: {"model": PublishResponse, "description": "the release gate failed"},
        413: {"description": "the manifest is larger than MESHGOV_MAX_MANIFEST_BYTES"},
    },
    openapi_extra=text_request_body("manifest", "The manifest (meshgov/v1 or ODCS v3)."),
)
async def publish_product(
    domain: NamePath,
    name: NamePath,
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    pool: CpuDep,
) -> JSONResponse:
    """Publish a version; only the domain's owners may, and only when the release gate passes.

    Past the time budget the answer is 422 ``time_budget_exceeded`` and nothing is published
    (the service checks the deadline before it writes).
    """
    require_owner(caller, domain)
    text = await text_body(request, json_field="manifest")
    check_manifest_size(service, text)
    revision = service.state.revision
    result = await pool.run_to_completion(service.publish, caller, domain, name, text)
    body = PublishResponse(
        published=result.published,
        product=result.product,
        version=result.version,
        revision=revision,
        # An owner sees its own product whole, not necessarily the products it reads.
        findings=redact_findings(
            service.state, caller, result.findings, *findings_scope(text, f"{domain}/{name}")
        ),
    )
    return JSONResponse(body.model_dump(), status_code=201 if result.published else 422)
