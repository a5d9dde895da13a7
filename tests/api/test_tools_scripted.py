"""Tool calling, reasoning controls and the reasoning budget over a scripted engine (exact)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.test_openai_scripted import assert_error, chat, sse_events
from tests.conftest import FakeWorld

WEATHER = {"type": "function", "function": {
    "name": "weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CALL = '{"name": "weather", "arguments": {"city": "Oslo"}}'


def test_tool_call_non_streaming(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL[:10], CALL[10:]])
    r = chat(fake, tools=[WEATHER])
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert choice["message"]["content"] is None
    assert calls[0]["type"] == "function" and calls[0]["id"].startswith("call_")
    assert calls[0]["function"]["name"] == "weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
    prompt, params = fake.engine.history[-1]
    assert params.grammar and "cove-free" in params.grammar  # auto: answer or call
    assert b"weather" in bytes(prompt)  # described to a model without a tool template


def test_tool_call_streaming_delta_format(fake: FakeWorld) -> None:
    fake.engine.enqueue(["[", CALL, ",", CALL.replace("Oslo", "Rome"), "]"])
    r = chat(fake, tools=[WEATHER], stream=True)
    events = sse_events(r.text)
    deltas = [e["choices"][0]["delta"]["tool_calls"] for e in events[:-1]
              if e["choices"][0]["delta"].get("tool_calls")]
    args: dict[int, str] = {}
    for d in deltas:
        assert isinstance(d[0]["index"], int)
        if "id" in d[0]:
            assert d[0]["type"] == "function" and d[0]["function"]["name"] == "weather"
        args[d[0]["index"]] = args.get(d[0]["index"], "") + d[0]["function"]["arguments"]
    assert [json.loads(a)["city"] for a in args.values()] == ["Oslo", "Rome"]
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1] == "[DONE]"


def test_plain_answer_with_tools_streams_as_content(fake: FakeWorld) -> None:
    fake.engine.enqueue([" It", " is sunny."])
    events = sse_events(chat(fake, tools=[WEATHER], stream=True).text)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == " It is sunny."
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_tool_choice_none_and_required_and_named(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL])
    r = chat(fake, tools=[WEATHER], tool_choice="none")
    assert r.json()["choices"][0]["message"]["content"] == CALL  # never parsed as a call
    assert fake.engine.history[-1][1].grammar is None
    chat(fake, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    grammar = fake.engine.history[-1][1].grammar
    assert grammar and "cove-free" not in grammar and "weather" in grammar
    chat(fake, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "weather"}})
    assert_error(chat(fake, tools=[WEATHER], tool_choice={"type": "function",
                                                         "function": {"name": "nope"}}),
                 400, param="tool_choice")


@pytest.mark.parametrize("tools,param", [
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}],
     "tools[0].function.parameters.type"),
    ([{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}}],
     "tools[0].function.parameters"),
    ([{"type": "retrieval"}], "tools[0].type"),
    ([WEATHER, WEATHER], "tools"),
])
def test_malformed_tools_are_400(fake: FakeWorld, tools: Any, param: str) -> None:
    assert_error(chat(fake, tools=tools), 400, param=param)


def test_tool_result_continues_the_chat(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Sunny."])
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 20C"},
    ]
    r = chat(fake, tools=[WEATHER], messages=messages)
    assert r.json()["choices"][0]["message"]["content"] == "Sunny."
    prompt = bytes(fake.engine.history[-1][0]).decode()
    assert '<|im_start|>assistant\n{"name": "weather", "arguments": {"city": "Oslo"}}' in prompt
    assert "<|im_start|>tool\nsunny, 20C<|im_end|>" in prompt


def test_ollama_tools(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL])
    r = fake.client.post("/api/chat", json={"model": "scripted", "stream": False, "tools": [
        WEATHER], "messages": [{"role": "user", "content": "Oslo?"}]})
    assert r.status_code == 200, r.text
    assert r.json()["message"]["tool_calls"] == [
        {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]
    fake.engine.enqueue([CALL])
    r = fake.client.post("/api/chat", json={"model": "scripted", "tools": [WEATHER],
                                            "messages": [{"role": "user", "content": "Oslo?"}]})
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert any(x["message"].get("tool_calls") for x in lines)
    assert lines[-1]["done"] is True


def test_reasoning_budget_closes_thinking(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["a", "b", "c", "d", "e", "Answer", "."])
    r = chat(thinker, model="thinker", thinking={"type": "enabled", "budget_tokens": 3})
    msg = r.json()["choices"][0]["message"]
    assert msg["reasoning_content"] == "abc"  # closed after 3 tokens
    assert msg["content"] == "deAnswer."
    assert msg["reasoning_budget_exhausted"] is True
    # the injected close was fed to the model like prompt tokens, in one feed
    assert any(n == 1 + len("\n</think>\n\n") for step in thinker.engine.decodes
               for _, n, _ in step)


def test_reasoning_within_budget_is_untouched(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["ab", "</think>", "Hi"])
    r = chat(thinker, model="thinker", reasoning_budget=10)
    msg = r.json()["choices"][0]["message"]
    assert (msg["reasoning_content"], msg["content"]) == ("ab", "Hi")
    assert "reasoning_budget_exhausted" not in msg


def test_thinking_disabled_reaches_the_template(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["x"])
    chat(thinker, model="thinker", thinking={"type": "disabled"})
    chat(thinker, model="thinker", reasoning_effort="none")
    assert_error(chat(thinker, model="thinker", reasoning_effort="extreme"), 400,
                 param="reasoning_effort")


def test_thinking_controls_are_noops_without_reasoning(fake: FakeWorld) -> None:
    fake.engine.enqueue(["hello"])
    r = chat(fake, thinking={"type": "enabled", "budget_tokens": 1})
    assert r.json()["choices"][0]["message"]["content"] == "hello"


def test_errors_name_the_clients_message_when_tools_add_a_system_message(
        fake: FakeWorld) -> None:
    """The tool description is a system message Cove adds in front: an error must still name
    the client's own message index."""
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    assert_error(chat(fake, tools=[WEATHER], messages=msgs), 400, param="messages[0].content")
