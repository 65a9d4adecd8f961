"""Reading text bodies (manifests, Rego) with a clear error for anything else."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from meshgov.errors import InputError

TEXT_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain", "text/x-rego")


async def text_body(request: Request, *, json_field: str) -> str:
    """The body as UTF-8 text; a JSON body must be ``{"<json_field>": "<text>"}``."""
    raw = await request.body()
    if not raw:
        raise InputError("the request body is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("the request body is not valid UTF-8") from None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", ""):
        import json

        try:
            document = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            if content_type == "":
                return text
            raise InputError("malformed JSON body") from None
        if isinstance(document, dict) and isinstance(document.get(json_field), str):
            return str(document[json_field])
        raise InputError(f'a JSON body must be {{"{json_field}": "<text>"}}')
    if content_type in TEXT_TYPES:
        return text
    raise InputError(
        f"unsupported Content-Type {content_type!r}; send application/yaml, text/plain or "
        "application/json"
    )


def text_request_body(json_field: str, description: str) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for an endpoint that reads ``text_body``."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/yaml": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": [json_field],
                        "properties": {json_field: {"type": "string"}},
                    }
                },
            },
        }
    }
