"""Helpers for web-app tests: sign up clients, parse the web SSE stream."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


class Browser:
    """A TestClient with its own cookie jar and the CSRF token of its session."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def signup(self, email: str, password: str = PASSWORD, **extra: Any) -> Any:
        r = self.client.post("/web/signup", json={"email": email, "password": password, **extra})
        if r.status_code == 200:
            self.csrf = r.json()["csrf"]
        return r

    def request(self, method: str, path: str, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if self.csrf:
            headers.setdefault("X-CSRF-Token", self.csrf)
        return self.client.request(method, path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def events(text: str) -> list[dict[str, Any]]:
    """The JSON events of a web SSE body (every block must be one ``data:`` line)."""
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block
        out.append(json.loads(block[len("data: "):]))
    return out


def text_of(evs: list[dict[str, Any]], kind: str = "content") -> str:
    return "".join(e["text"] for e in evs if e["type"] == "delta" and e["kind"] == kind)
