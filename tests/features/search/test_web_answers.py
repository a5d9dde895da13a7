"""Answers with sources on every surface (scripted engine, SQLite and PostgreSQL, a fake
SearXNG on loopback): the OpenAI and Ollama APIs with web and collection sources, streamed and
not; a failing SearXNG turns into a warning and the answer still comes; the dedicated search
API's errors; the web app's stored answers keep their sources (reload, export); ``#name``;
guests with web search; upload routes bounded by COVE_MAX_UPLOAD_BYTES."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.config import Settings
from tests import pg
from tests.conftest import FakeWorld, local_client
from tests.features.search.searxng import FakeSearxng
from tests.features.search.test_routes import NOTES, new_collection, upload
from tests.features.search.test_websearch import RESULTS
from tests.web.helpers import Browser, events

ASK = [{"role": "user", "content": "Who keeps the lighthouse?"}]


@pytest.fixture
def searx() -> Iterator[FakeSearxng]:
    with FakeSearxng() as fake:
        fake.results = RESULTS
        yield fake


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path,
             searx: FakeSearxng) -> Iterator[Settings]:
    kw: dict[str, Any] = {"home": tmp_path / "home", "max_queue": 4,
                          "max_body_bytes": 256 * 1024, "max_upload_bytes": 512 * 1024,
                          "searxng_url": searx.url, "search_web_timeout": 3}
    if request.param == "sqlite":
        yield Settings(**kw)
        return
    with pg.fresh_database(request.getfixturevalue("pg_url")) as url:
        yield Settings(**kw, database_url=url)


def prompt_of(fake: FakeWorld) -> str:
    return bytes(fake.engine.history[-1][0]).decode()


def sse_chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]


def test_openai_web_sources_in_prompt_and_reply(fake: FakeWorld, alice: Browser) -> None:
    fake.engine.enqueue(["Ingrid Solberg [1][3]."])
    r = alice.post("/v1/chat/completions", json={"model": "scripted", "messages": ASK,
                                                  "cove": {"search": {"web": True}}})
    assert r.status_code == 200, r.text
    search = r.json()["cove"]["search"]
    assert [(s["index"], s["kind"], s["title"], s["url"]) for s in search["sources"]] == [
        (1, "web", "The Harbour lighthouse", "https://lighthouse.example/keeper"),
        (2, "web", "Ferry times", "https://ferries.example/times")]
    assert (search["cited"], search["invalid_citations"], search["warnings"]) == ([1], [3], [])
    prompt = prompt_of(fake)
    assert "[1] (The Harbour lighthouse, lighthouse.example)\nThe Harbour lighthouse\nThe " \
           "lighthouse keeper of the Harbour Museum is Ingrid Solberg." in prompt


def test_collections_and_web_are_merged(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    assert upload(alice, cid, "notes.md", NOTES.encode()).status_code == 201
    fake.engine.enqueue(["Both."])
    r = alice.post("/v1/chat/completions", json={
        "model": "scripted", "messages": [{"role": "user", "content": "what eats aphids?"}],
        "cove": {"search": {"collections": True, "web": True, "limit": 3}}})
    kinds = [s["kind"] for s in r.json()["cove"]["search"]["sources"]]
    assert kinds == ["document", "web", "document"]  # each kind's best first


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_searxng_is_a_warning_and_the_answer_comes(
        fake: FakeWorld, alice: Browser, searx: FakeSearxng, stream: bool) -> None:
    searx.mode = "hang"
    fake.engine.enqueue(["I could not search."])
    r = alice.post("/v1/chat/completions", json={
        "model": "scripted", "messages": ASK, "stream": stream,
        "cove": {"search": {"web": True}}})
    assert r.status_code == 200, r.text
    if stream:
        search = sse_chunks(r.text)[0]["cove"]["search"]
        assert "I could not search." in r.text
    else:
        search = r.json()["cove"]["search"]
        assert r.json()["choices"][0]["message"]["content"] == "I could not search."
    assert search["sources"] == []
    assert search["warnings"] == ["web search failed: SearXNG did not answer within 3 s"]


def test_searxng_results_with_malformed_urls_are_skipped(fake: FakeWorld, alice: Browser,
                                                         searx: FakeSearxng) -> None:
    # urlsplit raises ValueError on "http://[oops" (an unclosed IPv6 literal): it escaped the
    # soft web kind and the chat was a 500
    searx.results = [{"url": "http://[oops/x", "title": "broken"},
                     {"url": "https://[::1/", "title": "broken too"}, *RESULTS]
    fake.engine.enqueue(["Ingrid."])
    r = alice.post("/v1/chat/completions", json={"model": "scripted", "messages": ASK,
                                                  "cove": {"search": {"web": True}}})
    assert r.status_code == 200, r.text
    urls = [s["url"] for s in r.json()["cove"]["search"]["sources"]]
    assert urls == ["https://lighthouse.example/keeper", "https://ferries.example/times"]
    r = alice.post("/web/search", json={"query": "lighthouse", "web": True})
    assert r.status_code == 200, r.text


def test_web_off_and_guests_collections(fake: FakeWorld, alice: Browser) -> None:
    fake.app.state.settings = fake.app.state.settings.model_copy(update={"searxng_url": None})
    r = alice.post("/v1/chat/completions", json={"messages": ASK,
                                                  "cove": {"search": {"web": True}}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cove.search.web"
    r = alice.post("/v1/chat/completions", json={"messages": ASK, "cove": {"search": {}}})
    assert r.status_code == 400 and "at least one source" in r.json()["error"]["message"]
    guest = Browser(local_client(fake.app))
    r = guest.post("/web/guest/chat", json={"messages": ASK,
                                            "cove": {"search": {"collections": True}}})
    assert r.status_code == 401, r.text
    assert fake.engine.history == []


def test_ollama_chat_carries_cove_streamed_and_not(fake: FakeWorld, alice: Browser) -> None:
    fake.engine.enqueue(["Ingrid [2]."])
    r = alice.post("/api/chat", json={"model": "scripted", "messages": ASK, "stream": False,
                                      "cove": {"search": {"web": True}}})
    assert r.status_code == 200, r.text
    search = r.json()["cove"]["search"]
    assert search["sources"][0]["url"] == "https://lighthouse.example/keeper"
    assert (search["cited"], search["invalid_citations"]) == ([2], [])
    fake.engine.enqueue(["Ingrid", " [9]."])
    r = alice.post("/api/chat", json={"model": "scripted", "messages": ASK,
                                      "cove": {"search": {"web": True}}})
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines[0]["cove"]["search"]["sources"][1]["title"] == "Ferry times"
    assert lines[-1]["done"] is True
    assert lines[-1]["cove"] == {"search": {"cited": [], "invalid_citations": [9]}}
    assert [x for x in lines[1:-1] if "cove" in x] == []
    r = alice.post("/api/chat", json={"model": "scripted", "messages": ASK,
                                      "cove": {"search": {"web": "yes"}}})
    assert r.status_code == 400 and "cove.search" in r.json()["error"]


def test_search_api_web_results_and_errors(fake: FakeWorld, alice: Browser,
                                           searx: FakeSearxng) -> None:
    r = alice.post("/web/search", json={"query": "lighthouse keeper", "web": True})
    assert r.status_code == 200, r.text
    assert [p["url"] for p in r.json()["results"]] == [
        "https://lighthouse.example/keeper", "https://ferries.example/times"]
    for mode in ("error", "garbage", "hang"):
        searx.mode = mode
        r = alice.post("/web/search", json={"query": "lighthouse keeper", "web": True})
        assert r.status_code == 502, r.text
        err = r.json()["error"]
        assert err["code"] == "web_search_failed" and "SearXNG" in err["message"]
    assert alice.get("/health").status_code == 200  # still serving


def test_sources_offered(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    assert alice.get("/web/search/sources").json() == {
        "collections": [{"id": cid, "name": "garden"}], "web": True, "packs": None}
    guest = Browser(local_client(fake.app))
    assert guest.get("/web/search/sources").json() == {"collections": None, "web": True,
                                                       "packs": None}  # no pack added


def test_search_routes_need_a_sign_in_when_guests_are_off(fake: FakeWorld) -> None:
    fake.app.state.settings = fake.app.state.settings.model_copy(update={"guest": False})
    anon = Browser(local_client(fake.app))
    for r in (anon.get("/web/search/sources"),
              anon.post("/web/search", json={"query": "keeper", "web": True})):
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = anon.post("/web/search", json={"query": "keeper", "collections": True})
    assert r.status_code == 401


def test_guest_chat_with_web_search(fake: FakeWorld, searx: FakeSearxng) -> None:
    guest = Browser(local_client(fake.app))
    fake.engine.enqueue(["Ingrid Solberg [1]."])
    r = guest.post("/web/guest/chat", json={"messages": ASK, "cove": {"search": {"web": True}}})
    assert r.status_code == 200, r.text
    evs = events(r.text)
    assert evs[0]["type"] == "start"
    assert evs[0]["cove"]["search"]["sources"][0]["title"] == "The Harbour lighthouse"
    assert evs[-1]["type"] == "done" and evs[-1]["cove"]["search"]["cited"] == [1]
    assert len(searx.searches()) == 1


def test_stored_answer_keeps_its_sources(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    assert upload(alice, cid, "notes.md", NOTES.encode()).status_code == 201
    other = new_collection(alice, "Other notes")
    assert upload(alice, other, "other.md", b"# Aphids\n\nAphids like roses.").status_code == 201
    conv = alice.post("/web/conversations", json={}).json()["id"]
    fake.engine.enqueue(["Ladybirds [1] [5]."])
    r = alice.post(f"/web/conversations/{conv}/messages", json={
        "content": "#garden what eats aphids?", "cove": {"search": {"collections": True}}})
    assert r.status_code == 200, r.text
    evs = events(r.text)
    start = evs[0]["cove"]["search"]
    assert start["query"] == "what eats aphids?"  # the tag picks the collection, not the query
    assert {s["collection_id"] for s in start["sources"]} == {cid}
    assert evs[-1]["cove"]["search"]["invalid_citations"] == [5]
    msgs = alice.get(f"/web/conversations/{conv}").json()["messages"]
    assert msgs[0]["cove"] is None
    kept = msgs[1]["cove"]["search"]
    assert kept["sources"] == start["sources"] and kept["cited"] == [1]
    assert "Aphids are eaten by ladybirds." in kept["sources"][0]["text"]
    exported = alice.get("/web/export").json()["conversations"][0]["messages"][1]
    assert exported["cove"]["search"]["sources"][0]["document"] == "notes.md"
    # "#other-notes" spells "Other notes"; a #word naming no collection stays in the query
    fake.engine.enqueue(["Roses."])
    r = alice.post(f"/web/conversations/{conv}/messages", json={
        "content": "#other-notes #1 what do aphids like?",
        "cove": {"search": {"collections": True}}})
    start = events(r.text)[0]["cove"]["search"]
    assert start["query"] == "#1 what do aphids like?"
    assert {s["collection_id"] for s in start["sources"]} == {other}


def test_upload_routes_take_up_to_the_upload_limit(fake: FakeWorld, alice: Browser) -> None:
    """COVE_MAX_BODY_BYTES is 256 KiB here and COVE_MAX_UPLOAD_BYTES 512 KiB: a 400 KB
    document is taken; one over the upload limit is a 413 naming it, in each API's shape."""
    cid = new_collection(alice)
    body = ("A line about tomatoes and their sun.\n" * 11_000).encode()  # ~400 KB
    assert 256 * 1024 < len(body) < 512 * 1024
    r = upload(alice, cid, "big.txt", body)
    assert r.status_code == 201, r.text
    r = upload(alice, cid, "bigger.txt", body * 2)
    assert r.status_code == 413
    assert "COVE_MAX_UPLOAD_BYTES" in r.json()["error"]["message"]
    r = alice.post("/v1/files", files={"file": ("bigger.txt", body * 2)},
                   data={"purpose": "assistants"})
    assert r.status_code == 413 and "COVE_MAX_UPLOAD_BYTES" in r.json()["error"]["message"]
    # other routes keep the body limit
    r = alice.post("/v1/chat/completions", json={"messages": [
        {"role": "user", "content": "x" * 300_000}]})
    assert r.status_code == 413 and "COVE_MAX_UPLOAD_BYTES" not in r.text
