"""ASGI middleware that guards request bodies: size (HTTP 413) and read time (HTTP 408).

The body is read completely (up to ``max_bytes``) before the app sees the request, within
``timeout`` seconds, then replayed to the app; a ``Content-Length`` over the limit is refused
before reading anything. A client that sends its body too slowly (or never finishes it) gets 408
instead of holding a connection and a task forever.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cove.api.errors import render
from cove.errors import CoveError, PayloadTooLarge


class RequestTimeout(CoveError):
    """The request body did not arrive in time (HTTP 408)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class BodyLimit:
    """Wrap ``app`` so no request body larger than ``max_bytes`` or slower than ``timeout``
    seconds reaches it."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than the limit of {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        try:
            if length is not None and int(length) > self.max_bytes:
                await render(self._too_large(), path)(scope, receive, send)
                return
        except ValueError:
            pass
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout)
        except TimeoutError:
            err = RequestTimeout(f"the request body did not arrive within {self.timeout:g} s")
            await render(err, path)(scope, receive, send)
            return
        except PayloadTooLarge as e:
            await render(e, path)(scope, receive, send)
            return
        if body is None:
            return  # the client went away
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
