"""A fake SearXNG for tests, served on a local address by a thread of the test: its
``/search?format=json&q=...`` answers as ``mode`` says, and ``/page/<n>`` serves HTML pages.

Modes: ``good`` (``results`` as set), ``hang`` (never answers within the test's timeouts),
``garbage`` (not JSON), ``no_results`` (JSON without a results list), ``error`` (HTTP 500),
``forbidden`` (HTTP 403, as SearXNG answers when json is not in ``search.formats``), ``huge``
(a body over Cove's limit).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SIOCGIFADDR = 0x8915


def outside_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (e.g. eth0's), or None. Read with
    the ``SIOCGIFADDR`` ioctl, so no packet is sent and no name is looked up."""
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                raw = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                  struct.pack("256s", name[:15].encode()))
            except OSError:
                continue
        ip = socket.inet_ntoa(raw[20:24])
        if not ipaddress.ip_address(ip).is_loopback:
            return ip
    return None


class FakeSearxng:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.mode = "good"
        self.results: list[dict[str, Any]] = []
        self.pages: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                fake.requests.append({"path": parts.path, "query": parse_qs(parts.query),
                                      "host": self.headers.get("Host")})
                if parts.path.startswith("/page/"):
                    html = fake.pages.get(parts.path)
                    self._send(200 if html else 404, (html or "missing").encode(),
                               "text/html; charset=utf-8")
                    return
                if parts.path != "/search":
                    self._send(404, b"not found", "text/plain")
                    return
                mode = fake.mode
                if mode == "hang":
                    fake.release.wait(30)
                    return
                if mode == "garbage":
                    self._send(200, b"<html>I am not JSON</html>", "text/html")
                elif mode == "no_results":
                    self._send(200, b'{"answers": []}', "application/json")
                elif mode == "error":
                    self._send(500, b"Internal Server Error", "text/plain")
                elif mode == "forbidden":
                    self._send(403, b"Forbidden", "text/plain")
                elif mode == "huge":
                    self._send(200, b'{"results": [' + b" " * (3 * 1024 * 1024) + b"]}",
                               "application/json")
                else:
                    q = parse_qs(parts.query).get("q", [""])[0]
                    body = {"query": q, "number_of_results": len(fake.results),
                            "results": fake.results}
                    self._send(200, json.dumps(body).encode(), "application/json")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def page_url(self, name: str) -> str:
        return f"{self.url}/page/{name}"

    def searches(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/search"]

    def __enter__(self) -> FakeSearxng:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        time.sleep(0.05)
        self.server.shutdown()
        self.server.server_close()
