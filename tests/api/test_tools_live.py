"""Tool calling and reasoning controls with the bundled model through the official ``openai``
client and the ``ollama`` client."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model

PARAMS = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
          "required": ["city"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather",
                                           "description": "Current weather in a city",
                                           "parameters": PARAMS}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="unused", max_retries=0)


def test_tool_round_trip(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2:135m", messages=ASK, tools=TOOLS,
                                       tool_choice="required", max_tokens=60, seed=1)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    jsonschema.validate(json.loads(calls[0].function.arguments), PARAMS)  # type: ignore[union-attr]
    follow = [*ASK, choice.message.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 C"}]
    r2 = client.chat.completions.create(model="smollm2:135m", messages=follow,
                                        tools=TOOLS, tool_choice="none", max_tokens=30)
    assert r2.choices[0].message.content and not r2.choices[0].message.tool_calls


def test_tool_call_streaming(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2:135m", messages=ASK, tools=TOOLS, stream=True, max_tokens=60,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    args: dict[int, str] = {}
    names = {}
    finish = None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for tc in delta.tool_calls or []:
            assert isinstance(tc.index, int)
            if tc.id:
                names[tc.index] = tc.function.name  # type: ignore[union-attr]
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")  # type: ignore[union-attr]
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and names == {0: "get_weather"}
    jsonschema.validate(json.loads(args[0]), PARAMS)


def test_tool_choice_none_makes_no_call(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2:135m", messages=ASK, tools=TOOLS,
                                       tool_choice="none", max_tokens=20)
    assert not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason in ("stop", "length")


def test_auto_choice_completes(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2:135m", messages=ASK, tools=TOOLS,
                                       max_tokens=60, seed=2)
    msg = r.choices[0].message
    assert msg.tool_calls or msg.content


def test_malformed_tools_array_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2:135m", messages=ASK,
                                       tools=[{"type": "function", "function": {}}])  # type: ignore[list-item]
    assert e.value.body["param"] == "tools[0].function.name"  # type: ignore[index]


def test_reasoning_controls_accepted_on_a_model_without_reasoning(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="smollm2:135m", messages=ASK, max_tokens=10, reasoning_effort="low",
        extra_body={"thinking": {"type": "disabled"}, "reasoning_budget": 4})
    assert r.choices[0].message.content


def test_ollama_tools(live_server: LiveServer) -> None:
    import ollama

    c = ollama.Client(host=live_server.base_url)
    r = c.chat(model="smollm2:135m", messages=ASK, tools=TOOLS, options={"num_predict": 60,
                                                                       "seed": 1})
    assert r.message.tool_calls or r.message.content


@pytest.mark.parametrize("choice", ["required",
                                    {"type": "function", "function": {"name": "get_weather"}}])
def test_calls_never_end_as_content(client: openai.OpenAI, choice: object) -> None:
    """Parallel calls allowed (the default) and room to repeat: the bundled model tends to
    repeat its call until max_tokens; the answer is still calls, each once, never raw text."""
    r = client.chat.completions.create(model="smollm2:135m", messages=ASK, tools=TOOLS,
                                       tool_choice=choice, max_tokens=120, seed=3)  # type: ignore[arg-type]
    choice_ = r.choices[0]
    calls = choice_.message.tool_calls or []
    assert calls and not choice_.message.content
    assert choice_.finish_reason in ("tool_calls", "length")
    keys = [(c.function.name, c.function.arguments) for c in calls]  # type: ignore[union-attr]
    assert len(keys) == len(set(keys)) <= 8
    for c in calls:
        jsonschema.validate(json.loads(c.function.arguments), PARAMS)  # type: ignore[union-attr]
    stream = client.chat.completions.create(model="smollm2:135m", messages=ASK, tools=TOOLS,
                                            tool_choice=choice, max_tokens=120, seed=3,  # type: ignore[arg-type]
                                            stream=True)
    content = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert content == ""


def test_parameters_with_defs_are_enforced(client: openai.OpenAI) -> None:
    # as pydantic writes a nested model (OpenAI's pydantic_function_tool, LangChain): $defs at
    # the parameters' root. Both tools define "Place", differently; each call must follow its own
    place = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
             "required": ["city"], "additionalProperties": False}
    code = {"type": "string", "enum": ["FR", "DE"]}
    tools = []
    for name, defs in (("get_weather", {"Place": place}), ("get_country", {"Place": code})):
        params = {"type": "object", "properties": {"where": {"$ref": "#/$defs/Place"}},
                  "required": ["where"], "additionalProperties": False, "$defs": defs}
        tools.append({"type": "function", "function": {"name": name, "parameters": params}})
    for pick in ("get_weather", "get_country"):
        r = client.chat.completions.create(
            model="smollm2:135m", messages=ASK, tools=tools, max_tokens=60, seed=1,  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": pick}})
        call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
        schema = next(t["function"]["parameters"] for t in tools
                      if t["function"]["name"] == pick)
        jsonschema.validate(json.loads(call.function.arguments), schema)  # type: ignore[union-attr]
    both = client.chat.completions.create(model="smollm2:135m", messages=ASK, tools=tools,  # type: ignore[arg-type]
                                          tool_choice="required", max_tokens=80, seed=2)
    assert both.choices[0].finish_reason == "tool_calls"
