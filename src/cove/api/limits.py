"""ASGI middleware that guards request bodies: size (HTTP 413), read time (HTTP 408), and JSON
strings with lone UTF-16 surrogates (``"\\ud800"``: valid JSON, but not text; HTTP 400 naming
the field, for every route at once).

Ollama and OpenAI-compatible servers take a JSON body whatever its ``Content-Type`` (``curl
-d`` sends ``application/x-www-form-urlencoded``): on ``/api`` and ``/v1``, a request from a
non-browser client (no ``Origin`` header) is passed on as ``application/json``, so a body
that does not parse is reported as malformed JSON. Browser requests (they always send
``Origin`` cross-site) are left alone, so a cross-site form or ``text/plain`` post still
cannot reach the APIs without a CORS preflight; the ``/web`` routes are never touched (they
keep their session CSRF checks).

The body is read completely (up to ``max_bytes``) before the app sees the request, within
``timeout`` seconds, then replayed to the app; a ``Content-Length`` over the limit is refused
before reading anything. A client that sends its body too slowly (or never finishes it) gets 408
instead of holding a connection and a task forever.

Upload routes (registered with :func:`register_upload_route`: the knowledge document upload,
``/v1/files``) take bodies up to ``COVE_MAX_UPLOAD_BYTES`` plus :data:`UPLOAD_ENVELOPE` for the
multipart framing (or ``COVE_MAX_BODY_BYTES`` if that is larger), so the upload limit is the one
that applies to them; the route itself then checks the file against ``COVE_MAX_UPLOAD_BYTES``.

One exemption: ``POST /api/blobs/sha256:<hex>`` (Ollama's blob upload, GGUFs of gigabytes) is
passed on unbuffered and without the size limit; the route streams it to disk, and a piece of
its body that takes over ``timeout`` seconds to arrive ends it with 408.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cove.api.errors import render
from cove.errors import CoveError, InvalidRequest, PayloadTooLarge

_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def lone_surrogate_path(value: Any, path: str = "") -> str | None:
    """The path (``messages[0].content``) of the first string in a parsed JSON value that holds
    a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            found = lone_surrogate_path(k, where) or lone_surrogate_path(v, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = lone_surrogate_path(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _surrogate_error(body: bytes) -> InvalidRequest | None:
    if not _ESCAPED_SURROGATE.search(body):  # cheap: pairs and lone ones are always escaped
        return None
    try:
        where = lone_surrogate_path(json.loads(body))
    except (ValueError, RecursionError):
        return None  # not JSON: the route reports it
    if where is None:
        return None
    return InvalidRequest("text is not valid Unicode (a lone UTF-16 surrogate)", param=where)


API_PREFIXES = ("/api/", "/v1/")
# The one route whose body is not buffered or size-limited: a blob upload (a GGUF of
# gigabytes) streams to disk, and only its stalls are timed out.
BLOB_UPLOAD = re.compile(r"^/api/blobs/sha256[:-][0-9a-fA-F]{64}$")


def json_content_type(scope: Scope, body: bytes) -> Scope:
    """``scope`` with ``Content-Type: application/json`` when it is an ``/api`` or ``/v1``
    request of a non-browser client (no ``Origin``) with a body under another content type;
    otherwise ``scope`` unchanged."""
    if not str(scope.get("path", "")).startswith(API_PREFIXES) or not body.strip():
        return scope
    headers = list(scope.get("headers") or [])
    names = {k.lower() for k, _ in headers}
    if b"origin" in names:
        return scope
    ctype = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"").lower()
    media = ctype.split(b";")[0].strip()
    if media == b"application/json" or media.endswith(b"+json") or media.startswith(
            b"multipart/"):
        return scope
    # Even a body that does not parse: these routes only take JSON, so the client is told
    # what is wrong with its JSON rather than that the body "must be an object".
    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
    headers.append((b"content-type", b"application/json"))
    return {**scope, "headers": headers}


UPLOAD_ENVELOPE = 64 * 1024  # bytes of multipart framing allowed around an uploaded file


def register_upload_route(app: FastAPI, pattern: str) -> None:
    """Make ``POST`` requests whose path matches ``pattern`` (a regular expression, matched
    whole) upload routes: bounded by ``COVE_MAX_UPLOAD_BYTES`` (see the module docstring)."""
    if not hasattr(app.state, "upload_routes"):
        app.state.upload_routes = []
    app.state.upload_routes.append(re.compile(pattern))


class RequestTimeout(CoveError):
    """The request body did not arrive in time (HTTP 408)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class BodyLimit:
    """Wrap ``app`` so no request body larger than ``max_bytes`` or slower than ``timeout``
    seconds reaches it."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0,
                 upload_bytes: int | None = None,
                 upload_routes: Callable[[], list[re.Pattern[str]]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.upload_bytes = upload_bytes
        self.upload_routes = upload_routes or (lambda: [])

    def _limit(self, scope: Scope) -> tuple[int, str]:
        """The body limit of this request and the setting that sets it."""
        path = str(scope.get("path", ""))
        if self.upload_bytes is not None and scope.get("method") == "POST" and any(
                p.fullmatch(path) for p in self.upload_routes()):
            return max(self.max_bytes, self.upload_bytes + UPLOAD_ENVELOPE), \
                "COVE_MAX_UPLOAD_BYTES"
        return self.max_bytes, "COVE_MAX_BODY_BYTES"

    def _too_large(self, scope: Scope) -> PayloadTooLarge:
        limit, setting = self._limit(scope)
        if setting == "COVE_MAX_UPLOAD_BYTES":
            assert self.upload_bytes is not None
            return PayloadTooLarge(f"the upload is larger than the limit of "
                                   f"{self.upload_bytes} bytes for a file ({setting})")
        return PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if scope.get("method") == "POST" and BLOB_UPLOAD.match(path):
            await self.app(scope, self._idle_limited(receive), send)  # streamed to disk
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        try:
            if length is not None and int(length) > self._limit(scope)[0]:
                await render(self._too_large(scope), path)(scope, receive, send)
                return
        except ValueError:
            pass
        try:
            body = await asyncio.wait_for(self._read(receive, scope), self.timeout)
        except TimeoutError:
            err = RequestTimeout(f"the request body did not arrive within {self.timeout:g} s")
            await render(err, path)(scope, receive, send)
            return
        except PayloadTooLarge as e:
            await render(e, path)(scope, receive, send)
            return
        if body is None:
            return  # the client went away
        bad = _surrogate_error(body)
        if bad is not None:
            await render(bad, path)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(json_content_type(scope, body), replay, send)

    def _idle_limited(self, receive: Receive) -> Receive:
        """``receive`` that raises :class:`RequestTimeout` when a piece of the body takes over
        ``timeout`` seconds to arrive (an upload of gigabytes may take long, but may not
        stall). Once the body is complete, waits (for a disconnect) are not limited."""
        done = False

        async def timed() -> Message:
            nonlocal done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                raise RequestTimeout(f"the upload stalled: no data for {self.timeout:g} s") \
                    from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return timed

    async def _read(self, receive: Receive, scope: Scope) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        limit = self._limit(scope)[0]
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(scope)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
