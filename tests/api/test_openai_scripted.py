"""OpenAI API over a scripted engine: exact SSE framing, reasoning split, every error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cove.engine.fake import ScriptedEngine
from tests.conftest import FakeWorld

R1_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}"
)


def chat(world: FakeWorld, **body: Any) -> Any:
    body.setdefault("model", "scripted")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return world.client.post("/v1/chat/completions", json=body)


def sse_events(text: str) -> list[Any]:
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def assert_error(resp: Any, status: int, param: str | None = None, code: str | None = None) -> Any:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return err


def test_non_streaming_chat(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Hel", "lo", "!"])
    resp = chat(fake, max_tokens=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello!"}
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 3


@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_is_exact_sse(fake: FakeWorld, include_usage: bool) -> None:
    fake.engine.enqueue(["a", "b", "c"])
    body: dict[str, Any] = {"stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    resp = chat(fake, **body)
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    if include_usage:
        usage_chunk = chunks.pop()
        assert usage_chunk["choices"] == []
        assert usage_chunk["usage"]["completion_tokens"] == 3
        assert all(c["usage"] is None for c in chunks)
    else:
        assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[:-1] == [None] * (len(chunks) - 1)
    assert finishes[-1] == "stop"
    assert chunks[-1]["choices"][0]["delta"] == {}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "abc"


def test_stop_and_max_tokens(fake: FakeWorld) -> None:
    fake.engine.enqueue(["one", " two", " three"])
    body = chat(fake, stop=[" tw"]).json()
    assert body["choices"][0]["message"]["content"] == "one"
    assert body["choices"][0]["finish_reason"] == "stop"
    fake.engine.enqueue(["one", " two", " three"])
    body = chat(fake, max_tokens=1).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 1


def test_content_parts_work_like_strings(fake: FakeWorld) -> None:
    fake.engine.enqueue(["x"])
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Hello"},
                                         {"type": "text", "text": "there"}]}]
    assert chat(fake, messages=msgs).status_code == 200
    prompt = bytes(fake.engine.history[-1][0]).decode()
    assert "Hello\nthere" in prompt


def test_image_part_on_text_only_model_is_400(fake: FakeWorld) -> None:
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    assert_error(chat(fake, messages=msgs), 400, param="messages[0].content")


@pytest.fixture
def thinker(fake: FakeWorld) -> FakeWorld:
    fake.engine.info = ScriptedEngine(chat_template=R1_TEMPLATE, name="thinker:latest").info
    return fake


def test_reasoning_split_non_streaming(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["Two plus", " two is four.</th", "ink>\n\nIt is ", "4."])
    msg = chat(thinker).json()["choices"][0]["message"]
    assert msg["reasoning_content"] == "Two plus two is four."
    assert msg["content"] == "It is 4."


def test_reasoning_split_streaming(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["<think>", "a", "b</", "think>", "c", "d"])
    chunks = sse_events(chat(thinker, stream=True).text)[:-1]
    reasoning, content = "", ""
    for c in chunks[1:]:
        delta = c["choices"][0]["delta"]
        assert not ("content" in delta and "reasoning_content" in delta)
        for v in delta.values():
            assert "<think>" not in v and "</think>" not in v
        reasoning += delta.get("reasoning_content", "")
        content += delta.get("content", "")
    assert (reasoning, content) == ("ab", "cd")


def test_length_inside_thinking_keeps_reasoning(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["I am", " still", " thinking", " more"])
    body = chat(thinker, max_tokens=3).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["reasoning_content"] == "I am still thinking"
    assert choice["message"]["content"] == ""


def test_earlier_reasoning_is_not_sent_back(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["ok</think>fine"])
    msgs = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "<think>SECRET PLAN</think>answer one",
         "reasoning_content": "SECRET PLAN"},
        {"role": "user", "content": "q2"},
    ]
    assert chat(thinker, messages=msgs).status_code == 200
    prompt = bytes(thinker.engine.history[-1][0]).decode()
    assert "SECRET" not in prompt and "answer one" in prompt


def test_completions_endpoint(fake: FakeWorld) -> None:
    fake.engine.enqueue(["jumps", " over"])
    body = fake.client.post("/v1/completions",
                            json={"model": "scripted", "prompt": "The fox"}).json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "jumps over"
    fake.engine.enqueue(["x", "y"])
    resp = fake.client.post("/v1/completions",
                            json={"model": "scripted", "prompt": "p", "stream": True})
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == "xy"


def test_models_and_health(fake: FakeWorld) -> None:
    ids = [m["id"] for m in fake.client.get("/v1/models").json()["data"]]
    assert "scripted:latest" in ids
    assert fake.client.get("/health").json()["status"] == "ok"


# -- errors -------------------------------------------------------------------------------------


def test_malformed_json(fake: FakeWorld) -> None:
    resp = fake.client.post("/v1/chat/completions", content=b'{"model": "x", "messages": [',
                            headers={"content-type": "application/json"})
    assert "JSON" in assert_error(resp, 400)["message"]


@pytest.mark.parametrize(
    "body,param",
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 9}, "temperature"),
        ({"n": 0}, "n"),
        ({"n": 5}, "n"),  # more than the 4 slots
        ({"stop": 5}, "stop"),
        ({"top_logprobs": 2}, "top_logprobs"),  # needs logprobs: true
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"logit_bias": {"-1": 1}}, "logit_bias"),
        ({"logit_bias": {"12": 101}}, "logit_bias"),
        ({"logit_bias": {"12": "x"}}, "logit_bias"),
        ({"logit_bias": {"12": True}}, "logit_bias"),
        ({"logit_bias": [1, 2]}, "logit_bias"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"verbosity": "low"}, "verbosity"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]},
         "tools[0].function.name"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": {"a": 1}}, "tools"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]},
         "messages[0].content[0].type"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(fake: FakeWorld, body: dict[str, Any],
                                                 param: str) -> None:
    assert_error(chat(fake, **body), 400, param=param)


def test_non_object_body(fake: FakeWorld) -> None:
    assert_error(fake.client.post("/v1/chat/completions", json=[1, 2]), 400)


def test_unknown_model_is_404(fake: FakeWorld) -> None:
    assert_error(chat(fake, model="nope:7b"), 404, code="model_not_found")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..\\..\\x", "a/b",
                                  "C:\\models\\x.gguf", "~/.ssh/id_rsa", "x\x00y", " ", "a:b:c"])
def test_path_like_model_names_are_404(fake: FakeWorld, name: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import pathlib

    def no_fs(*a: Any, **k: Any) -> Any:
        raise AssertionError("touched the filesystem")

    with monkeypatch.context() as m:
        m.setattr(pathlib.Path, "stat", no_fs)
        m.setattr(pathlib.Path, "exists", no_fs)
        resp = chat(fake, model=name)
    assert_error(resp, 404, code="model_not_found")


def test_oversized_body_is_413(fake: FakeWorld) -> None:
    big = "x" * (300 * 1024)
    assert_error(chat(fake, messages=[{"role": "user", "content": big}]), 413)

    def chunks() -> Any:
        yield b'{"model": "scripted", "messages": [{"role": "user", "content": "'
        for _ in range(300):
            yield b"y" * 1024
        yield b'"}]}'

    resp = fake.client.post("/v1/chat/completions", content=chunks(),
                            headers={"content-type": "application/json"})
    assert_error(resp, 413)


def test_context_length_exceeded_then_next_request_works(fake: FakeWorld) -> None:
    long = "word " * 500  # 2500 bytes = tokens for the scripted engine (n_ctx 2048)
    for stream in (False, True):
        err = assert_error(chat(fake, messages=[{"role": "user", "content": long}],
                                stream=stream), 400, code="context_length_exceeded")
        assert "2048" in err["message"]
    fake.engine.enqueue(["fine"])
    assert chat(fake).json()["choices"][0]["message"]["content"] == "fine"


def test_failure_mid_stream_ends_with_one_error_event(fake: FakeWorld) -> None:
    fake.engine.enqueue(["partial", RuntimeError("boom")])
    events = sse_events(chat(fake, stream=True).text)
    assert "[DONE]" not in events
    assert "error" in events[-1]
    assert set(events[-1]["error"]) == {"message", "type", "param", "code"}
    assert [e for e in events if "error" in e] == [events[-1]]
    fake.engine.enqueue(["after"])
    assert chat(fake).json()["choices"][0]["message"]["content"] == "after"


def test_unknown_route_and_method_in_shape(fake: FakeWorld) -> None:
    assert_error(fake.client.get("/v1/nothing"), 404, code="not_found")
    resp = fake.client.get("/v1/chat/completions")
    assert_error(resp, 405, code="method_not_allowed")
    assert resp.headers["allow"] == "POST"


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/v1/models", "GET"),
    ("DELETE", "/v1/completions", "POST"),
    ("POST", "/health", "GET"),
    # one route per method on these paths: Allow names them all, not the first one found
    ("PATCH", "/web/conversations", "GET, POST, DELETE"),
    ("PUT", "/web/conversations/abc", "GET, PATCH, DELETE"),
    ("POST", "/static/app.js", "GET, HEAD"),
])
def test_405_names_every_allowed_method(fake: FakeWorld, method: str, path: str,
                                        allow: str) -> None:
    resp = fake.client.request(method, path)
    err = assert_error(resp, 405, code="method_not_allowed")
    assert resp.headers["allow"] == allow
    assert allow in err["message"]


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", {"stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"stream": 0}, "stream"),
    ("/v1/chat/completions", {"stream": 1}, "stream"),
    ("/v1/chat/completions", {"stream": "true"}, "stream"),
    ("/v1/chat/completions", {"stream": True, "stream_options": {"include_usage": 1}},
     "stream_options.include_usage"),
    ("/v1/chat/completions", {"parallel_tool_calls": "false"}, "parallel_tool_calls"),
    ("/v1/chat/completions", {"logprobs": "no"}, "logprobs"),
    ("/v1/completions", {"prompt": "x", "echo": 1}, "echo"),
    ("/v1/completions", {"prompt": "x", "stream": "no"}, "stream"),
])
def test_booleans_are_strict(fake: FakeWorld, path: str, body: dict[str, Any],
                             param: str) -> None:
    body = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}], **body}
    err = assert_error(fake.client.post(path, json=body), 400, param=param)
    assert "expected true or false" in err["message"]


SECRET = "/home/someone/secret-model-path.gguf"


def test_server_errors_show_only_a_reference(fake: FakeWorld,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A 5xx carries no exception text, only a reference to the logged error."""
    import re

    fake.engine.enqueue([RuntimeError(SECRET)])
    with caplog.at_level("ERROR"):
        err = assert_error(chat(fake), 500, code="engine_error")
    assert SECRET not in err["message"] and "RuntimeError" not in err["message"]
    ref = re.search(r"reference ([0-9a-f]{8})", err["message"])
    assert ref, err["message"]
    assert any(ref[1] in r.getMessage() for r in caplog.records)  # the reference is logged
    assert SECRET in caplog.text  # and so is the exception (its traceback)

    fake.engine.enqueue(["partial", RuntimeError(SECRET)])
    events = sse_events(chat(fake, stream=True).text)
    assert set(events[-1]) == {"error"}
    assert SECRET not in json.dumps(events) and "reference" in events[-1]["error"]["message"]
    for path, body in [("/v1/completions", {"model": "scripted", "prompt": "x"}),
                       ("/v1/completions", {"model": "scripted", "prompt": "x", "stream": True})]:
        fake.engine.enqueue([RuntimeError(SECRET)])
        resp = fake.client.post(path, json=body)
        assert SECRET not in resp.text and "reference" in resp.text, resp.text


def test_lone_surrogate_is_400_and_server_keeps_serving(fake: FakeWorld) -> None:
    raw = '{"model": "scripted", "messages": [{"role": "user", "content": "\\ud800"}]}'
    resp = fake.client.post("/v1/chat/completions", content=raw.encode(),
                            headers={"content-type": "application/json"})
    assert_error(resp, 400, param="messages[0].content")
    raw = '{"model": "scripted", "prompt": "x\\ud83d"}'
    resp = fake.client.post("/v1/completions", content=raw.encode(),
                            headers={"content-type": "application/json"})
    assert_error(resp, 400, param="prompt")
    fake.engine.enqueue(["still here"])
    assert chat(fake).json()["choices"][0]["message"]["content"] == "still here"


def test_huge_prompt_is_refused_without_tokenizing(fake: FakeWorld,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = fake.engine.tokenize

    def counting(text: str, **kw: Any) -> list[int]:
        calls.append(len(text))
        return original(text, **kw)

    monkeypatch.setattr(fake.engine, "tokenize", counting)
    big = "<|im_end|>" * 5000  # 50 KB > n_ctx (2048) x longest token (1 byte)
    err = assert_error(chat(fake, messages=[{"role": "user", "content": big}]), 400,
                       code="context_length_exceeded")
    assert "at least" in err["message"]
    assert calls == []
    many = [{"role": "user", "content": ""}] * 3000
    assert_error(chat(fake, messages=many), 400, code="context_length_exceeded")
    resp = fake.client.post("/v1/completions", json={"model": "scripted", "prompt": "y" * 3000})
    assert assert_error(resp, 400, code="context_length_exceeded")["param"] == "prompt"


def test_booleans_are_not_integers(fake: FakeWorld) -> None:
    assert_error(chat(fake, max_tokens=True), 400, param="max_tokens")
    assert_error(chat(fake, seed=False), 400, param="seed")


def test_deeply_nested_json_is_400(fake: FakeWorld) -> None:
    body = b'{"model": "scripted", "messages": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    resp = fake.client.post("/v1/chat/completions", content=body,
                            headers={"content-type": "application/json"})
    assert assert_error(resp, 400)["code"] == "invalid_request"


def test_assistant_text_mentioning_think_tag_kept_for_plain_models(fake: FakeWorld) -> None:
    fake.engine.enqueue(["ok"])
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "Answer: 5. (I wrote </think> by mistake)"},
            {"role": "user", "content": "q2"}]
    assert chat(fake, messages=msgs).status_code == 200
    prompt = bytes(fake.engine.history[-1][0]).decode()
    assert "Answer: 5. (I wrote </think> by mistake)" in prompt


def test_foreign_host_header_is_refused_on_loopback(fake: FakeWorld) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    resp = fake.client.get("/v1/models", headers={"Host": "evil.example:11435"})
    assert_error(resp, 403)
    for host in ("localhost:11435", "127.0.0.1", "[::1]:8080", "cove.localhost"):
        assert fake.client.get("/v1/models", headers={"Host": host}).status_code == 200


def test_lone_surrogate_anywhere_is_400_naming_the_field(fake: FakeWorld) -> None:
    raw = (b'{"model": "scripted", "messages": [{"role": "user", "content": "hi"}], '
           b'"user": "\\udfff"}')
    resp = fake.client.post("/v1/chat/completions", content=raw,
                            headers={"content-type": "application/json"})
    assert_error(resp, 400, param="user")
    raw = b'{"model": "scripted", "input": ["ok", "\\ud800"]}'
    resp = fake.client.post("/api/embed", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "Unicode" in resp.json()["error"]
