"""The real path: ``cove serve`` with the bundled model, a PDF uploaded over HTTP and a fake
SearXNG on loopback; the official ``openai`` client (streamed and not) and Ollama's
``/api/chat`` (streamed and not) asking with ``cove.search``: the answer comes from the passage
and the source listed is the right document and page (or web result); ``cove run --search``
does the same in the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import free_port, start_server, stop_server
from tests.features.search.files import make_pdf
from tests.features.search.searxng import FakeSearxng

pytestmark = pytest.mark.real_model

PAGES = ["Opening hours of the Harbour Museum: daily from ten to five.",
         "The museum's lighthouse keeper is named Ingrid Solberg. She has kept the light "
         "since 1998.",
         "Tickets cost twelve euros; children enter free."]
QUESTION = "What is the name of the lighthouse keeper?"
EMAIL = "reader@example.org"


@dataclass
class World:
    url: str
    key: str
    home: Path
    searx: FakeSearxng


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("search-home")
    port = free_port()
    with FakeSearxng() as searx:
        searx.results = [{"url": "https://harbour.example/keeper", "title": "Harbour Museum",
                          "content": "The lighthouse keeper of the Harbour Museum is named "
                          "Oskar Lund."}]
        proc = start_server(home, port, COVE_SEARXNG_URL=searx.url)
        try:
            url = f"http://127.0.0.1:{port}"
            web = httpx.Client(base_url=url, timeout=60)
            r = web.post("/web/signup", json={"email": EMAIL, "password": "correct horse battery"})
            assert r.status_code == 200, r.text
            csrf = {"X-CSRF-Token": r.json()["csrf"]}
            key = web.post("/web/keys", json={"name": "test"}, headers=csrf).json()["key"]
            cid = web.post("/web/knowledge/collections", json={"name": "museum"},
                           headers=csrf).json()["id"]
            up = web.post(f"/web/knowledge/collections/{cid}/documents", headers=csrf,
                          files={"file": ("museum.pdf", make_pdf(PAGES))})
            assert up.status_code == 201, up.text
            yield World(url, key, home, searx)
        finally:
            stop_server(proc)


DOCS = {"search": {"collections": ["museum"], "limit": 2}}


def test_openai_answers_from_the_passage_with_its_source(world: World) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0)
    reply = client.chat.completions.create(
        model="smollm2:135m", temperature=0, max_tokens=40,
        messages=[{"role": "user", "content": QUESTION}], extra_body={"cove": DOCS})
    search = reply.model_extra["cove"]["search"]  # type: ignore[index]
    sources = search["sources"]
    assert (sources[0]["document"], sources[0]["page"]) == ("museum.pdf", 2)
    assert "Ingrid Solberg" in sources[0]["snippet"]
    assert "Ingrid" in (reply.choices[0].message.content or "")
    assert set(search) >= {"cited", "invalid_citations"}


def test_openai_streamed_answer_carries_its_sources(world: World) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="smollm2:135m", temperature=0, max_tokens=40, stream=True,
        messages=[{"role": "user", "content": QUESTION}], extra_body={"cove": DOCS}))
    first = chunks[0].model_extra["cove"]["search"]  # type: ignore[index]
    assert (first["sources"][0]["document"], first["sources"][0]["page"]) == ("museum.pdf", 2)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Ingrid" in text
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert "invalid_citations" in last.model_extra["cove"]["search"]  # type: ignore[index]


def test_openai_answers_from_a_web_result(world: World) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=world.key, max_retries=0)
    reply = client.chat.completions.create(
        model="smollm2:135m", temperature=0, max_tokens=40,
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"cove": {"search": {"web": True}}})
    sources = reply.model_extra["cove"]["search"]["sources"]  # type: ignore[index]
    assert [(s["kind"], s["url"]) for s in sources] == [
        ("web", "https://harbour.example/keeper")]
    assert "Oskar" in (reply.choices[0].message.content or "")
    assert world.searx.searches()[-1]["query"]["q"] == [QUESTION]


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_chat_answers_from_the_passage_with_its_source(world: World,
                                                              stream: bool) -> None:
    r = httpx.post(world.url + "/api/chat", timeout=120,
                   headers={"Authorization": f"Bearer {world.key}"},
                   json={"model": "smollm2:135m", "stream": stream, "cove": DOCS,
                         "options": {"temperature": 0, "num_predict": 40},
                         "messages": [{"role": "user", "content": QUESTION}]})
    assert r.status_code == 200, r.text
    if stream:
        lines = [json.loads(x) for x in r.text.splitlines()]
        search = lines[0]["cove"]["search"]
        text = "".join(x.get("message", {}).get("content", "") for x in lines)
        assert "invalid_citations" in lines[-1]["cove"]["search"]
    else:
        search = r.json()["cove"]["search"]
        text = r.json()["message"]["content"]
    assert (search["sources"][0]["document"], search["sources"][0]["page"]) == ("museum.pdf", 2)
    assert "Ingrid" in text


def test_cove_run_search_answers_with_sources(world: World) -> None:
    env = {**os.environ, "COVE_HOME": str(world.home), "COVE_N_CTX": "1024"}
    r = subprocess.run([sys.executable, "-m", "cove", "run", "--search", "--collection",
                        "museum", "--user", EMAIL, "--temperature", "0", "--max-tokens", "40",
                        QUESTION], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    answer, _, sources = r.stdout.partition("Sources:")
    assert "Ingrid" in answer
    assert "[1] museum.pdf, page 2" in sources and "Ingrid Solberg" in sources
    r = subprocess.run([sys.executable, "-m", "cove", "run", "--collection", "nope",
                        "--user", EMAIL, QUESTION], capture_output=True, text=True, env=env,
                       timeout=180)
    assert r.returncode != 0 and "'nope' not found" in r.stderr
