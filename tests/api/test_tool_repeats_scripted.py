"""A model that repeats its tool call (small models do, until ``max_tokens``): the calls come
back as ``tool_calls``, never as content, and generation stops at the first verbatim repeat.
Exact cases over the scripted engine, streamed and not, on both APIs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.test_openai_scripted import chat, sse_events
from tests.api.test_tools_scripted import CALL, WEATHER
from tests.conftest import FakeWorld

ROME = CALL.replace("Oslo", "Rome")
NAMED = {"type": "function", "function": {"name": "weather"}}


def repeating(n: int = 40) -> list[str]:
    """``[CALL, CALL, CALL, ...`` one piece (token) per call, never closed."""
    return ["[", *[p for _ in range(n) for p in (CALL, ",")]]


def streamed_openai(text: str) -> tuple[str, list[dict[str, Any]], str | None]:
    """(content, calls, finish_reason) of an SSE chat stream."""
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    content, calls, finish = "", {}, None
    for e in events[:-1]:
        choice = e["choices"][0]
        content += choice["delta"].get("content") or ""
        for tc in choice["delta"].get("tool_calls") or []:
            call = calls.setdefault(tc["index"], {"name": None, "arguments": ""})
            call["name"] = tc["function"].get("name") or call["name"]
            call["arguments"] += tc["function"].get("arguments") or ""
        finish = choice["finish_reason"] or finish
    return content, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("choice", ["required", NAMED, "auto"])
def test_repeated_call_stops_and_comes_back_once(fake: FakeWorld, choice: Any) -> None:
    fake.engine.enqueue(repeating())
    r = chat(fake, tools=[WEATHER], tool_choice=choice, max_tokens=200)
    assert r.status_code == 200, r.text
    c = r.json()["choices"][0]
    assert c["finish_reason"] == "tool_calls"
    assert c["message"]["content"] is None
    calls = c["message"]["tool_calls"]
    assert [(x["function"]["name"], json.loads(x["function"]["arguments"])) for x in calls] == [
        ("weather", {"city": "Oslo"})]
    # stopped by the engine at the token that completed the repeat
    assert r.json()["usage"]["completion_tokens"] == 4  # "[", call, ",", the same call


def test_repeated_call_streamed(fake: FakeWorld) -> None:
    fake.engine.enqueue(["[", CALL, ",", ROME, ",", CALL, ",", ROME, ",", CALL] * 5)
    r = chat(fake, tools=[WEATHER], tool_choice="required", max_tokens=200, stream=True)
    content, calls, finish = streamed_openai(r.text)
    assert content == "" and finish == "tool_calls"
    assert [json.loads(c["arguments"])["city"] for c in calls] == ["Oslo", "Rome"]


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cut_keeps_complete_calls(fake: FakeWorld, stream: bool) -> None:
    fake.engine.enqueue(["[", CALL, ",", ROME[:12], ROME[12:]])
    r = chat(fake, tools=[WEATHER], tool_choice="required", max_tokens=4, stream=stream)
    if stream:
        content, calls, finish = streamed_openai(r.text)
        args = [json.loads(c["arguments"]) for c in calls]
    else:
        c = r.json()["choices"][0]
        content, finish = c["message"]["content"] or "", c["finish_reason"]
        args = [json.loads(x["function"]["arguments"]) for x in c["message"]["tool_calls"]]
    assert content == ""  # the partial second call is dropped, never shown as text
    assert args == [{"city": "Oslo"}]
    assert finish == "length"


def test_cut_before_any_complete_call_has_no_content(fake: FakeWorld) -> None:
    fake.engine.enqueue(["[", CALL[:15], CALL[15:]])
    c = chat(fake, tools=[WEATHER], tool_choice="required", max_tokens=2).json()["choices"][0]
    assert c["finish_reason"] == "length"
    assert not c["message"].get("content") and not c["message"].get("tool_calls")


def test_closed_array_with_duplicates_is_deduplicated(fake: FakeWorld) -> None:
    fake.engine.enqueue([f"[{CALL}, {ROME}]"])
    c = chat(fake, tools=[WEATHER], tool_choice="required").json()["choices"][0]
    assert [json.loads(x["function"]["arguments"])["city"]
            for x in c["message"]["tool_calls"]] == ["Oslo", "Rome"]
    fake.engine.enqueue([f"<tool_call>[{CALL}, {CALL}]</tool_call>"])
    c = chat(fake, tools=[WEATHER]).json()["choices"][0]
    assert len(c["message"]["tool_calls"]) == 1 and c["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_repeated_call(fake: FakeWorld, stream: bool) -> None:
    fake.engine.enqueue(repeating())
    r = fake.client.post("/api/chat", json={
        "model": "scripted", "stream": stream, "tools": [WEATHER], "options": {"num_predict": 200},
        "messages": [{"role": "user", "content": "Oslo?"}]})
    assert r.status_code == 200, r.text
    lines = [json.loads(x) for x in r.text.splitlines()] if stream else [r.json()]
    calls = [c for x in lines for c in x["message"].get("tool_calls") or []]
    assert calls == [{"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]
    assert "".join(x["message"]["content"] for x in lines) == ""
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert lines[-1]["eval_count"] == 4
