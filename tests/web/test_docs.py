"""``/docs`` and ``/redoc`` work offline: their pages name no outside URL, their scripts and
styles are served by Cove, and in a real browser they render the API while every request stays
on Cove. Once an account exists they need an API key (or a web session), like ``/v1``."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import FakeWorld
from tests.web.conftest import Site
from tests.web.helpers import PASSWORD, Browser

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_reference_only_cove(fake: FakeWorld, path: str) -> None:
    page = fake.client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text and "//" not in \
        page.text.replace("<!doctype", "")
    assets = ASSET.findall(page.text)
    assert any(a.endswith(".js") for a in assets)
    for url in assets:
        assert url.startswith("/static/"), url
        got = fake.client.get(url)
        assert got.status_code == 200 and got.content, url
    scripts = [fake.client.get(a).text for a in assets if a.endswith(".js")]
    if path == "/docs":
        init = scripts[-1]
        assert 'url: "/openapi.json"' in init and "validatorUrl: null" in init
    else:
        assert 'spec-url="/openapi.json"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp


def test_vendored_docs_assets_keep_their_licences() -> None:
    from cove.web.pages import STATIC

    for folder, licence in [("swagger-ui", "Apache License"), ("redoc", "MIT License")]:
        assert licence in (STATIC / "vendor" / folder / "LICENSE").read_text()


def test_docs_need_a_key_once_an_account_exists(fake: FakeWorld) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert fake.client.get(path).status_code == 200  # loopback, no account yet
    alice = Browser(fake.client)
    assert alice.signup("alice@example.org").status_code == 200
    key = alice.post("/web/keys", json={"name": "docs"}).json()["key"]
    alice.post("/web/logout")
    fake.client.cookies.clear()
    for path in ("/docs", "/redoc", "/openapi.json"):
        resp = fake.client.get(path)
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == "invalid_api_key"
        assert fake.client.get(path, headers={"Authorization": f"Bearer {key}"}
                               ).status_code == 200
    assert fake.client.post("/web/login", json={"email": "alice@example.org",
                                                "password": PASSWORD}).status_code == 200
    assert fake.client.get("/docs").status_code == 200  # a signed-in browser reads them


@pytest.mark.parametrize("path,ready", [("/docs", ".opblock"),
                                        ("/redoc", ":text(\"/v1/chat/completions\")")])
def test_docs_render_offline_in_a_browser(browser: Any, site: Site, path: str,
                                          ready: str) -> None:
    context = browser.new_context(base_url=site.base_url)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    pg.on("request", lambda r: r.url.startswith((site.base_url, "data:", "blob:"))
          or problems.append(f"offsite request: {r.url}"))
    pg.goto(path)
    pg.wait_for_selector(ready, timeout=30_000)
    assert pg.locator(ready).count() >= 1
    context.close()
    assert problems == []
