"""The body-limit middleware's one exemption, at the ASGI level: a blob upload reaches the app
piece by piece (never buffered whole), and a piece that does not come in time is a 408."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cove.api.limits import BodyLimit, RequestTimeout

UPLOAD = "/api/blobs/sha256:" + "ab" * 32


def _scope(path: str, length: int) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path,
            "headers": [(b"content-length", str(length).encode())]}


class Pieces:
    """A client sending ``n`` pieces; ``stall_after`` pieces, it stops sending (forever)."""

    def __init__(self, n: int, stall_after: int | None = None) -> None:
        self.n = n
        self.stall_after = stall_after
        self.sent = 0

    async def __call__(self) -> dict[str, Any]:
        if self.sent == self.stall_after or self.sent > self.n:
            await asyncio.Event().wait()
        if self.sent == self.n:  # body complete: the next receive is a late disconnect
            self.sent += 1
            await asyncio.sleep(0.2)
            return {"type": "http.disconnect"}
        self.sent += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": self.sent < self.n}


def _run(path: str, client: Pieces, timeout: float = 0.05) -> list[Any]:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            while True:
                message = await receive()
                seen.append((message.get("body", b"")[:1], client.sent))
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            seen.append((await receive())["type"])  # waiting for a disconnect is not timed
        except RequestTimeout as e:
            seen.append(e)

    async def send(message: Any) -> None:
        seen.append(message)

    asyncio.run(BodyLimit(app, max_bytes=2000, timeout=timeout)(
        _scope(path, client.n * 1000), client, send))
    return seen


def test_an_upload_streams_through_piece_by_piece() -> None:
    seen = _run(UPLOAD, Pieces(10))  # 10 000 bytes through a 2 000-byte limit
    # the app got each piece as soon as it was sent: the middleware read nothing ahead
    assert seen[:10] == [(b"x", i) for i in range(1, 11)]
    assert seen[10] == "http.disconnect"


def test_a_stalled_upload_times_out() -> None:
    seen = _run(UPLOAD, Pieces(10, stall_after=3))
    assert seen[:3] == [(b"x", i) for i in range(1, 4)]
    assert isinstance(seen[3], RequestTimeout) and seen[3].status == 408


@pytest.mark.parametrize("path", ["/api/blobs/sha256:" + "ab" * 31, UPLOAD + "/x",
                                  "/api/chat", "/v1" + UPLOAD])
def test_other_routes_keep_the_limit(path: str) -> None:
    seen = _run(path, Pieces(10))
    start = next(m for m in seen if isinstance(m, dict) and m.get("type") ==
                 "http.response.start")
    assert start["status"] == 413
