"""Answers with sources in chromium: upload a PDF, ask with Search on, see the answer and
its source card, click it and see the passage with the snippet marked; the sources come back
after a reload; an invented [n] is struck through; a guest uses web search."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.registry import ModelEntry, ModelRegistry
from tests.conftest import free_port
from tests.features.search.files import make_pdf
from tests.features.search.searxng import FakeSearxng
from tests.features.search.test_websearch import RESULTS
from tests.web.browser import ThreadServer
from tests.web.conftest import Site
from tests.web.test_browser import sign_up


@pytest.fixture
def searx() -> Iterator[FakeSearxng]:
    with FakeSearxng() as fake:
        fake.results = RESULTS
        yield fake


@pytest.fixture
def site(tmp_path: Path, searx: FakeSearxng) -> Iterator[Site]:
    """The web app over a scripted model, with web search through the fake SearXNG."""
    engines = {"scripted:latest": ScriptedEngine(name="scripted:latest")}
    registry = ModelRegistry()
    registry.add(ModelEntry("scripted:latest", Path("/nonexistent/s.gguf"), "scripted"))
    settings = Settings(home=tmp_path / "home", default_model="scripted:latest",
                        searxng_url=searx.url)
    app = create_app(settings, registry=registry, loader=lambda entry, s: engines[entry.name])
    with ThreadServer(app, free_port()) as server:
        yield Site(server.base_url, engines, app)


def ask(page: Any, text: str) -> Any:
    page.fill("#input", text)
    page.click("#send")
    page.wait_for_selector("#send:not([hidden])")
    return page.locator(".msg.assistant").last


def test_upload_ask_with_search_and_open_the_source(page: Any, site: Site,
                                                    tmp_path: Path) -> None:
    sign_up(page)
    page.click("#open-settings")
    page.fill("#kb-name", "garden")
    page.click("#kb-create")
    page.wait_for_selector("#kb-open:not([hidden])")
    notes = tmp_path / "garden.pdf"
    notes.write_bytes(make_pdf(["Tomatoes need six hours of sun a day.",
                                "Aphids are eaten by ladybirds, which gardeners welcome."]))
    page.set_input_files("#kb-files", [str(notes)])
    page.wait_for_selector("#kb-uploads li[data-state='added']")
    page.click("#settings-close")
    page.wait_for_selector("#search-switch:not([hidden])")
    assert page.is_hidden("#search-sources")
    page.check("#search-on")  # the sources this server offers show up
    assert page.is_visible("#src-web-row") and page.is_visible("#src-collections-row")
    assert page.is_hidden("#src-packs-row")  # no knowledge packs on this server
    page.uncheck("#src-web")  # only my collections
    site.engines["scripted:latest"].enqueue(["Ladybirds eat them [1]. See also [4]."])
    answer = ask(page, "What eats aphids?")
    assert "Ladybirds eat them" in answer.locator(".body").text_content()
    cards = answer.locator(".source-card")
    assert cards.count() == 2
    first = cards.nth(0)
    assert "garden.pdf" in first.text_content() and "page 2" in first.text_content()
    assert answer.locator(".cite.invalid").text_content() == "[4]"  # no source 4: struck
    prompt = bytes(site.engines["scripted:latest"].history[-1][0]).decode()
    assert "[1] (garden.pdf, page 2)" in prompt
    first.click()
    page.wait_for_selector("#passage-dialog[open]")
    assert page.text_content("#passage-title") == "[1] garden.pdf"
    assert "Aphids are eaten by ladybirds" in page.text_content("#passage-text mark")
    page.click("#passage-close")
    # the sources are stored with the answer: they are back after a reload
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    page.click("#conversations .conv .title")
    page.wait_for_selector(".msg.assistant .source-card")
    assert page.locator(".msg.assistant .source-card").count() == 2
    assert not site.app.state.settings.search_fetch_pages


def test_guest_asks_with_web_search(page: Any, site: Site, searx: FakeSearxng) -> None:
    page.wait_for_selector("#search-switch:not([hidden])")
    page.check("#search-on")
    assert page.is_hidden("#src-collections-row")  # guests have no collections
    assert page.is_visible("#src-web-row")
    site.engines["scripted:latest"].enqueue(["Ingrid Solberg keeps it [1]."])
    answer = ask(page, "Who keeps the lighthouse?")
    card = answer.locator("a.source-card").first
    assert card.get_attribute("href") == "https://lighthouse.example/keeper"
    assert card.get_attribute("target") == "_blank"
    assert "noopener" in (card.get_attribute("rel") or "")
    assert "lighthouse.example" in card.text_content()
    assert len(searx.searches()) == 1
    # a SearXNG that fails: the answer still comes, with the warning under it
    searx.mode = "error"
    site.engines["scripted:latest"].enqueue(["No idea."])
    answer = ask(page, "And the ferry times?")
    assert "No idea." in answer.locator(".body").text_content()
    assert "web search failed: SearXNG answered HTTP 500" in \
        answer.locator(".source-warning").text_content()
