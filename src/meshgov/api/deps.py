"""Dependencies of the routes, as ``Annotated`` aliases so signatures stay short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from meshgov.api.security import TokenRegistry
from meshgov.core.principal import Principal
from meshgov.service import Service


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _tokens(request: Request) -> TokenRegistry:
    tokens: TokenRegistry = request.app.state.tokens
    return tokens


def _caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    principal = _tokens(request).authenticate(authorization)
    request.state.principal_id = principal.id
    return principal


def _optional_caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal | None:
    """The caller, or None when anonymous Data API access is enabled and no token is sent."""
    if authorization is None and request.app.state.settings.data_api_anonymous:
        return None
    return _caller(request, authorization)


ServiceDep = Annotated[Service, Depends(_service)]
TokensDep = Annotated[TokenRegistry, Depends(_tokens)]
CallerDep = Annotated[Principal, Depends(_caller)]
OptionalCallerDep = Annotated[Principal | None, Depends(_optional_caller)]
