"""``cove serve`` under connection abuse, over loopback: a request head that never completes is
cut off at COVE_REQUEST_HEADER_TIMEOUT (slowloris), and connections beyond
COVE_MAX_CONNECTIONS are answered 503 while the ones already open go on being served."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, free_port, start_server, stop_server

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home: Path = tmp_path_factory.mktemp("conn")
    port = free_port()
    env = {"COVE_REQUEST_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
           "COVE_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
    proc = start_server(home, port, **env)
    yield LiveServer(f"http://127.0.0.1:{port}", proc, env)
    stop_server(proc)


def connect(server: LiveServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (monotonic)."""
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic()


def wait_for_slots(server: LiveServer) -> None:
    """Until a new connection is served again (the previous test's sockets timed out)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpx.get(server.base_url + "/health", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the server did not free its connections")


@pytest.mark.parametrize("sent", [
    b"",  # connects and says nothing
    b"GET /health HT",  # half a request line
    b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl",  # half the headers
])
def test_a_request_head_that_never_completes_is_cut_off(server: LiveServer, sent: bytes) -> None:
    wait_for_slots(server)
    sock = connect(server)
    start = time.monotonic()
    sock.sendall(sent)
    data, closed = read_until_closed(sock)
    sock.close()
    assert HEADER_TIMEOUT * 0.8 <= closed - start <= HEADER_TIMEOUT + 5
    if not sent:
        assert data == b""
        return
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), data
    assert b"x-content-type-options: nosniff" in head.lower()
    err = json.loads(body)["error"]
    if b"/api/" in sent:  # the request line was whole: the error is in Ollama's shape
        assert isinstance(err, str) and "did not arrive" in err
    else:
        assert err["code"] == "request_timeout"


def test_trickling_bytes_does_not_extend_the_deadline(server: LiveServer) -> None:
    wait_for_slots(server)
    sock = connect(server)
    start = time.monotonic()
    closed_at = None
    for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaa":
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # reset: the server closed it
            closed_at = time.monotonic()
            break
        time.sleep(0.1)
        if time.monotonic() - start > HEADER_TIMEOUT + 5:
            break
    if closed_at is None:
        _, closed_at = read_until_closed(sock)
    sock.close()
    assert closed_at - start <= HEADER_TIMEOUT + 3


def test_a_slow_flood_neither_stays_nor_stops_the_connections_already_open(
        server: LiveServer) -> None:
    wait_for_slots(server)
    with httpx.Client(base_url=server.base_url, timeout=10) as early:
        assert early.get("/health").status_code == 200  # admitted, kept alive
        flood = [connect(server) for _ in range(200)]
        for sock in flood:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.2)
        # beyond the limit: a new connection is refused with 503 in the API's shape
        late = httpx.get(server.base_url + "/api/tags", timeout=10)
        assert late.status_code == 503, late.text
        assert late.headers["retry-after"] and late.headers["connection"] == "close"
        assert "COVE_MAX_CONNECTIONS" in late.json()["error"]
        late = httpx.get(server.base_url + "/v1/models", timeout=10)
        assert late.status_code == 503 and late.json()["error"]["code"] == "overloaded"
        # the connection opened before the flood is still served
        assert early.get("/health").status_code == 200
        # every flooding connection is cut off at the header deadline
        start = time.monotonic()
        for sock in flood:
            sock.settimeout(HEADER_TIMEOUT + 10)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            sock.close()
        assert time.monotonic() - start <= HEADER_TIMEOUT + 8
    assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200


@pytest.mark.parametrize("sent", [
    [b"NOT HTTP AT ALL\r\n\r\n"],
    # a head still incomplete past h11's 16 KiB limit
    [b"GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000, b"a" * 100],
])
def test_a_request_h11_cannot_parse_gets_coves_400(server: LiveServer,
                                                   sent: list[bytes]) -> None:
    wait_for_slots(server)
    sock = connect(server)
    for part in sent:
        sock.sendall(part)
        time.sleep(0.2)
    data, _ = read_until_closed(sock)
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), data[:200]
    assert b"x-content-type-options: nosniff" in head.lower()
    err = json.loads(body)["error"]
    message = err if b"/api/" in sent[0] else err["message"]
    assert "not valid HTTP/1.1" in message
