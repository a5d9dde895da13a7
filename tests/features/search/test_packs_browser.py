"""A guest searching a knowledge pack in chromium: an admin registers two generated ZIM packs,
a guest (no account) turns Search on, chooses one pack, asks, sees the answer and a source card
naming the pack's article, clicks it and reads the article served offline by Cove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.features.search.test_packs import ASH
from tests.features.search.test_sources_browser import ask
from tests.features.search.zims import DATE, make_zim
from tests.web.conftest import Site
from tests.web.test_browser import sign_up

REGISTER = """async (path) => {
  const s = await (await fetch("/web/session")).json();
  const r = await fetch("/web/knowledge/packs", {method: "POST", body: JSON.stringify({path}),
    headers: {"Content-Type": "application/json", "X-CSRF-Token": s.csrf}});
  return {status: r.status, body: await r.json()};
}"""


@pytest.fixture(scope="module")
def zims(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("zims")
    return [make_zim(d / "geo.zim"),
            make_zim(d / "titles.zim", fulltext=False, name="geo_titles", title="Titles Only")]


def register_as_admin(browser: Any, site: Site, zims: list[Path]) -> None:
    """The first account (hence the admin) signs up in its own tab and registers the packs
    through the web session (its CSRF token), as the app's own requests do."""
    context = browser.new_context(base_url=site.base_url)
    try:
        admin = context.new_page()
        admin.goto("/")
        admin.wait_for_selector("body[data-ready='1']")
        sign_up(admin, "admin@example.org")
        for path in zims:
            got = admin.evaluate(REGISTER, str(path))
            assert got["status"] == 201, got
    finally:
        context.close()


def test_guest_chooses_a_pack_asks_and_opens_the_article(browser: Any, page: Any, site: Site,
                                                        zims: list[Path]) -> None:
    assert page.is_hidden("#search-switch")  # no packs and no web search yet: nothing offered
    register_as_admin(browser, site, zims)
    page.reload()  # `page` is a guest's tab of its own (no account, no cookies of the admin)
    page.wait_for_selector("body[data-ready='1']")
    assert page.text_content("#who") == "Guest"
    page.wait_for_selector("#search-switch:not([hidden])")
    page.check("#search-on")
    assert page.is_visible("#src-packs-row")
    assert page.is_hidden("#src-collections-row") and page.is_hidden("#src-web-row")
    assert page.locator("#src-pack option").all_text_contents() == [
        "all", "Tiny Geology", "Titles Only"]
    page.select_option("#src-pack", "geo_en_all")

    site.engines["scripted:latest"].enqueue(["Its ash column can rise fifty kilometres [1]."])
    with page.expect_request("**/web/guest/chat") as sent:
        answer = ask(page, ASH)
    assert sent.value.post_data_json["cove"] == {"search": {"packs": ["geo_en_all"]}}
    assert "fifty kilometres" in answer.locator(".body").text_content()
    cards = answer.locator(".source-card")
    assert cards.count() >= 1
    assert set(cards.evaluate_all("cs => cs.map(c => c.dataset.kind)")) == {"pack"}
    assert all("geo_titles" not in t for t in cards.all_text_contents())  # only the chosen pack
    card = cards.first
    assert card.locator(".source-title").text_content() == "Volcano"
    assert card.locator(".source-where").text_content() == f"{DATE} · geo_en_all"
    assert card.get_attribute("href") == "/knowledge/geo_en_all/Volcano"
    prompt = bytes(site.engines["scripted:latest"].history[-1][0]).decode()
    assert "[1] (Volcano, 2026-11-01)" in prompt and "fifty kilometres" in prompt
    assert answer.locator(".cite").text_content() == "[1]"

    with page.context.expect_page() as opened:
        card.click()
    article = opened.value
    article.wait_for_load_state()
    assert article.url == site.base_url + "/knowledge/geo_en_all/Volcano"
    assert article.title() == "Volcano — Tiny Geology"
    assert "From the knowledge pack Tiny Geology (2026-11-01)" in article.text_content("body")
    assert "eruption column of ash can rise" in " ".join(article.text_content("main").split())
    article.close()
