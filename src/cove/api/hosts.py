"""Refuse requests whose ``Host`` is not this machine while Cove listens on loopback only.

A web page on another site can make the browser send requests to ``127.0.0.1`` through a DNS name
it controls ("DNS rebinding"); such requests carry that name in ``Host``. Like Ollama, Cove
answers them with 403 when bound to a loopback address: accepted are ``localhost`` and
``*.localhost``, loopback IPs, this machine's host name, and the hosts of ``COVE_ORIGINS``.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from cove.api.errors import render
from cove.errors import Forbidden


def allowed_hosts(extra_origins: str) -> set[str]:
    """Host names accepted besides loopback ones: this machine's and the extra origins'."""
    hosts = {socket.gethostname().lower()}
    for origin in extra_origins.split(","):
        origin = origin.strip()
        if origin and "*" not in origin:
            hosts.add((urlsplit(origin).hostname or origin).lower())
    return hosts


def is_local_host(host: str, extra: set[str]) -> bool:
    """Whether a ``Host`` header value (``name[:port]`` or ``[v6]:port``) names this machine."""
    name = urlsplit("//" + host).hostname or ""
    if not name or name == "localhost" or name.endswith(".localhost") or name in extra:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostCheck:
    """ASGI middleware applying :func:`is_local_host` to every HTTP request."""

    def __init__(self, app: ASGIApp, extra_origins: str = "") -> None:
        self.app = app
        self.extra = allowed_hosts(extra_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host and not is_local_host(host.lower(), self.extra):
                err = Forbidden(f"requests for host {host!r} are refused: Cove listens on this "
                                "machine only (add the origin to COVE_ORIGINS to allow it)")
                await render(err, str(scope.get("path", "")))(scope, receive, send)
                return
        await self.app(scope, receive, send)
