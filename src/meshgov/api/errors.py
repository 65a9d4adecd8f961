"""Maps errors to HTTP in one place: ``MeshgovError.code`` → status, ``{code, message, errors}``.

Bad input (malformed JSON, wrong types, oversized bodies, unknown routes) is a 4xx with a clear
message; only the service's own faults are 5xx, and their details stay in the server log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from meshgov.errors import ManifestErrors, MeshgovError

log = logging.getLogger("meshgov.api")

_HTTP_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "access_denied",
    404: "resource_not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "resource_conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}


# Validation errors raised by meshgov's own validators whose type is a more precise error code.
_DETAIL_CODES = frozenset({"invalid_dialect"})


def error_body(
    code: str, message: str, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors or []}


def _detail(exc: MeshgovError) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.location is not None:
        detail["location"] = exc.location.as_dict()
    return detail


def meshgov_error_response(exc: MeshgovError) -> JSONResponse:
    # Every error of a manifest (an ODCS contract's schema errors) is one entry of "errors".
    details = (
        [_detail(e) for e in exc.errors] if isinstance(exc, ManifestErrors) else [_detail(exc)]
    )
    status = exc.http_status
    if status >= 500:
        log.warning("service fault %s: %s", exc.code, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        error_body(exc.code, str(exc), details), status_code=status, headers=headers
    )


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    for error in errors[:20]:
        loc = ".".join(str(p) for p in error.get("loc", ()))
        kind = str(error.get("type", ""))
        if kind == "json_invalid":
            message = "malformed JSON body"
            ctx = error.get("ctx") or {}
            if isinstance(ctx, dict) and ctx.get("error"):
                message += f": {ctx['error']}"
        else:
            message = f"{loc}: {error.get('msg', 'invalid value')}"
        code = kind if kind in _DETAIL_CODES else "invalid_input"
        details.append({"code": code, "message": message, "location": loc})
    first = details[0]["message"] if details else "invalid request"
    more = len(errors) - 1
    if more > 0:
        first += f" (and {more} more)"
    return first, details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MeshgovError)
    async def _meshgov(_: Request, exc: MeshgovError) -> JSONResponse:
        return meshgov_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_message(list(exc.errors()))
        return JSONResponse(error_body("invalid_input", message, details), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # The service's own fault: log it, answer without internals (and deny).
        log.exception("unexpected error: %s", type(exc).__name__)
        return JSONResponse(
            error_body("internal_error", f"internal error ({type(exc).__name__}); denied"),
            status_code=500,
        )
