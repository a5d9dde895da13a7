"""The ``cove.search`` extension of ``/v1/chat/completions`` (scripted engine): the passages go
into the prompt as numbered sources and the response lists them; bad values and another
user's collections are refused."""

from __future__ import annotations

import json

from tests.conftest import FakeWorld
from tests.features.search.test_routes import NOTES, new_collection, upload
from tests.web.helpers import Browser

ASK = [{"role": "system", "content": "Be brief."},
       {"role": "user", "content": "What eats aphids?"}]


def chat(b: Browser, search: object, **extra: object) -> object:
    return b.post("/v1/chat/completions", json={"model": "scripted", "messages": ASK,
                                                 "cove": {"search": search}, **extra})


def test_sources_in_prompt_and_response(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    upload(alice, cid, "notes.md", NOTES.encode())
    fake.engine.enqueue(["Lady", "birds [1][7]."])
    r = chat(alice, {"collections": ["garden"], "limit": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Ladybirds [1][7]."
    assert (body["cove"]["search"]["cited"], body["cove"]["search"]["invalid_citations"]) == (
        [1], [7])
    sources = body["cove"]["search"]["sources"]
    assert [(s["index"], s["document"], s["heading"]) for s in sources] == [
        (1, "notes.md", "Garden > Pests"), (2, "notes.md", "Garden")]
    assert "ladybirds" in sources[0]["snippet"]
    prompt = bytes(fake.engine.history[-1][0]).decode()
    assert prompt.count("<|im_start|>system") == 1  # merged with the request's own system text
    assert "Be brief." in prompt
    assert "[1] (notes.md, Garden > Pests)\n## Pests\n\nAphids are eaten by ladybirds." in prompt
    assert prompt.index("[1]") < prompt.index("[2]") < prompt.index("What eats aphids?")


def test_streamed_answer_carries_sources_first_and_the_check_last(fake: FakeWorld,
                                                            alice: Browser) -> None:
    cid = new_collection(alice)
    upload(alice, cid, "notes.md", NOTES.encode())
    fake.engine.enqueue(["Ladybirds [1]", " and [4]."])
    r = chat(alice, {"collections": [cid]}, stream=True)
    assert r.status_code == 200, r.text
    chunks = [json.loads(line[6:]) for line in r.text.split("\n\n")
              if line.startswith("data: {")]
    assert chunks[0]["cove"]["search"]["sources"][0]["document"] == "notes.md"
    last = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    # the chunk that ends the answer carries the check of its [n] markers (only that)
    assert last["cove"] == {"search": {"cited": [1], "invalid_citations": [4]}}
    assert [c for c in chunks[1:] if "cove" in c] == [last]


def test_bad_values_and_other_users_collections(fake: FakeWorld, alice: Browser,
                                                bob: Browser) -> None:
    cid = new_collection(alice)
    r = chat(bob, {"collections": [cid]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "collection_id"
    r = chat(bob, {"collections": ["garden"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "cove.search.collections"
    r = chat(alice, {"collections": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cove.search.collections"
    for wrong in ("garden", [{"name": "garden"}]):  # the param named the union's members
        r = chat(alice, {"collections": wrong})
        assert r.status_code == 400 and r.json()["error"]["param"] in (
            "cove.search.collections", "cove.search.collections[0]"), r.text
    r = alice.post("/v1/chat/completions", json={"messages": ASK, "cove": {"nope": {}}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cove.nope"
    assert fake.engine.history == []


def test_no_match_leaves_the_prompt_alone(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    fake.engine.enqueue(["Hi."])
    r = chat(alice, {"collections": [cid]})
    assert r.status_code == 200 and r.json()["cove"]["search"]["sources"] == []
    assert "sources" not in bytes(fake.engine.history[-1][0]).decode()
