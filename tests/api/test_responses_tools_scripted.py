"""Responses API function tools and structured output over a scripted engine: function_call
items and their stream events, tool results through previous_response_id, function items in the
input, tool_choice shapes, text.format."""

from __future__ import annotations

import json

from openai.types.responses import Response

from tests.api.test_openai_scripted import assert_error
from tests.api.test_responses_scripted import WEATHER, checked, create, prompt, sdk_of, sse
from tests.api.test_tools_scripted import CALL
from tests.conftest import FakeWorld


def test_function_call_non_streaming(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL[:10], CALL[10:]])
    body = create(fake, tools=[WEATHER], input="Weather in Oslo?").json()
    Response.model_validate(body)
    [call] = body["output"]
    assert call["type"] == "function_call" and call["id"].startswith("fc_")
    assert call["call_id"].startswith("call_") and call["name"] == "weather"
    assert json.loads(call["arguments"]) == {"city": "Oslo"}
    assert call["status"] == "completed" and body["status"] == "completed"
    assert body["tools"][0]["name"] == "weather" and body["tools"][0]["strict"] is True
    assert fake.engine.history[-1][1].grammar  # the call is grammar-constrained


def test_function_call_stream_events(fake: FakeWorld) -> None:
    fake.engine.enqueue(["[", CALL, ",", CALL.replace("Oslo", "Rome"), "]"])
    events = sse(create(fake, tools=[WEATHER], stream=True).text)
    kinds = checked(events)
    one = ["response.output_item.added", "response.function_call_arguments.delta",
           "response.function_call_arguments.done", "response.output_item.done"]
    assert kinds == ["response.created", "response.in_progress", *one, *one,
                     "response.completed"]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [json.loads(e["arguments"])["city"] for e in done] == ["Oslo", "Rome"]
    assert [e["output_index"] for e in done] == [0, 1]


def test_tool_result_continues_through_previous_response(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL])
    first = create(fake, tools=[WEATHER], input="Weather in Oslo?").json()
    call = first["output"][0]
    fake.engine.enqueue(["Sunny."])
    r = create(fake, tools=[WEATHER], previous_response_id=first["id"], input=[
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 20C"}])
    assert r.json()["output"][0]["content"][0]["text"] == "Sunny."
    text = prompt(fake)
    assert "Weather in Oslo?" in text
    assert '<|im_start|>assistant\n{"name": "weather", "arguments": {"city": "Oslo"}}' in text
    assert "<|im_start|>tool\nsunny, 20C<|im_end|>" in text


def test_function_call_items_in_input(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Both sunny."])
    args = '{"city": "Oslo"}'
    r = create(fake, tools=[WEATHER], input=[
        {"role": "user", "content": "Oslo and Rome?"},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": args},
        {"type": "function_call", "call_id": "c2", "name": "weather",
         "arguments": args.replace("Oslo", "Rome")},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "sunny too"}]}])
    assert r.status_code == 200, r.text
    text = prompt(fake)
    assert text.count("<|im_start|>assistant\n[") == 1  # both calls in one assistant turn
    assert "tool\nsunny<|im_end|>" in text and "tool\nsunny too<|im_end|>" in text


def test_tool_choice_shapes(fake: FakeWorld) -> None:
    fake.engine.enqueue([CALL])
    body = create(fake, tools=[WEATHER], tool_choice="none").json()
    assert body["output"][0]["type"] == "message"  # never parsed as a call
    assert fake.engine.history[-1][1].grammar is None
    create(fake, tools=[WEATHER], tool_choice={"type": "function", "name": "weather"})
    grammar = fake.engine.history[-1][1].grammar
    assert grammar and "cove-free" not in grammar
    assert_error(create(fake, tools=[WEATHER], tool_choice={"type": "function", "name": "x"}),
                 400, param="tool_choice")
    assert_error(create(fake, tools=[WEATHER], tool_choice={"type": "allowed_tools"}), 400,
                 param="tool_choice")


def test_structured_output(fake: FakeWorld) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    fake.engine.enqueue(['{"name": "Oslo", ', '"population": 700000}'])
    parsed = sdk_of(fake).responses.parse(model="scripted", input="A city?", text_format=City)
    assert parsed.output_parsed == City(name="Oslo", population=700000)
    grammar = fake.engine.history[-1][1].grammar
    assert grammar and "population" in grammar
    fake.engine.enqueue(["{}"])
    create(fake, text={"format": {"type": "json_object"}})
    assert fake.engine.history[-1][1].grammar
    bad = {"type": "json_schema", "name": "n", "schema": {
        "type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}
    err = assert_error(create(fake, text={"format": bad}), 400,
                       code="unsupported_schema_feature")
    assert "text.format.schema" in err["message"]
    assert_error(create(fake, text={"format": {**bad, "name": None}}), 400,
                 param="text.format.name")
    assert_error(create(fake, tools=[WEATHER], text={"format": {"type": "json_object"}}), 400,
                 param="text.format")
