"""``HEAD`` wherever ``GET`` is served (RFC 9110 9.3.2): the same status and headers
(``Content-Length`` and ``Content-Type`` included), no body. Clients probe with it: Ollama's
own client checks that a server is up with ``HEAD /``.

FastAPI routes answer only the methods they declare, so this middleware runs a ``HEAD`` request
as ``GET`` unless a route declares ``HEAD`` itself (``HEAD /api/blobs/...``), and drops the
body. Once the headers are sent, the app's ``receive`` reports a disconnect, so a response that
watches for one stops producing a body nobody reads.
"""

from __future__ import annotations

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """Serve ``HEAD`` through the ``GET`` routes of ``router`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    def _declares_head(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        if not self._declares_head(scope):
            scope = {**scope, "method": "GET"}
        finished = False

        async def headers_only(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not finished:
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def gone_once_answered() -> Message:
            if finished:
                return {"type": "http.disconnect"}
            return await receive()

        await self.app(scope, gone_once_answered, headers_only)
