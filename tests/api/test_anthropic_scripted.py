"""Anthropic Messages API over a scripted engine: exact SSE events, content blocks, thinking,
tool use, stop reasons and usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import FakeWorld

WEATHER = {"name": "weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
CALL = '[{"name": "weather", "arguments": {"city": "Oslo"}}]'
USER = [{"role": "user", "content": "hi"}]


def messages(world: FakeWorld, **body: Any) -> Any:
    body.setdefault("model", "scripted")
    body.setdefault("max_tokens", 64)
    body.setdefault("messages", USER)
    return world.client.post("/v1/messages", json=body)


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of every event; each block must be ``event:`` then ``data:``,
    and the data's ``type`` must be the event's name."""
    assert text.endswith("\n\n")
    out = []
    for block in text.split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        name, data = name_line[len("event: "):], json.loads(data_line[len("data: "):])
        assert data["type"] == name
        out.append((name, data))
    return out


def prompt_of(world: FakeWorld) -> str:
    return bytes(world.engine.history[-1][0]).decode()


def test_non_streaming_message(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Hel", "lo", "!"])
    r = messages(fake)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "type", "role", "model", "content", "stop_reason",
                         "stop_sequence", "usage"}
    assert body["id"].startswith("msg_") and body["type"] == "message"
    assert body["role"] == "assistant" and body["model"] == "scripted:latest"
    assert body["content"] == [{"type": "text", "text": "Hello!"}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("end_turn", None)
    usage = body["usage"]
    assert usage["output_tokens"] == 3
    assert usage["input_tokens"] + usage["cache_read_input_tokens"] == len(
        fake.engine.history[-1][0])
    assert usage["cache_creation_input_tokens"] == 0


def test_streaming_is_exact(fake: FakeWorld) -> None:
    fake.engine.enqueue(["a", "b", "c"])
    r = messages(fake, stream=True)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    assert [n for n, _ in events] == [
        "message_start", "ping", "content_block_start", "content_block_delta",
        "content_block_delta", "content_block_delta", "content_block_stop", "message_delta",
        "message_stop"]
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["content"] == []
    assert start["stop_reason"] is None and start["usage"]["output_tokens"] == 0
    assert start["usage"]["input_tokens"] == len(fake.engine.history[-1][0])
    assert events[2][1] == {"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}
    assert [d["delta"] for _, d in events[3:6]] == [
        {"type": "text_delta", "text": t} for t in "abc"]
    assert events[6][1] == {"type": "content_block_stop", "index": 0}
    delta = events[7][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 3


def test_empty_answer_is_one_empty_text_block(fake: FakeWorld) -> None:
    fake.engine.enqueue([])
    assert messages(fake).json()["content"] == [{"type": "text", "text": ""}]
    fake.engine.enqueue([])
    names = [n for n, _ in sse(messages(fake, stream=True).text)]
    assert names == ["message_start", "ping", "content_block_start", "content_block_stop",
                     "message_delta", "message_stop"]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_and_max_tokens(fake: FakeWorld, stream: bool) -> None:
    def final(**body: Any) -> dict[str, Any]:
        r = messages(fake, stream=stream, **body)
        if not stream:
            return r.json()  # type: ignore[no-any-return]
        delta = next(d for n, d in sse(r.text) if n == "message_delta")
        return {**delta["delta"], "usage": delta["usage"]}

    fake.engine.enqueue(["one", " two", " three"])
    body = final(stop_sequences=["nope", " tw"])
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", " tw")
    assert fake.engine.history[-1][1].stop == ("nope", " tw")
    fake.engine.enqueue(["one", " two", " three"])
    body = final(max_tokens=2)
    assert (body["stop_reason"], body["stop_sequence"]) == ("max_tokens", None)
    assert body["usage"]["output_tokens"] == 2


def test_system_and_blocks_reach_the_prompt(fake: FakeWorld) -> None:
    fake.engine.enqueue(["x"])
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Hello"},
                                         {"type": "text", "text": "there",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
            {"role": "user", "content": "Bye"}]
    system = [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}]
    assert messages(fake, system=system, messages=msgs, metadata={"user_id": "u1"},
                    temperature=0.5, top_p=0.9, top_k=7).status_code == 200
    assert prompt_of(fake) == (
        "<|im_start|>system\nBe brief.\nBe kind.<|im_end|>\n<|im_start|>user\nHello\nthere"
        "<|im_end|>\n<|im_start|>assistant\nHi!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n")
    params = fake.engine.history[-1][1]
    assert (params.temperature, params.top_p, params.top_k, params.max_tokens) == (
        0.5, 0.9, 7, 64)
    fake.engine.enqueue(["x"])
    messages(fake, system="Just a string.")
    assert prompt_of(fake).startswith("<|im_start|>system\nJust a string.<|im_end|>")


def test_headers_of_anthropic_clients_are_accepted(fake: FakeWorld) -> None:
    for headers in ({"anthropic-version": "2023-06-01"},
                    {"anthropic-version": "2099-01-01", "anthropic-beta": "whatever-2025"}, {}):
        fake.engine.enqueue(["ok"])
        r = fake.client.post("/v1/messages", headers=headers, json={
            "model": "scripted", "max_tokens": 5, "messages": USER})
        assert r.json()["content"][0]["text"] == "ok"


def test_thinking_block_non_streaming(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["Two plus", " two.</th", "ink>\n\nIt is ", "4."])
    body = messages(thinker, model="thinker").json()
    assert body["content"] == [
        {"type": "thinking", "thinking": "Two plus two.", "signature": ""},
        {"type": "text", "text": "It is 4."}]


def test_thinking_streaming_blocks(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["a", "b</", "think>", "c", "d"])
    events = sse(messages(thinker, model="thinker", stream=True).text)
    blocks = [(n, d) for n, d in events if n.startswith("content_block")]
    assert blocks[0][1]["content_block"] == {"type": "thinking", "thinking": "",
                                             "signature": ""}
    assert [d["delta"] for n, d in blocks if d["index"] == 0 and n == "content_block_delta"] == [
        {"type": "thinking_delta", "thinking": "a"}, {"type": "thinking_delta", "thinking": "b"},
        {"type": "signature_delta", "signature": ""}]
    assert blocks[4] == ("content_block_stop", {"type": "content_block_stop", "index": 0})
    assert blocks[5][1] == {"type": "content_block_start", "index": 1,
                            "content_block": {"type": "text", "text": ""}}
    text = "".join(d["delta"]["text"] for n, d in blocks
                   if n == "content_block_delta" and d["index"] == 1)
    assert text == "cd" and blocks[-1][1] == {"type": "content_block_stop", "index": 1}


def test_thinking_budget_and_disabled(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["a", "b", "c", "d", "e", "Answer", "."])
    body = messages(thinker, model="thinker",
                    thinking={"type": "enabled", "budget_tokens": 3}).json()
    assert body["content"][0] == {"type": "thinking", "thinking": "abc", "signature": ""}
    assert body["content"][1]["text"] == "deAnswer."
    thinker.engine.enqueue(["x"])
    r = messages(thinker, model="thinker", thinking={"type": "disabled"})
    assert r.status_code == 200
    thinker.engine.enqueue(["x"])
    assert messages(thinker, model="thinker", thinking={"type": "adaptive"}).status_code == 200


def test_thinking_blocks_of_earlier_turns_are_not_sent_back(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["ok</think>fine"])
    msgs = [{"role": "user", "content": "q1"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "SECRET PLAN", "signature": "sig"},
                {"type": "redacted_thinking", "data": "SECRET BLOB"},
                {"type": "text", "text": "answer one"}]},
            {"role": "user", "content": "q2"}]
    assert messages(thinker, model="thinker", messages=msgs).status_code == 200
    prompt = prompt_of(thinker)
    assert "SECRET" not in prompt and "answer one" in prompt


def test_tool_use_non_streaming(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL[:10], CALL[10:]])
    r = messages(fake, tools=[WEATHER])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stop_reason"] == "tool_use"
    [block] = body["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert (block["name"], block["input"]) == ("weather", {"city": "Oslo"})
    prompt, params = fake.engine.history[-1]
    assert params.grammar and "cove-free" in params.grammar  # auto: answer or call
    assert b"weather" in bytes(prompt) and b"Weather in a city" in bytes(prompt)


def test_tool_use_streaming(fake: FakeWorld) -> None:
    two = CALL[:-1] + ', {"name": "weather", "arguments": {"city": "Rome"}}]'
    fake.engine.enqueue([two])
    events = sse(messages(fake, tools=[WEATHER], stream=True).text)
    starts = [d for n, d in events if n == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"], s["content_block"]["input"])
            for s in starts] == [(0, "tool_use", {}), (1, "tool_use", {})]
    assert all(s["content_block"]["id"].startswith("toolu_") for s in starts)
    args: dict[int, str] = {}
    for n, d in events:
        if n == "content_block_delta":
            assert d["delta"]["type"] == "input_json_delta"
            args[d["index"]] = args.get(d["index"], "") + d["delta"]["partial_json"]
    assert [json.loads(a) for a in args.values()] == [{"city": "Oslo"}, {"city": "Rome"}]
    assert next(d for n, d in events if n == "message_delta")["delta"]["stop_reason"] == \
        "tool_use"


def test_plain_answer_with_tools_is_text(fake: FakeWorld) -> None:
    fake.engine.enqueue([" It", " is sunny."])
    body = messages(fake, tools=[WEATHER]).json()
    assert body["content"] == [{"type": "text", "text": " It is sunny."}]
    assert body["stop_reason"] == "end_turn"


def test_tool_choice_kinds(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL])
    body = messages(fake, tools=[WEATHER], tool_choice={"type": "none"}).json()
    assert body["content"][0]["text"] == CALL  # never parsed as a call
    assert fake.engine.history[-1][1].grammar is None
    messages(fake, tools=[WEATHER], tool_choice={"type": "any"})
    grammar = fake.engine.history[-1][1].grammar
    assert grammar and "cove-free" not in grammar and "weather" in grammar
    messages(fake, tools=[WEATHER], tool_choice={"type": "any",
                                                 "disable_parallel_tool_use": True})
    single = fake.engine.history[-1][1].grammar
    assert single and single != grammar
    fake.engine.enqueue(['{"name": "weather", "arguments": {"city": "Oslo"}}'])
    body = messages(fake, tools=[WEATHER], tool_choice={"type": "tool", "name": "weather"}).json()
    assert body["content"][0]["input"] == {"city": "Oslo"}
    fake.engine.enqueue(["hi"])
    assert messages(fake, tools=[WEATHER], tool_choice={"type": "auto"}).status_code == 200


def test_tool_result_continues_the_conversation(fake: FakeWorld) -> None:
    msgs = [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 20C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "no station"}]},
            {"type": "text", "text": "Thanks!"}]},
    ]
    fake.engine.enqueue(["Sunny."])
    body = messages(fake, tools=[WEATHER], messages=msgs).json()
    assert body["content"][0]["text"] == "Sunny."
    prompt = prompt_of(fake)
    assert "<|im_start|>assistant\nLet me look.<|im_end|>" in prompt
    assert ("<|im_start|>tool\nsunny, 20C<|im_end|>\n<|im_start|>tool\nError: no station"
            "<|im_end|>\n<|im_start|>user\nThanks!<|im_end|>") in prompt
    # an assistant turn of tool calls only shows the calls the model was asked to produce
    fake.engine.enqueue(["ok"])
    only_calls = [msgs[0], {"role": "assistant", "content": [msgs[1]["content"][1]]},
                  {"role": "user", "content": [msgs[2]["content"][0]]}]
    assert messages(fake, tools=[WEATHER], messages=only_calls).status_code == 200
    prompt = prompt_of(fake)
    assert '<|im_start|>assistant\n{"name": "weather", "arguments": {"city": "Oslo"}}' in prompt
    assert "<|im_start|>tool\nsunny, 20C<|im_end|>\n<|im_start|>assistant\n" in prompt


def test_count_tokens_matches_the_prompt(fake: FakeWorld) -> None:
    system = "Be brief."
    fake.engine.enqueue(["x"])
    messages(fake, system=system, tools=[WEATHER])
    generated = len(fake.engine.history[-1][0])
    r = fake.client.post("/v1/messages/count_tokens", json={
        "model": "scripted", "system": system, "tools": [WEATHER], "messages": USER})
    assert r.json() == {"input_tokens": generated}
    plain = fake.client.post("/v1/messages/count_tokens", json={
        "model": "scripted", "messages": USER}).json()["input_tokens"]
    assert plain == len(b"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert len(fake.engine.history) == 1  # counting generates nothing
    long = [{"role": "user", "content": "word " * 1000}]  # over the 2048-token window
    r = fake.client.post("/v1/messages/count_tokens", json={"model": "scripted",
                                                            "messages": long})
    assert r.json()["input_tokens"] > 5000


def test_output_config_format_constrains_by_grammar(fake: FakeWorld) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string"}},
              "required": ["colour"]}
    fake.engine.enqueue(['{"colour": "red"}'])
    body = messages(fake, output_config={"effort": "low", "format": {"type": "json_schema",
                                                                     "schema": schema}}).json()
    assert json.loads(body["content"][0]["text"]) == {"colour": "red"}
    grammar = fake.engine.history[-1][1].grammar
    assert grammar and "colour" in grammar


def test_final_assistant_turn_is_a_prefill(fake: FakeWorld) -> None:
    msgs = [{"role": "user", "content": "Colour of the sky?"},
            {"role": "assistant", "content": [{"type": "text", "text": "The sky is"}]}]
    fake.engine.enqueue([" blue."])
    body = messages(fake, messages=msgs).json()
    assert body["content"] == [{"type": "text", "text": " blue."}]  # only the continuation
    prompt = prompt_of(fake)
    assert prompt.endswith("<|im_start|>user\nColour of the sky?<|im_end|>\n"
                           "<|im_start|>assistant\nThe sky is")
    counted = fake.client.post("/v1/messages/count_tokens", json={
        "model": "scripted", "messages": msgs}).json()["input_tokens"]
    assert counted == len(prompt.encode())
