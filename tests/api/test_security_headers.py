"""Security headers on every response: each API, the web routes, static files, pages, streams,
and errors made anywhere (routes, middleware, Starlette's 500 handler)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FakeWorld

MESSAGES = [{"role": "user", "content": "hi"}]
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/health", {}),
    ("GET", "/v1/models", {}),
    ("POST", "/v1/chat/completions", {"json": {"model": "scripted", "messages": MESSAGES}}),
    ("POST", "/v1/chat/completions", {"json": {"model": "scripted", "messages": MESSAGES,
                                               "stream": True}}),
    ("GET", "/api/tags", {}),
    ("POST", "/api/chat", {"json": {"model": "scripted", "messages": MESSAGES}}),
    ("GET", "/web/session", {}),
    ("POST", "/web/guest/chat", {"json": {"messages": MESSAGES}}),
    ("GET", "/static/app.js", {}),
    ("GET", "/favicon.ico", {}),
    ("GET", "/openapi.json", {}),
    # errors: route, validation, router, middleware (body limit, host check), auth
    ("GET", "/v1/models/nope", {}),
    ("POST", "/v1/chat/completions", {"content": b"{oops",
                                      "headers": {"content-type": "application/json"}}),
    ("POST", "/api/chat", {"json": {"model": "scripted", "messages": "no"}}),
    ("GET", "/v1/nothing", {}),
    ("GET", "/api/nothing", {}),
    ("DELETE", "/v1/chat/completions", {}),
    ("POST", "/v1/chat/completions", {"content": b"x" * (300 * 1024)}),
    ("GET", "/v1/models", {"headers": {"Host": "evil.example"}}),
    ("GET", "/web/conversations", {}),
    ("OPTIONS", "/api/chat", {"headers": {"Origin": "http://localhost:3000",
                                          "Access-Control-Request-Method": "POST"}}),
]


def assert_secured(resp: Any) -> None:
    h = resp.headers
    assert h["x-content-type-options"] == "nosniff", (resp.request.url, h)
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in h["content-security-policy"]


@pytest.mark.parametrize("method,path,kw", REQUESTS)
def test_every_response_has_security_headers(fake: FakeWorld, method: str, path: str,
                                             kw: dict[str, Any]) -> None:
    fake.engine.enqueue(["ok"])
    resp = fake.client.request(method, path, **kw)
    assert_secured(resp)
    if resp.headers.get("content-type", "").startswith("application/json"):
        assert resp.headers["content-security-policy"].startswith("default-src 'none'")


def test_pages_keep_their_own_policy(fake: FakeWorld) -> None:
    for path in ("/", "/docs", "/redoc"):
        resp = fake.client.get(path)
        assert resp.status_code == 200
        assert_secured(resp)
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and csp.count("frame-ancestors") == 1
        assert len(resp.headers.get_list("content-security-policy")) == 1


def test_an_unexpected_500_has_them_too(fake: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(fake.app.state.pipeline, "status", broken)
    with TestClient(fake.app, base_url="http://localhost", raise_server_exceptions=False) as c:
        resp = c.get("/health")
    assert resp.status_code == 500
    assert "boom" not in resp.text and "reference" in resp.json()["error"]["message"]
    assert_secured(resp)
