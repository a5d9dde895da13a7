"""Connection guards for ``cove serve``: a deadline for the request head, and a cap on open
connections.

uvicorn's own limits leave two holes. Its keep-alive timeout only runs *between* requests, so a
client that connects and sends half a request line or half its headers ("slowloris") holds the
connection for ever; and its ``limit_concurrency`` counts every open connection at the moment a
request arrives, so a few hundred such idle connections make it answer 503 to every real
client, including those already connected. :class:`GuardedH11Protocol` (uvicorn's h11 protocol,
subclassed) closes both:

- **Header deadline.** From the moment a connection opens, or the first byte of a next request
  on a kept-alive one, the client has ``header_timeout`` seconds to complete the request line
  and headers (as nginx's ``client_header_timeout`` and Apache's ``mod_reqtimeout``). Then the
  connection is closed, after a 408 response when part of a request had arrived. Trickling a
  byte at a time does not extend it. (A head h11 cannot parse gets Cove's 400, not uvicorn's
  plain text.) The body has its own deadline
  (:class:`cove.api.limits.BodyLimit`, HTTP 408).
- **Connection cap.** A connection is admitted when it opens if fewer than ``max_connections``
  admitted connections are open; the requests of one that is not are answered 503 (Cove's error
  shape, ``Retry-After``, ``Connection: close``) without reaching the app. Connections admitted
  earlier go on being served; a refused one that sends nothing is closed at the header
  deadline like any other.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cove.api.errors import render
from cove.api.security import SecurityHeaders, add_security_headers
from cove.errors import CoveError, InvalidRequest, Overloaded

log = logging.getLogger("cove.connections")

REFUSAL_LOG_SECONDS = 10.0  # at most one "connection refused" warning per this many seconds


class RequestHeadTimeout(CoveError):
    """The request line and headers did not arrive in time (HTTP 408)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap (see the module
    docstring). Configure it with :func:`guarded_protocol`."""

    header_timeout: float = 10.0  # seconds
    max_connections: int = 0  # 0: no cap
    _last_refusal_log = 0.0

    def connection_made(self, transport: Any) -> None:  # noqa: D102
        super().connection_made(transport)
        self._head_timer: Any = None
        cap = self.max_connections
        self.admitted = cap <= 0 or sum(
            1 for c in self.connections if getattr(c, "admitted", True) and c is not self) < cap
        if not self.admitted:
            self.app = self._refuse
            now = time.monotonic()
            if now - GuardedH11Protocol._last_refusal_log >= REFUSAL_LOG_SECONDS:
                GuardedH11Protocol._last_refusal_log = now
                log.warning("more than %d connections open (COVE_MAX_CONNECTIONS): answering "
                            "new ones 503", cap)
        self._watch_head()

    def data_received(self, data: bytes) -> None:  # noqa: D102
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """On a new connection or new bytes: while the request head is incomplete (h11: the
        client is still ``IDLE``) arm the deadline unless it runs already; once a whole head
        has been parsed, cancel it. (An idle kept-alive connection, which receives nothing,
        is left to uvicorn's keep-alive timeout.)"""
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)
        else:
            self._cancel_head_timer()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        partial = self.conn.trailing_data[0]
        if partial:
            err = RequestHeadTimeout("the request line and headers did not arrive within "
                                     f"{self.header_timeout:g} s")
            self.transport.write(raw_error_response(err, partial))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse (a malformed line, a head over h11's 16 KiB): Cove's
        400 in the API's shape with the security headers, instead of uvicorn's plain text."""
        self._cancel_head_timer()
        err = InvalidRequest("the request is not valid HTTP/1.1 (malformed request line or "
                             "headers, or a head larger than 16 KiB)")
        self.transport.write(raw_error_response(err, self.conn.trailing_data[0]))
        self.transport.close()

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        err = Overloaded(f"this server has {self.max_connections} connections open, its "
                         "limit (COVE_MAX_CONNECTIONS); retry shortly")
        err.headers["Connection"] = "close"
        await SecurityHeaders(render(err, str(scope.get("path", ""))))(scope, receive, send)


def raw_error_response(err: CoveError, partial: bytes) -> bytes:
    """The bytes of an HTTP/1.1 response for ``err`` (then the connection closes), for a
    request whose head never became a request: in the error shape of the API named by the
    request line in ``partial`` (the bytes received), if that much arrived."""
    parts = partial.split(b" ", 2)
    path = parts[1].decode("latin-1") if len(parts) == 3 else ""
    response = render(err, path)
    body = bytes(response.body)
    headers = add_security_headers([(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"connection", b"close")])
    status = f"HTTP/1.1 {response.status_code} {HTTPStatus(response.status_code).phrase}\r\n"
    return (status.encode() + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
            + b"\r\n" + body)


def guarded_protocol(header_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` class with these limits, for ``uvicorn.Config(http=...)``
    (uvicorn builds one protocol object per connection from the class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "header_timeout": header_timeout, "max_connections": max_connections})
