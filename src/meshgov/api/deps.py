"""Dependencies of the routes, as ``Annotated`` aliases so signatures stay short.

All are ``async``: they only read app state, and sync dependencies would each cost a thread hop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from meshgov.api.offload import CpuPool
from meshgov.api.security import TokenRegistry
from meshgov.core.principal import Principal
from meshgov.service import Service


async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def _tokens(request: Request) -> TokenRegistry:
    tokens: TokenRegistry = request.app.state.tokens
    return tokens


async def _cpu(request: Request) -> CpuPool:
    pool: CpuPool = request.app.state.cpu
    return pool


async def _caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    tokens: TokenRegistry = request.app.state.tokens
    principal = tokens.authenticate(authorization)
    request.state.principal_id = principal.id
    return principal


async def _optional_caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal | None:
    """The caller, or None when anonymous Data API access is enabled and no token is sent."""
    if authorization is None and request.app.state.settings.data_api_anonymous:
        return None
    return await _caller(request, authorization)


def service_and_caller(request: Request) -> tuple[Service, Principal]:
    """What ``ServiceDep`` and ``CallerDep`` give, without dependency resolution (hot paths)."""
    tokens: TokenRegistry = request.app.state.tokens
    principal = tokens.authenticate(request.headers.get("authorization"))
    request.state.principal_id = principal.id
    service: Service = request.app.state.service
    return service, principal


ServiceDep = Annotated[Service, Depends(_service)]
TokensDep = Annotated[TokenRegistry, Depends(_tokens)]
CpuDep = Annotated[CpuPool, Depends(_cpu)]
CallerDep = Annotated[Principal, Depends(_caller)]
OptionalCallerDep = Annotated[Principal | None, Depends(_optional_caller)]
