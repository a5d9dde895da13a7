"""Every error of the Anthropic Messages API in Anthropic's shape and statuses, over a scripted
engine; the server keeps serving after each."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cove.errors import Overloaded
from tests.api.test_anthropic_scripted import USER, WEATHER, messages, sse
from tests.conftest import FakeWorld
from tests.web.helpers import Browser


def assert_error(resp: Any, status: int, kind: str, starts: str | None = None) -> str:
    """Check Anthropic's error shape; return the message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    message: str = body["error"]["message"]
    assert message
    if starts is not None:
        assert message.startswith(starts), message
    return message


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


@pytest.mark.parametrize("body,field", [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "hi"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages.0.content.0.type"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0.text"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                 "input": {}}]}]}, "messages.0.content.0.type"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t",
                                                      "name": "f", "input": "x"}]}]},
     "messages.0.content.0.input"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]},
     "messages.0.content.0.tool_use_id"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, IMAGE]}]},
     "messages.0.content.1"),
    ({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [IMAGE]}]}]},
     "messages.0.content.0"),
    ({"system": [{"type": "image"}]}, "system.0.type"),
    ({"temperature": 1.5}, "temperature"),
    ({"top_k": -1}, "top_k"),
    ({"stop_sequences": ["s"] * 17}, "stop_sequences"),
    ({"thinking": {"type": "sometimes"}}, "thinking.type"),
    ({"thinking": {"type": "enabled", "budget_tokens": 0}}, "thinking.budget_tokens"),
    ({"tools": {"name": "x"}}, "tools"),
    ({"tools": [{"name": "bad name", "input_schema": {"type": "object"}}]}, "tools.0.name"),
    ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
    ({"tools": [{"name": "f", "input_schema": {"type": "array"}}]}, "tools.0.input_schema.type"),
    ({"tools": [{"name": "f", "input_schema": {"type": "object", "properties": {
        "n": {"type": "integer", "minimum": 1}}}}]}, "tools.0.input_schema"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
    ({"tools": [WEATHER, WEATHER]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "auto"}, "tool_choice"),
    ({"tool_choice": {"type": "any"}}, "tool_choice"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {
        "type": "integer", "minimum": 3}}}}, "output_config.format.schema"),
    ({"output_config": {"format": {"type": "regex"}}}, "output_config.format.type"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
      "tools": [WEATHER]}, "output_config.format"),
    ({"messages": [*USER, {"role": "assistant", "content": "{"}], "tools": [WEATHER]},
     "messages.1"),
])
def test_invalid_requests_are_400_naming_the_field(fake: FakeWorld, body: dict[str, Any],
                                                   field: str) -> None:
    if body.get("max_tokens", 1) is None:
        body = {"model": "scripted", "messages": USER}
        resp = fake.client.post("/v1/messages", json=body)
    else:
        resp = messages(fake, **body)
    assert_error(resp, 400, "invalid_request_error", starts=f"{field}: ")
    fake.engine.enqueue(["still here"])
    assert messages(fake).json()["content"][0]["text"] == "still here"


def test_lone_surrogate_is_400_naming_the_block(fake: FakeWorld) -> None:
    raw = ('{"model": "scripted", "max_tokens": 5, "messages": [{"role": "user", "content": '
           '[{"type": "text", "text": "ok"}, {"type": "text", "text": "\\ud800"}]}]}')
    resp = fake.client.post("/v1/messages", content=raw.encode(),
                            headers={"content-type": "application/json"})
    assert_error(resp, 400, "invalid_request_error", starts="messages.0.content.1.text: ")


def test_malformed_and_non_object_bodies(fake: FakeWorld) -> None:
    resp = fake.client.post("/v1/messages", content=b'{"model": "x", "messages": [',
                            headers={"content-type": "application/json"})
    assert "JSON" in assert_error(resp, 400, "invalid_request_error")
    assert_error(fake.client.post("/v1/messages", json=[1, 2]), 400, "invalid_request_error")
    assert_error(fake.client.post("/v1/messages/count_tokens", json={"model": "scripted"}),
                 400, "invalid_request_error", starts="messages: ")


def test_unknown_model_is_404(fake: FakeWorld) -> None:
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        resp = fake.client.post(path, json={"model": "nope:7b", "max_tokens": 5,
                                            "messages": USER})
        assert "nope:7b" in assert_error(resp, 404, "not_found_error", starts="model: ")


def test_too_large_body_is_413(fake: FakeWorld) -> None:
    big = [{"role": "user", "content": "x" * (300 * 1024)}]
    assert_error(messages(fake, messages=big), 413, "request_too_large")


def test_context_length_exceeded_reads_prompt_is_too_long(fake: FakeWorld) -> None:
    # with tokens of up to 4 bytes, 2500 bytes might fit 2048 tokens: they are counted
    fake.engine.info = replace(fake.engine.info, max_token_bytes=4)
    long = [{"role": "user", "content": "word " * 500}]
    for stream in (False, True):
        message = assert_error(messages(fake, messages=long, stream=stream), 400,
                               "invalid_request_error", starts="prompt is too long: ")
        assert "> 2048 maximum" in message
    huge = [{"role": "user", "content": "word " * 2000}]
    assert "at least" in assert_error(messages(fake, messages=huge), 400,
                                      "invalid_request_error")


def test_overloaded_is_529_with_retry_after(fake: FakeWorld,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    async def full(*a: Any, **k: Any) -> Any:
        raise Overloaded("the queue is full", retry_after=3)

    monkeypatch.setattr(fake.app.state.pipeline, "start_chat", full)
    monkeypatch.setattr(fake.app.state.pipeline, "start_chat_choices", full)  # OpenAI's n
    resp = messages(fake)
    assert_error(resp, 529, "overloaded_error")
    assert resp.headers["retry-after"] == "3"
    # the OpenAI route keeps OpenAI's 503
    resp = fake.client.post("/v1/chat/completions", json={"model": "scripted", "messages": USER})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "overloaded"


def test_engine_failure_is_500_api_error(fake: FakeWorld) -> None:
    fake.engine.enqueue([RuntimeError("boom")])
    assert_error(messages(fake), 500, "api_error")
    fake.engine.enqueue(["after"])
    assert messages(fake).json()["content"][0]["text"] == "after"


def test_failure_mid_stream_ends_with_one_error_event(fake: FakeWorld) -> None:
    fake.engine.enqueue(["partial", RuntimeError("boom")])
    events = sse(messages(fake, stream=True).text)
    names = [n for n, _ in events]
    assert names[-1] == "error" and names.count("error") == 1
    assert "message_stop" not in names and "message_delta" not in names
    err = events[-1][1]
    assert set(err) == {"type", "error"} and err["error"]["type"] == "api_error"
    fake.engine.enqueue(["after"])
    assert messages(fake).json()["content"][0]["text"] == "after"


def test_routes_and_methods_in_shape(fake: FakeWorld) -> None:
    assert_error(fake.client.post("/v1/messages/nothing", json={}), 404, "not_found_error")
    assert_error(fake.client.get("/v1/messages"), 405, "invalid_request_error")
    # a neighbouring path is not Anthropic's
    resp = fake.client.get("/v1/messagesx")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_foreign_host_is_403_permission_error(fake: FakeWorld) -> None:
    resp = fake.client.post("/v1/messages", headers={"Host": "evil.example:11435"},
                            json={"model": "scripted", "max_tokens": 5, "messages": USER})
    assert_error(resp, 403, "permission_error")


def test_api_keys_by_x_api_key_or_bearer(fake: FakeWorld) -> None:
    alice = Browser(fake.client)
    assert alice.signup("alice@example.org").status_code == 200
    key = alice.post("/web/keys", json={"name": "claude"}).json()["key"]
    anonymous = fake.client.__class__(fake.app, base_url="http://localhost")
    body = {"model": "scripted", "max_tokens": 5, "messages": USER}
    message = assert_error(anonymous.post("/v1/messages", json=body), 401,
                           "authentication_error")
    assert "x-api-key" in message
    assert_error(anonymous.post("/v1/messages", json=body, headers={"x-api-key": "cove-wrong"}),
                 401, "authentication_error")
    assert_error(anonymous.post("/v1/messages/count_tokens", json=body), 401,
                 "authentication_error")
    for headers in ({"x-api-key": key}, {"Authorization": f"Bearer {key}"}):
        fake.engine.enqueue(["ok"])
        r = anonymous.post("/v1/messages", json=body,
                           headers={**headers, "anthropic-version": "2023-06-01"})
        assert r.json()["content"][0]["text"] == "ok", r.text
    r = anonymous.post("/v1/messages/count_tokens", json=body, headers={"x-api-key": key})
    assert r.json()["input_tokens"] > 0
    # the other APIs take the key in x-api-key too (it is the same Cove key)
    assert anonymous.get("/v1/models", headers={"x-api-key": key}).status_code == 200
