"""The OpenAPI schema (``/openapi.json``) as Cove really answers.

FastAPI documents a 422 ``HTTPValidationError`` on every route that takes input; Cove answers a
validation error with 400 in the API's own error shape (:mod:`cove.api.errors`). The schema is
rewritten once, when first asked for: each operation's 422 becomes a 400, and every operation
gets a ``default`` response, both with the error schema of its API (``OpenAIError`` for ``/v1``
and ``/web``, ``OllamaError`` for ``/api``). Streaming routes declare their stream's media type
with :data:`SSE_OR_JSON` / :data:`NDJSON_OR_JSON` (``responses=``) or :class:`EventStream`
(``response_class=``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import StreamingResponse

from cove.api.errors import is_ollama_path

OPENAI_ERROR: dict[str, Any] = {
    "title": "OpenAIError",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string", "examples": ["invalid_request_error"]},
            "param": {"anyOf": [{"type": "string"}, {"type": "null"}],
                      "description": "the request field at fault, e.g. messages[0].role"},
            "code": {"anyOf": [{"type": "string"}, {"type": "null"}],
                     "examples": ["invalid_request"]},
        },
    }},
}
OLLAMA_ERROR: dict[str, Any] = {
    "title": "OllamaError",
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}

_STREAM_TEXT = {"schema": {"type": "string"}}
SSE_OR_JSON: dict[int | str, dict[str, Any]] = {200: {
    "description": "JSON, or with `stream: true` server-sent events (`data: {chunk}` lines, "
    "ending with `data: [DONE]`, or with one error event)",
    "content": {"text/event-stream": _STREAM_TEXT},
}}
NDJSON_OR_JSON: dict[int | str, dict[str, Any]] = {200: {
    "description": "With `stream: true` (the default) one JSON object per line, the last with "
    "`done: true` (or one `{\"error\"}` line); with `stream: false` one JSON object",
    "content": {"application/x-ndjson": _STREAM_TEXT},
}}


class EventStream(StreamingResponse):
    """A streaming response of server-sent events (as ``response_class``, it documents the
    route's 200 as ``text/event-stream``)."""

    media_type = "text/event-stream"


def _error_response(description: str, ref: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": ref}}}}


def fix_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's) with Cove's error statuses and shapes; changed in place and
    returned."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["OpenAIError"] = OPENAI_ERROR
    schemas["OllamaError"] = OLLAMA_ERROR
    for path, item in schema.get("paths", {}).items():
        ref = "#/components/schemas/" + ("OllamaError" if is_ollama_path(path) else "OpenAIError")
        for op in item.values():
            responses = op.setdefault("responses", {})
            if responses.pop("422", None) is not None or "requestBody" in op:
                responses["400"] = _error_response(
                    "Invalid request: malformed JSON, or a field at fault (named in the message"
                    " and, on OpenAI-shaped errors, in `param`)", ref)
            responses.setdefault("default", _error_response(
                "Any other error (401, 404, 413, 503, ...), in this API's error shape", ref))
    text = str(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"/{name}'" not in text:
            schemas.pop(name, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the fixed schema (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = fix_schema(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
