"""A scripted OpenAI-compatible upstream on loopback, for the exact failure cases of the router
(the real engines behind it are tested in test_workers_live.py).

``ScriptedUpstream().start()`` serves ``POST /v1/chat/completions`` and ``/v1/completions``
from a queue of plays (one per request, in arrival order; when empty, a default answer) and
``GET /v1/models``. Every request body is kept in ``bodies``; ``gone`` counts streams whose
client went away before the end (cancellation reaching the upstream).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None, text: str | None = None) -> bytes:
    if text is not None:
        choices: list[dict[str, Any]] = [{"index": 0, "text": text, "finish_reason": finish}]
    else:
        choices = [] if delta is None else [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]
    body: dict[str, Any] = {"id": "x", "object": "chat.completion.chunk", "model": "m",
                            "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def answer(*pieces: str, usage: tuple[int, int] = (7, 3), finish: str = "stop",
           chat: bool = True) -> list[bytes]:
    """The events of a normal streamed answer made of ``pieces``."""
    if not chat:
        out = [chunk(text=p) for p in pieces] + [chunk(text="", finish=finish)]
    else:
        out = [chunk({"role": "assistant", "content": ""})]
        out += [chunk({"content": p}) for p in pieces]
        out.append(chunk({}, finish))
    out.append(chunk(None, usage={"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                  "total_tokens": sum(usage)}))
    return [*out, b"data: [DONE]\n\n"]


class ScriptedUpstream:
    """See the module doc. A play is a dict: ``{"events": [bytes...]}`` (streamed, ``delay``
    seconds apart, then the connection is closed: leave out ``[DONE]`` to break the stream),
    ``{"status": 503}``, ``{"raw": b"...", "type": "text/html"}``, ``{"sleep": s}`` before
    anything, ``{"hang": True}`` (never answers until stopped)."""

    def __init__(self, models: list[str] | None = None) -> None:
        self.models = models or ["up-model"]
        self.plays: deque[dict[str, Any]] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.gone = 0
        self.down = False  # /v1/models answers 503 (health probes fail)
        self.default: list[bytes] = answer("Hello", " there")
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedUpstream:
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if up.down:
                    self._send(503, b'{"error": {"message": "starting"}}')
                    return
                data = [{"id": m, "object": "model"} for m in up.models]
                self._send(200, json.dumps({"object": "list", "data": data}).encode())

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                up.bodies.append(json.loads(self.rfile.read(n)))
                up.paths.append(self.path)
                play = up.plays.popleft() if up.plays else {"events": up.default}
                if play.get("sleep"):
                    time.sleep(play["sleep"])
                if play.get("hang"):
                    up._stop.wait(30)
                    return
                if "status" in play:
                    self._send(play["status"], json.dumps(
                        {"error": {"message": play.get("message", "busy")}}).encode())
                    return
                if "raw" in play:
                    self._send(200, play["raw"], play.get("type", "text/html"))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for event in play["events"]:
                        self.wfile.write(event)
                        self.wfile.flush()
                        time.sleep(play.get("delay", 0.0))
                except (BrokenPipeError, ConnectionResetError):
                    up.gone += 1
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
