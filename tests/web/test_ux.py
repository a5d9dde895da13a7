"""Findings of a new-user test, in a real browser: the phone sidebar can be closed, the sign-up
dialog shows only what applies, Regenerate sits on the last answer only, no emoji or symbol
glyphs (offline systems may lack the fonts), admins can delete accounts, a new API key is not
shown again, an empty conversation shows a hint, and there is a favicon."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from cove.store.tables import User
from tests.web.browser import CHROMIUM
from tests.web.conftest import Site
from tests.web.helpers import PASSWORD
from tests.web.test_browser import send, sign_up

SHOTS = Path("/tmp/cove-ux-shots") if Path(CHROMIUM).exists() else None

# emoji and the symbol blocks (arrows, dingbats, geometric shapes, misc symbols, ...) whose
# glyphs come from system fonts
GLYPHS = re.compile("[\u2190-\u2bff\u2600-\u27bf\U0001f000-\U0001faff\ufe0f]")


def shot(page: Any, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def sidebar_open(page: Any) -> bool:
    box = page.locator("#sidebar").bounding_box()
    return bool(page.locator("#sidebar").is_visible() and box and box["x"] >= 0)


def test_phone_sidebar_closes_every_way(browser: Any, site: Site) -> None:
    context = browser.new_context(base_url=site.base_url, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto("/")
    page.wait_for_selector("body[data-ready='1']")
    # the hidden sidebar casts no shadow at the left edge and is not visible
    assert not page.locator("#sidebar").is_visible()
    assert page.evaluate("getComputedStyle(document.getElementById('sidebar')).boxShadow") \
        == "none"
    shot(page, "phone-closed")

    def open_it() -> None:
        page.click("#toggle-sidebar")
        page.wait_for_timeout(250)
        assert sidebar_open(page)

    open_it()
    shot(page, "phone-open")
    page.mouse.click(370, 420)  # the backdrop, right of the sidebar
    page.wait_for_timeout(250)
    assert not sidebar_open(page)
    open_it()
    page.keyboard.press("Escape")
    page.wait_for_timeout(250)
    assert not sidebar_open(page)
    open_it()
    page.click("#close-sidebar")
    page.wait_for_timeout(250)
    assert not sidebar_open(page)
    open_it()
    page.click("#new-chat")
    page.wait_for_timeout(250)
    assert not sidebar_open(page)
    open_it()
    page.click("#open-auth")
    expect(page.locator("#auth-dialog")).to_be_visible()
    page.wait_for_timeout(250)
    assert not sidebar_open(page)
    shot(page, "phone-auth")
    page.click("#auth-close")
    open_it()
    page.click("#open-auth")
    page.fill("#auth-email", "ada@example.org")
    page.fill("#auth-password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("#open-settings:not([hidden])", state="attached")
    assert not sidebar_open(page)  # signing in is a navigation too
    open_it()
    page.click("#open-settings")
    expect(page.locator("#settings-dialog")).to_be_visible()
    page.wait_for_timeout(250)
    assert not sidebar_open(page)
    context.close()


def test_signup_dialog_shows_what_applies(page: Any, site: Site) -> None:
    page.click("#open-auth")
    expect(page.locator("#auth-note")).to_contain_text("Create the first account")
    assert not page.locator("#auth-invite").is_visible()  # open sign-up: no invite field
    assert page.locator("#signup").get_attribute("class") == "primary"
    assert not page.locator("#login").is_visible()
    shot(page, "auth-first")
    page.click("#auth-close")
    sign_up(page)
    page.click("#open-settings")
    page.click("#logout")
    page.click("#open-auth")
    assert not page.locator("#auth-invite").is_visible()
    assert "primary" in (page.locator("#login").get_attribute("class") or "")
    assert "primary" not in (page.locator("#signup").get_attribute("class") or "")
    page.click("#auth-close")
    # invite mode: the field appears
    site.app.state.settings.signup = "invite"
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.click("#open-auth")
    assert page.locator("#auth-invite").is_visible()
    shot(page, "auth-invite")


def test_regenerate_only_on_the_last_answer(page: Any, site: Site) -> None:
    sign_up(page)
    engine = site.engines["scripted:latest"]
    engine.enqueue(["one"])
    send(page, "first")
    engine.enqueue(["two"])
    send(page, "second")
    expect(page.locator(".msg.assistant")).to_have_count(2)
    expect(page.locator(".regenerate")).to_have_count(1)
    assert page.locator(".msg.assistant").last.locator(".regenerate").count() == 1
    engine.enqueue(["two again"])
    page.click(".regenerate")
    page.wait_for_selector("#send:not([hidden])")
    expect(page.locator(".msg.assistant .body")).to_have_text(["one", "two again"])
    expect(page.locator(".regenerate")).to_have_count(1)


def test_no_emoji_or_symbol_glyphs_in_the_ui(page: Any, site: Site) -> None:
    assert page.locator(".empty").is_visible()  # a hint, not a blank page
    sign_up(page)
    expect(page.locator(".empty")).to_contain_text("Type a message")
    site.engines["scripted:latest"].enqueue(["fine"])
    send(page, "hello")
    expect(page.locator(".conv")).to_have_count(1)
    assert page.locator(".conv .delete svg").count() == 1
    assert page.locator(".conv .rename svg").count() == 1
    shot(page, "sidebar-icons")
    texts = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter((el) => !el.closest('#messages .body'))
        .flatMap((el) => [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.data))
        .concat([...document.querySelectorAll('[aria-label],[placeholder],[title]')]
                .flatMap((el) => [el.getAttribute('aria-label') || '', el.title || '']))""")
    assert [t for t in texts if GLYPHS.search(t)] == []
    page.click("#open-settings")
    page.click("#create-key")
    expect(page.locator("#new-key")).to_contain_text("cove-")
    page.click("#settings-close")
    page.click("#open-settings")
    assert not page.locator("#new-key").is_visible()  # a key is shown once


def test_admin_deletes_an_account(page: Any, site: Site) -> None:
    sign_up(page)  # first account: admin
    r = httpx.post(site.base_url + "/web/signup",
                   json={"email": "bob@example.org", "password": PASSWORD})
    assert r.status_code == 200
    assert site.rows(User) == 2
    page.click("#open-settings")
    expect(page.locator("#users li")).to_have_count(2)
    assert page.locator("#users li").first.locator(".delete-user").count() == 0  # not oneself
    dialogs: list[str] = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click(".delete-user")
    page.wait_for_timeout(200)
    assert site.rows(User) == 2 and "bob@example.org" in dialogs[0]  # dismissed: kept
    page.once("dialog", lambda d: d.accept())
    page.click(".delete-user")
    expect(page.locator("#users li")).to_have_count(1)
    assert site.rows(User) == 1


def test_favicon(site: Site) -> None:
    r = httpx.get(site.base_url + "/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in r.content
