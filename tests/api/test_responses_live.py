"""The real path for the Responses API: `cove serve` on loopback with the bundled SmolLM2 model,
driven by the official ``openai`` client (create, stream, previous_response_id chain, function
tool, structured output) and by LangChain's ``ChatOpenAI(use_responses_api=True)``."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model

MODEL = "smollm2:135m"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False}}


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="unused", max_retries=0)


def test_create_and_retrieve(client: openai.OpenAI) -> None:
    r = client.responses.create(model=MODEL, input="Name three colours.", max_output_tokens=24,
                                instructions="Answer briefly.", temperature=0)
    assert r.status in ("completed", "incomplete") and r.output_text
    assert r.usage is not None and r.usage.input_tokens > 5
    assert 0 < r.usage.output_tokens <= 24
    got = client.responses.retrieve(r.id)
    assert got.output_text == r.output_text and got.instructions == "Answer briefly."


def test_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input="Say hello.", max_output_tokens=16,
                                 temperature=0) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert text and final.output_text == text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    raw = list(client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=4,
                                       stream=True))
    assert raw[-1].type == "response.incomplete" or raw[-1].type == "response.completed"


def test_previous_response_chain(client: openai.OpenAI) -> None:
    one = client.responses.create(model=MODEL, input="My name is Ada. Say OK.",
                                  max_output_tokens=8, temperature=0)
    two = client.responses.create(model=MODEL, input="What is my name?",
                                  previous_response_id=one.id, max_output_tokens=8,
                                  temperature=0)
    assert two.previous_response_id == one.id
    assert one.usage is not None and two.usage is not None
    assert two.usage.input_tokens > one.usage.input_tokens + one.usage.output_tokens
    items = client.responses.input_items.list(two.id, order="asc").data
    texts = [i.content[0].text for i in items]  # type: ignore[union-attr]
    assert texts == ["My name is Ada. Say OK.", one.output_text, "What is my name?"]
    three = client.responses.create(model=MODEL, input="Thanks.", previous_response_id=two.id,
                                    max_output_tokens=4, store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(three.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")


def test_function_tool_round_trip(client: openai.OpenAI) -> None:
    r = client.responses.create(model=MODEL, input="What is the weather in Oslo?",
                                tools=[WEATHER], tool_choice="required", temperature=0,
                                parallel_tool_calls=False,
                                max_output_tokens=64)  # type: ignore[list-item]
    [call] = [o for o in r.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    assert isinstance(json.loads(call.arguments)["city"], str)  # the grammar enforces the schema
    follow = client.responses.create(
        model=MODEL, previous_response_id=r.id, tools=[WEATHER], max_output_tokens=24,
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": "sunny, 20 degrees"}])  # type: ignore[list-item]
    assert follow.status in ("completed", "incomplete")
    assert follow.output and follow.output[0].type in ("message", "function_call")


def test_structured_output(client: openai.OpenAI) -> None:
    class Colour(BaseModel):
        name: str
        warm: bool

    r = client.responses.parse(model=MODEL, input="Describe the colour red as JSON.",
                               text_format=Colour, temperature=0, max_output_tokens=64)
    assert isinstance(r.output_parsed, Colour)


def test_langchain_chat_openai_in_responses_mode(live_server: LiveServer) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=live_server.base_url + "/v1", api_key="unused",
                     use_responses_api=True, temperature=0, max_tokens=48, max_retries=0)
    msg = llm.invoke("Name a colour.")
    assert msg.text and msg.response_metadata["id"].startswith("resp_")
    assert msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] > 0
    chunks = list(llm.stream("Say hello."))
    assert "".join(c.text for c in chunks)
    tooled = llm.bind_tools([WEATHER], tool_choice="required", parallel_tool_calls=False)
    called = tooled.invoke("What is the weather in Oslo?")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather"
    assert isinstance(called.tool_calls[0]["args"]["city"], str)
    from langchain_core.messages import HumanMessage, ToolMessage

    answer = tooled.bind(tool_choice="none").invoke([
        HumanMessage("What is the weather in Oslo?"), called,
        ToolMessage("sunny", tool_call_id=called.tool_calls[0]["id"])])
    assert answer.text
