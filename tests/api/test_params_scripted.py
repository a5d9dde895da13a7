"""OpenAI parameters over the scripted engine: logprobs (chat and completions, streamed and
not), n choices, best_of, logit_bias, fill-in-the-middle suffix (also Ollama's), refused fields."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cove.engine.fake import ScriptedEngine
from tests.api.test_openai_scripted import assert_error, chat, sse_events
from tests.conftest import FakeWorld


def complete(world: FakeWorld, **body: Any) -> Any:
    body.setdefault("model", "scripted")
    body.setdefault("prompt", "Say")
    return world.client.post("/v1/completions", json=body)


# -- logprobs --------------------------------------------------------------------------------------


def test_chat_logprobs_not_streamed(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Hel", "lo", "é"])
    body = chat(fake, logprobs=True, top_logprobs=2).json()
    lp = body["choices"][0]["logprobs"]
    assert lp["refusal"] is None
    assert [t["token"] for t in lp["content"]] == ["Hel", "lo", "é"]
    assert lp["content"][2]["bytes"] == list("é".encode())
    assert lp["content"][0] == {
        "token": "Hel", "logprob": -0.25, "bytes": [72, 101, 108],
        "top_logprobs": [{"token": "Hel", "logprob": -0.25, "bytes": [72, 101, 108]},
                         {"token": "?", "logprob": -1.25, "bytes": [63]}]}
    assert fake.engine.history[-1][1].logprobs == 2


def test_chat_logprobs_default_to_no_alternatives_and_are_off_unless_asked(
        fake: FakeWorld) -> None:
    fake.engine.enqueue(["a"])
    lp = chat(fake, logprobs=True).json()["choices"][0]["logprobs"]
    assert lp["content"] == [{"token": "a", "logprob": -0.25, "bytes": [97],
                              "top_logprobs": []}]
    fake.engine.enqueue(["a"])
    assert chat(fake, logprobs=False).json()["choices"][0]["logprobs"] is None
    assert fake.engine.history[-1][1].logprobs is None


def test_chat_logprobs_streamed_follow_their_text(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Hi", " S", "T", "OP", "!"])
    events = sse_events(chat(fake, stream=True, logprobs=True, stop=["STOP"]).text)
    chunks = [e for e in events[:-1] if e["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    tokens = [t["token"] for c in chunks if c["choices"][0]["logprobs"]
              for t in c["choices"][0]["logprobs"]["content"]]
    assert text == "Hi "
    assert tokens == ["Hi", " S"]  # " S" began in the text; the stop's own tokens are dropped
    assert chunks[0]["choices"][0]["logprobs"] is None  # the role chunk


def test_completion_logprobs(fake: FakeWorld) -> None:
    fake.engine.enqueue(["The", " sky", " is"])
    choice = complete(fake, logprobs=1, max_tokens=5).json()["choices"][0]
    assert choice["text"] == "The sky is"
    assert choice["logprobs"] == {
        "tokens": ["The", " sky", " is"],
        "token_logprobs": [-0.25, -0.25, -0.25],
        "top_logprobs": [{"The": -0.25}, {" sky": -0.25}, {" is": -0.25}],
        "text_offset": [0, 3, 7],
    }
    fake.engine.enqueue(["x"])
    zero = complete(fake, logprobs=0).json()["choices"][0]["logprobs"]
    assert zero["top_logprobs"] == [{"x": -0.25}]  # the sampled token is always given
    fake.engine.enqueue(["x"])
    assert complete(fake).json()["choices"][0]["logprobs"] is None


def test_completion_logprobs_streamed(fake: FakeWorld) -> None:
    fake.engine.enqueue(["ab", "cd"])
    events = sse_events(complete(fake, logprobs=2, stream=True).text)
    parts = [c["choices"][0] for c in events[:-1] if c["choices"]]
    with_lp = [p for p in parts if p["logprobs"] and p["logprobs"]["tokens"]]
    assert [(p["text"], p["logprobs"]["text_offset"]) for p in with_lp] == [
        ("ab", [0]), ("cd", [2])]
    assert with_lp[0]["logprobs"]["top_logprobs"] == [{"ab": -0.25, "?": -1.25}]


@pytest.mark.parametrize("body,param", [
    ({"logprobs": 21}, "logprobs"),
    ({"logprobs": True}, "logprobs"),
    ({"logprobs": 1, "echo": True}, "echo"),
    ({"best_of": 1, "n": 2}, "best_of"),
    ({"best_of": 2, "stream": True}, "best_of"),
    ({"best_of": 5}, "best_of"),  # more than the 4 slots
    ({"n": 5}, "n"),
    ({"logit_bias": {"x": 1}}, "logit_bias"),
    # past Python's 4,300-digit limit int() raised ValueError: a 500 and a traceback
    ({"logit_bias": {"9" * 5000: 1}}, "logit_bias"),
])
def test_completion_fields_refused_with_400(fake: FakeWorld, body: dict[str, Any],
                                            param: str) -> None:
    assert_error(complete(fake, **body), 400, param=param)


# -- n --------------------------------------------------------------------------------------------


def test_n_choices_share_one_prompt_and_sum_usage(fake: FakeWorld) -> None:
    for word in ("one", "two", "three"):
        fake.engine.enqueue([word])
    body = chat(fake, n=3, seed=7, messages=[{"role": "user", "content": "x" * 40}]).json()
    choices = body["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    assert sorted(c["message"]["content"] for c in choices) == ["one", "three", "two"]
    seeds = sorted(p.seed for _, p in fake.engine.history[-3:])  # type: ignore[type-var]
    assert seeds == [7, 8, 9]  # choice i uses seed + i
    prompts = {tuple(p) for p, _ in fake.engine.history[-3:]}
    assert len(prompts) == 1
    n_prompt = len(next(iter(prompts)))
    assert body["usage"]["prompt_tokens"] == n_prompt  # counted once
    assert body["usage"]["completion_tokens"] == 3
    # the first computed the prompt, the others copied its KV cells
    assert fake.engine.copies
    prefilled = sum(n for step in fake.engine.decodes for _, n, want in step if n > 1)
    assert prefilled < 2 * n_prompt


def test_n_streamed_chunks_carry_their_index(fake: FakeWorld) -> None:
    fake.engine.enqueue(["a", "b"])
    fake.engine.enqueue(["c"])
    events = sse_events(chat(fake, n=2, stream=True,
                             stream_options={"include_usage": True}).text)
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 3
    by_index: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for e in events[:-2]:
        (choice,) = e["choices"]
        by_index[choice["index"]].append(choice)
    for choices in by_index.values():
        assert choices[0]["delta"]["role"] == "assistant"
        assert [c["finish_reason"] for c in choices].count("stop") == 1
        assert choices[-1]["finish_reason"] == "stop"
    texts = sorted("".join(c["delta"].get("content") or "" for c in cs)
                   for cs in by_index.values())
    assert texts == ["ab", "c"]


def test_n_without_seed_leaves_each_choice_unseeded(fake: FakeWorld) -> None:
    chat(fake, n=2)
    assert [p.seed for _, p in fake.engine.history[-2:]] == [None, None]


def test_n_that_does_not_fit_the_queue_is_503_and_queues_nothing(fake: FakeWorld) -> None:
    # 4 slots + max_queue 4: hold 6 places with slow requests, then ask for 4 answers
    fake.engine.delay = 0.02
    for _ in range(6):
        fake.engine.enqueue(["x"] * 30)
    busy = [threading.Thread(target=chat, args=(fake,), kwargs={"max_tokens": 30})
            for _ in range(6)]
    for t in busy:
        t.start()
    pipeline = fake.app.state.pipeline
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(
            s["pending"] for s in pipeline.status()["loaded"]) < 6:
        time.sleep(0.005)
    assert_error(chat(fake, n=4), 503, code="overloaded")
    for t in busy:
        t.join()
    while time.monotonic() < deadline and pipeline.status()["loaded"][0]["pending"]:
        time.sleep(0.005)
    assert pipeline.status()["loaded"][0]["pending"] == 0  # the refused answers left nothing
    fake.engine.delay = 0
    fake.engine.enqueue(["ok"])
    assert chat(fake).json()["choices"][0]["message"]["content"] == "ok"


def test_best_of_returns_the_most_likely_and_counts_all(fake: FakeWorld) -> None:
    fake.engine.logprob_of = lambda piece: -float(len(piece))
    fake.engine.enqueue(["aaaa", "bbbb"])
    fake.engine.enqueue(["a", "b"])
    fake.engine.enqueue(["aa", "bb"])
    body = complete(fake, best_of=3, n=1).json()
    assert [c["text"] for c in body["choices"]] == ["ab"]
    assert body["choices"][0]["logprobs"] is None  # not asked for
    assert body["usage"]["completion_tokens"] == 6
    fake.engine.enqueue(["aaaa"])
    fake.engine.enqueue(["a"])
    fake.engine.enqueue(["aa"])
    two = complete(fake, best_of=3, n=2, logprobs=0).json()
    assert [(c["index"], c["text"]) for c in two["choices"]] == [(0, "a"), (1, "aa")]
    assert two["choices"][0]["logprobs"]["token_logprobs"] == [-1.0]


# -- logit_bias -----------------------------------------------------------------------------------


def test_logit_bias_reaches_the_sampler(fake: FakeWorld) -> None:
    chat(fake, logit_bias={"12": -100, "7": 2.5})
    assert fake.engine.history[-1][1].logit_bias == ((12, -100.0), (7, 2.5))


# -- fill in the middle ---------------------------------------------------------------------------


@pytest.fixture
def fim(fake: FakeWorld) -> FakeWorld:
    fake.engine.info = ScriptedEngine(name="scripted:latest", fim=(300, 301, 302)).info
    return fake


def test_suffix_builds_the_fim_prompt(fim: FakeWorld) -> None:
    fim.engine.enqueue(["  return a + b"])
    body = complete(fim, prompt="def add(a, b):\n", suffix="\nprint(add(1, 2))").json()
    assert body["choices"][0]["text"] == "  return a + b"
    prompt = fim.engine.history[-1][0]
    assert prompt == [300, *b"def add(a, b):\n", 301, *b"\nprint(add(1, 2))", 302]


def test_suffix_with_an_empty_prefix_and_ollama_suffix(fim: FakeWorld) -> None:
    fim.engine.enqueue(["x = 1"])
    assert complete(fim, prompt="", suffix="\n").status_code == 200
    assert fim.engine.history[-1][0] == [300, 301, 10, 302]
    fim.engine.enqueue(["mid"])
    resp = fim.client.post("/api/generate", json={
        "model": "scripted", "prompt": "pre", "suffix": "post", "stream": False})
    assert resp.status_code == 200, resp.text
    assert resp.json()["response"] == "mid"
    assert fim.engine.history[-1][0] == [300, *b"pre", 301, *b"post", 302]


def test_suffix_without_fim_tokens_is_400(fake: FakeWorld) -> None:
    assert_error(complete(fake, suffix="tail"), 400, param="suffix")
    resp = fake.client.post("/api/generate", json={
        "model": "scripted", "prompt": "pre", "suffix": "post", "stream": False})
    assert resp.status_code == 400 and "suffix" in resp.json()["error"]
    fake.engine.enqueue(["ok"])
    assert complete(fake, suffix="").status_code == 200  # empty: no fill-in-the-middle


@pytest.mark.parametrize("body,word", [
    ({"raw": True, "system": "be brief"}, "system"),
    ({"raw": True, "think": False}, "think"),
    ({"suffix": "x", "system": "be brief"}, "system"),
    ({"raw": True, "images": ["aGk="]}, "images"),
    ({"context": [1, 2, 3]}, "context"),
])
def test_ollama_generate_fields_that_cannot_be_honoured_are_400(
        fim: FakeWorld, body: dict[str, Any], word: str) -> None:
    resp = fim.client.post("/api/generate", json={"model": "scripted", "prompt": "p",
                                                  "stream": False, **body})
    assert resp.status_code == 400, resp.text
    assert word in resp.json()["error"]


# -- other fields ---------------------------------------------------------------------------------


def test_caller_fields_and_do_nothing_values_are_accepted(fake: FakeWorld) -> None:
    fake.engine.enqueue(["ok"])
    resp = chat(fake, user="u1", metadata={"k": "v"}, store=False, safety_identifier="s",
                prompt_cache_key="conv-1", service_tier="auto", modalities=["text"],
                verbosity="medium", parallel_tool_calls=False)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "ok"


def test_message_name_reaches_the_template(fake: FakeWorld) -> None:
    fake.engine.info = ScriptedEngine(
        name="scripted:latest",
        chat_template="{% for m in messages %}{{ m.name or '-' }}:{{ m.content }}\n{% endfor %}",
    ).info
    chat(fake, messages=[{"role": "user", "content": "hi", "name": "ada"}])
    assert bytes(fake.engine.history[-1][0]) == b"ada:hi\n"


def test_stream_obfuscation_when_asked(fake: FakeWorld) -> None:
    fake.engine.enqueue(["a"])
    events = sse_events(chat(fake, stream=True,
                             stream_options={"include_obfuscation": True}).text)
    assert all(isinstance(e["obfuscation"], str) and e["obfuscation"] for e in events[:-1])
    fake.engine.enqueue(["a"])
    events = sse_events(chat(fake, stream=True).text)
    assert all("obfuscation" not in e for e in events[:-1])
