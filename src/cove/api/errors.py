"""Render every error as the API's own shape, chosen by URL path.

``/api/*`` (the Ollama API) gets Ollama's ``{"error": "message"}``; ``/v1/messages*`` (the
Anthropic API) gets Anthropic's ``{"type": "error", "error": {"type", "message"}}``; ``/v1/*``
(and anything not claimed by another API) gets OpenAI's ``{"error": {"message", "type", "param",
"code"}}``. The status code is the error's own, except that Anthropic's API answers 529 where
Cove is overloaded (503). Client mistakes are 4xx; only a real server fault is 5xx, and its
message does not leak internals: a 5xx error is logged (with its traceback and the exception
that caused it) under a short reference, and the client is told only that reference
(:func:`public`), unless its class says its message was written for the client
(``CoveError.expose``: a full queue, a failed pull, a model too big for memory). Every body built
here, whole responses and the error events that end streams, goes through :func:`public`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cove.errors import ContextLengthExceeded, CoveError, EngineFailure, InvalidRequest

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}

_HTTP_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def as_cove_error(exc: BaseException) -> CoveError:
    """``exc`` itself when it is a :class:`CoveError`, else a 500 ``EngineFailure`` caused by
    it (``__cause__``, so that :func:`public` logs its traceback)."""
    if isinstance(exc, CoveError):
        return exc
    err = EngineFailure(f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def public(err: CoveError) -> CoveError:
    """What the client may see of ``err``: ``err`` itself for a client error (4xx) or an
    error whose message is meant for the client (``expose``); for any other server error a
    copy with the same status, type, code and headers whose message is only a reference, the
    full error (message, traceback, cause) being logged under that reference."""
    if err.status < 500 or err.expose:
        return err
    ref = err.reference
    if ref is None:  # log once, however many bodies are built from it
        ref = err.reference = secrets.token_hex(4)
        log.error("server error %s (%s): %s", ref, err.code, err.message,
                  exc_info=(type(err), err, err.__traceback__))
    out = CoveError(f"internal server error (reference {ref}; the details are in the "
                    "server log)", code=err.code, headers=err.headers)
    out.status, out.type = err.status, err.type
    return out


def openai_error_body(err: CoveError) -> dict[str, Any]:
    """OpenAI's error object for ``err`` (a 5xx scrubbed by :func:`public`)."""
    err = public(err)
    return {
        "error": {
            "message": err.message,
            "type": err.type,
            "param": err.param,
            "code": err.code,
        }
    }


def ollama_error_body(err: CoveError) -> dict[str, Any]:
    """Ollama's error object for ``err``: ``{"error": "message"}`` (a 5xx scrubbed by
    :func:`public`)."""
    return {"error": public(err).message}


def ndjson_error_line(exc: BaseException) -> str:
    """One NDJSON line carrying an Ollama error (ends a failed stream); an exception that is
    not a :class:`CoveError` is reported as a scrubbed 500."""
    return json.dumps(ollama_error_body(as_cove_error(exc))) + "\n"


def is_ollama_path(path: str) -> bool:
    """Whether ``path`` belongs to the Ollama API."""
    return path == "/api" or path.startswith("/api/")


def is_anthropic_path(path: str) -> bool:
    """Whether ``path`` belongs to the Anthropic Messages API."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


# Anthropic's error types by status (docs.anthropic.com, "Errors"); its API says 529
# overloaded_error where Cove's queue is full (503), which its SDKs retry like any 5xx.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def dotted(param: str) -> str:
    """A field path as Anthropic writes it (``messages[0].content`` is ``messages.0.content``)."""
    return re.sub(r"\[(\d+)\]", r".\1", param)


def anthropic_status(err: CoveError) -> int:
    """The status of ``err`` on the Anthropic API (503 becomes 529)."""
    return 529 if err.status == 503 else err.status


def anthropic_error_body(err: CoveError) -> dict[str, Any]:
    """Anthropic's error object: ``{"type": "error", "error": {"type", "message"}}``. The
    field at fault leads the message (``messages.0.content.1: ...``, as Anthropic writes it:
    its errors have no ``param``); a prompt over the context window reads ``prompt is too long:
    N tokens > M maximum``, the wording clients look for to trim a conversation."""
    err = public(err)
    status = anthropic_status(err)
    kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    message = err.message
    if isinstance(err, ContextLengthExceeded):
        more = "at least " if "at least" in message else ""
        message = f"prompt is too long: {more}{err.prompt_tokens} tokens > {err.n_ctx} maximum"
    elif err.param:
        message = f"{dotted(err.param)}: {message.removeprefix(_invalid_value(err.param))}"
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_sse_error(exc: BaseException) -> str:
    """One ``event: error`` SSE event carrying an Anthropic error (ends a failed stream); an
    exception that is not a :class:`CoveError` is reported as a scrubbed 500."""
    return f"event: error\ndata: {json.dumps(anthropic_error_body(as_cove_error(exc)))}\n\n"


def sse_error_event(exc: BaseException) -> str:
    """One SSE ``data:`` event carrying an OpenAI error object (ends a failed stream); an
    exception that is not a :class:`CoveError` is reported as a scrubbed 500."""
    return f"data: {json.dumps(openai_error_body(as_cove_error(exc)))}\n\n"


def render(err: CoveError, path: str = "") -> JSONResponse:
    """The JSON response for ``err`` with its status and headers, shaped for the API that
    ``path`` belongs to."""
    if is_anthropic_path(path):
        return JSONResponse(anthropic_error_body(err), status_code=anthropic_status(err),
                            headers=err.headers)
    body = ollama_error_body(err) if is_ollama_path(path) else openai_error_body(err)
    return JSONResponse(body, status_code=err.status, headers=err.headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request, fallback: str = "") -> list[str]:
    """The methods some route of the app takes at ``request``'s path, for ``Allow`` (FastAPI
    names only the first matching route's, though a path has one route per method). Each
    method is tried against the app's routes (static-file mounts, which match any method,
    aside); with none found, ``fallback`` (the ``Allow`` raised), else ``GET, HEAD``."""
    from starlette.routing import Match, Mount

    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    base = {"type": "http", "path": request.url.path, "root_path": "", "headers": [],
            "query_string": b""}
    found = [m for m in _METHODS
             if any(r.matches({**base, "method": m})[0] is Match.FULL for r in routes)]
    return found or [m.strip() for m in fallback.split(",") if m.strip()] or ["GET", "HEAD"]


def loc_to_param(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a field path (``messages[0].content``): ``body`` and
    union members' names (``list[union[int,str]]``, ``str``, ...) are left out."""
    parts = [p for p in loc if p not in ("body",)]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif (not str(p).startswith(("function-", "tagged-union"))
              and "[" not in str(p)  # union members: list[...], str, int, bool
              and p not in ("str", "int", "bool")):
            out += ("." if out else "") + str(p)
    return out


def _invalid_value(param: str) -> str:
    """How a validation error's message starts (Anthropic's shape puts the field first)."""
    return f"invalid value for '{param}': "


def _json_problem(err: Any) -> str:
    """``malformed JSON body: Expecting value at character 7`` from a ``json_invalid`` error
    (its ``ctx.error`` is the decoder's reason, ``loc[1]`` the character offset)."""
    ctx = err.get("ctx") or {}
    reason = str(ctx.get("error") or err.get("msg") or "it could not be parsed")
    loc = tuple(err.get("loc", ()))
    where = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
    return f"malformed JSON body: {reason}{where}"


def validation_to_error(exc: RequestValidationError) -> CoveError:
    """Turn FastAPI/pydantic validation errors into one 400 naming the first field at fault."""
    errors = exc.errors()
    if not errors:
        return InvalidRequest("invalid request body")
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
    else:  # of a union's alternatives, the deepest error is the most specific one
        first = max(errors, key=lambda e: len(e.get("loc", ())))
    loc = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return InvalidRequest(_json_problem(first))
    if loc == ("body",) and first.get("type") == "missing":
        return InvalidRequest("the request body is empty: send a JSON object")
    param = loc_to_param(loc)
    if loc == ("body",) and isinstance(first.get("input"), (bytes, str)):
        # FastAPI parses JSON only when the request says it is JSON (the /web routes: a
        # cross-site form cannot send that type); the body arrived as raw text
        return InvalidRequest("request body must be a JSON object sent with "
                              "Content-Type: application/json")
    if loc == ("body",) or not param:
        return InvalidRequest(f"request body must be a JSON object: {first.get('msg')}")
    msg = first.get("msg")
    if first.get("type") == "bool_type":  # strict booleans (pydantic.StrictBool)
        got = json.dumps(first.get("input"), default=str)
        msg = f"expected true or false, got {got if len(got) <= 40 else got[:37] + '...'}"
    return InvalidRequest(f"{_invalid_value(param)}{msg}", param=param)


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so every error leaves the server in the API's shape."""

    @app.exception_handler(CoveError)
    async def _cove(request: Request, exc: CoveError) -> JSONResponse:
        return render(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return render(validation_to_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = CoveError(str(exc.detail), code=_HTTP_CODES.get(exc.status_code, "http_error"),
                        headers=dict(exc.headers or {}))
        err.status = exc.status_code
        err.type = _HTTP_TYPES.get(exc.status_code, "server_error")
        if exc.status_code == 404:
            err.message = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            allow = allowed_methods(request, err.headers.get("Allow", ""))
            err.headers["Allow"] = ", ".join(allow)
            err.message = (f"{request.method} is not allowed on {request.url.path} "
                           f"(allowed: {', '.join(allow)})")
        elif exc.status_code == 400 and "parsing the body" in err.message:
            err.message = "malformed JSON body: it could not be parsed (too deep or too large)"
        return render(err, request.url.path)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # e.g. an id beyond 64 bits reaching the database driver
        err = InvalidRequest("a number in the request is out of range")
        return render(err, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # logged with its traceback by public(), under the reference the client is given
        return render(as_cove_error(exc), request.url.path)
