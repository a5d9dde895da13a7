"""Security headers on every response: API JSON, streams, static files, errors and pages alike.

Every response gets ``X-Content-Type-Options: nosniff`` (no MIME sniffing of JSON into HTML),
``X-Frame-Options: DENY`` and a Content-Security-Policy with ``frame-ancestors 'none'`` (no
framing, hence no clickjacking), and ``Referrer-Policy: no-referrer``. A response that sets one of
these itself keeps its own value: the web app's page (:mod:`cove.web.pages`) and the API docs
(:mod:`cove.web.docs`) send a CSP that lets their own scripts run. The default CSP,
``default-src 'none'``, lets a JSON or text response load nothing, should a browser ever render
one as a document (OWASP's REST security cheat sheet recommends it for APIs).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

DEFAULT_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": API_CSP,
}

_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in DEFAULT_HEADERS.items()]


def add_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (ASGI's raw header pairs) plus each of :data:`DEFAULT_HEADERS` that is not
    already there."""
    have = {k.lower() for k, _ in headers}
    return [*headers, *((k, v) for k, v in _RAW if k not in have)]


class SecurityHeaders:
    """ASGI middleware adding :data:`DEFAULT_HEADERS` to every HTTP response of ``app``
    (install it outermost, so that responses made by other middleware get them too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message,
                           "headers": add_security_headers(list(message.get("headers", [])))}
            await send(message)

        await self.app(scope, receive, send_with_headers)
