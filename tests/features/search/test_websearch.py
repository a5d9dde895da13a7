"""Web search against a fake SearXNG served on a local address by the test: good answers become
passages with URL and title; a SearXNG that hangs, errors or answers garbage is a clear
WebSearchFailed; result pages are fetched only from public addresses; and the egress guard
lets out exactly SearXNG's host, only while a search runs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove import privacy
from cove.config import Settings
from cove.errors import InvalidRequest, WebSearchFailed
from cove.features.search import web
from tests.features.search.searxng import FakeSearxng, outside_address

RESULTS = [
    {"url": "https://lighthouse.example/keeper", "title": "The Harbour lighthouse",
     "content": "The lighthouse keeper of the Harbour Museum is Ingrid Solberg.",
     "engine": "duckduckgo"},
    {"url": "https://ferries.example/times", "title": "Ferry times",
     "content": "Ferries leave every hour.", "engine": "bing"},
    {"url": "javascript:alert(1)", "title": "not a web page"},
    {"url": "https://lighthouse.example/keeper", "title": "a repeat"},
    {"title": "no url"},
    "not even an object",
]


@pytest.fixture
def searx() -> Iterator[FakeSearxng]:
    with FakeSearxng() as fake:
        fake.results = RESULTS
        yield fake


def settings_for(tmp_path: Path, fake: FakeSearxng, **kw: Any) -> Settings:
    return Settings(home=tmp_path / "home", searxng_url=fake.url + "/", **kw)


def run_search(settings: Settings, query: str = "who keeps the lighthouse?",
               limit: int = 5) -> list[dict[str, Any]]:
    return asyncio.run(web.search(settings, query, limit))


def test_results_become_passages_with_url_and_title(tmp_path: Path, searx: FakeSearxng) -> None:
    found = run_search(settings_for(tmp_path, searx))
    assert [(p["kind"], p["url"], p["title"]) for p in found] == [
        ("web", "https://lighthouse.example/keeper", "The Harbour lighthouse"),
        ("web", "https://ferries.example/times", "Ferry times")]
    assert found[0]["text"] == ("The Harbour lighthouse\nThe lighthouse keeper of the Harbour "
                                "Museum is Ingrid Solberg.")
    assert "Ingrid Solberg" in found[0]["snippet"] and found[0]["fetched"] is False
    assert found[0]["engine"] == "duckduckgo"
    (req,) = searx.searches()
    assert req["query"] == {"q": ["who keeps the lighthouse?"], "format": ["json"]}
    assert run_search(settings_for(tmp_path, searx), limit=1)[0]["title"] == \
        "The Harbour lighthouse"


@pytest.mark.parametrize(("mode", "message"), [
    ("hang", "did not answer within 1 s"),
    ("garbage", "not JSON"),
    ("no_results", "has no results list"),
    ("error", "HTTP 500"),
    ("forbidden", "add json to search.formats"),
    ("huge", "larger than"),
])
def test_a_bad_searxng_is_a_clear_failure(tmp_path: Path, searx: FakeSearxng, mode: str,
                                          message: str) -> None:
    searx.mode = mode
    with pytest.raises(WebSearchFailed, match=message) as e:
        run_search(settings_for(tmp_path, searx, search_web_timeout=1))
    assert (e.value.status, e.value.code) == (502, "web_search_failed")


def test_unreachable_searxng_and_web_search_off(tmp_path: Path) -> None:
    with FakeSearxng() as gone:
        url = gone.url
    with pytest.raises(WebSearchFailed, match="could not be reached"):
        run_search(Settings(home=tmp_path, searxng_url=url, search_web_timeout=2))
    with pytest.raises(InvalidRequest, match="COVE_SEARXNG_URL"):
        run_search(Settings(home=tmp_path))


def test_searxng_url_setting_is_checked() -> None:
    assert Settings(searxng_url="").searxng_url is None
    assert Settings(searxng_url="http://127.0.0.1:8888/").searxng_url == "http://127.0.0.1:8888"
    with pytest.raises(ValueError, match="SearXNG"):
        Settings(searxng_url="ftp://searx.example")


PAGE = ("<html><head><title>Keeper</title><script>var tracking = 1;</script></head><body>"
        "<h1>Lighthouse</h1><p>" + "Boats pass the harbour every day. " * 60 + "</p>"
        "<p>Since 1998 the keeper has been Ingrid Solberg, who lives in the tower.</p>"
        "</body></html>")


def test_pages_are_fetched_only_from_public_addresses(tmp_path: Path, searx: FakeSearxng,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    searx.pages = {"/page/keeper": PAGE}
    searx.results = [{"url": searx.page_url("keeper"), "title": "Keeper page",
                      "content": "A page about the keeper."}]
    settings = settings_for(tmp_path, searx, search_fetch_pages=True)
    # the fake page is on this machine: a result pointing here is never fetched
    found = run_search(settings, "since when is Ingrid Solberg the keeper?")
    assert found[0]["fetched"] is False and found[0]["text"].endswith("A page about the keeper.")
    assert [r["path"] for r in searx.requests] == ["/search"]
    # as if it were a public address: its text (extracted as HTML documents are) is the passage
    monkeypatch.setattr(web, "public_address", lambda ip: True)
    found = run_search(settings, "since when is Ingrid Solberg the keeper?")
    assert found[0]["fetched"] is True
    assert "Since 1998 the keeper has been Ingrid Solberg" in found[0]["text"]
    assert "tracking" not in found[0]["text"]
    assert "Ingrid Solberg" in found[0]["snippet"]


def test_snippet_is_the_best_matching_window() -> None:
    text = "Filler words here. " * 40 + "The keeper is Ingrid Solberg. " + "More filler. " * 40
    snip = web.snippet_of(text, "who is the keeper Ingrid?")
    assert snip.startswith("The keeper is Ingrid Solberg.") and len(snip) <= 302


def test_guard_lets_out_exactly_the_searxng_host_only_while_searching(tmp_path: Path) -> None:
    """With the guard installed, a SearXNG on a non-loopback address of this machine is
    reachable during a search and refused before and after it. The results point at other
    hosts: without page fetching nothing of them is even looked up; with it, results at this
    machine and at a reserved range are skipped before any connection. Every connection made
    during the searches goes to SearXNG. (Without a non-loopback address, SearXNG is on loopback
    and the check is that nothing non-local is contacted at all.)"""
    privacy.install_egress_guard()
    host = outside_address() or "127.0.0.1"
    events: list[tuple[str, Any]] = []
    recording = False

    def hook(event: str, args: Any) -> None:
        if recording and event in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
            events.append((event, args[1] if event != "socket.getaddrinfo" else args[0]))

    sys.addaudithook(hook)
    with FakeSearxng(host) as searx:
        if host != "127.0.0.1":
            with pytest.raises(httpx.ConnectError):
                httpx.get(searx.url + "/search", timeout=2)
        refused_before = len(privacy.refusals())
        recording = True
        try:
            searx.results = RESULTS
            assert len(run_search(settings_for(tmp_path, searx))) == 2
            searx.results = [
                {"url": searx.page_url("keeper"), "title": "here", "content": "x"},
                {"url": "http://203.0.113.7/page", "title": "reserved", "content": "y"}]
            found = run_search(settings_for(tmp_path, searx, search_fetch_pages=True))
        finally:
            recording = False
        assert len(privacy.refusals()) == refused_before  # nothing was refused meanwhile
        assert [p["fetched"] for p in found] == [False, False]
        assert privacy.policy()["temporarily_allowed_hosts"] == []
        if host != "127.0.0.1":
            with pytest.raises(httpx.ConnectError):
                httpx.get(searx.url + "/search", timeout=2)
    connects = {str(a[0]) for e, a in events if e == "socket.connect" and isinstance(a, tuple)}
    assert connects == {host}, events
    looked_up = {str(a) for e, a in events if e == "socket.getaddrinfo"}
    assert not looked_up & {"lighthouse.example", "ferries.example"}, looked_up
    assert [r["path"] for r in searx.requests] == ["/search", "/search"]


def test_cove_privacy_reports_web_search(tmp_path: Path) -> None:
    from cove.inventory import inventory

    off = inventory(Settings(home=tmp_path))["egress"]
    assert off["web_search"] == "off" and "web search" not in off["exceptions"]
    on = inventory(Settings(home=tmp_path, searxng_url="http://searx.lan:8888",
                            search_fetch_pages=True))["egress"]
    assert on["web_search"]["allowed_host"] == "searx.lan"
    assert on["web_search"]["when"] == "only while a search runs"
    assert "SearXNG host" in on["exceptions"] and "public addresses only" in on["exceptions"]
