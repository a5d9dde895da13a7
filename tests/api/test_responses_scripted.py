"""OpenAI Responses API over a scripted engine: the response object and streaming events (checked
against the ``openai`` package's own types), input items, tools, structured output, reasoning,
previous_response_id chains, errors in OpenAI's shape."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent
from pydantic import TypeAdapter

from cove.engine.fake import ScriptedEngine
from tests.api.test_openai_scripted import R1_TEMPLATE, assert_error
from tests.conftest import FakeWorld

EVENT = TypeAdapter(ResponseStreamEvent)
ITEM = TypeAdapter(ResponseItem)
WEATHER = {"type": "function", "name": "weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


def create(world: FakeWorld, **body: Any) -> Any:
    body.setdefault("model", "scripted")
    body.setdefault("input", "hi")
    return world.client.post("/v1/responses", json=body)


def sse(text: str) -> list[dict[str, Any]]:
    """The events of a Responses stream; each block is ``event: <type>`` + ``data: <json>``,
    and the data's ``type`` matches the event name."""
    out = []
    for block in text.split("\n\n")[:-1]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        event = json.loads(data[len("data: "):])
        assert event["type"] == name[len("event: "):]
        out.append(event)
    assert text.endswith("\n\n") and "[DONE]" not in text
    return out


def checked(events: list[dict[str, Any]]) -> list[str]:
    """Validate every event against the SDK's types; sequence numbers count from 0; returns
    the event types in order."""
    for event in events:
        EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return [e["type"] for e in events]


def prompt(world: FakeWorld) -> str:
    return bytes(world.engine.history[-1][0]).decode()


@pytest.fixture
def thinker(settings: Any) -> Iterator[FakeWorld]:
    world = FakeWorld(settings, ScriptedEngine(name="thinker:latest", chat_template=R1_TEMPLATE))
    with world.client:
        yield world


def sdk_of(world: FakeWorld) -> openai.OpenAI:
    """The official client, talking to the scripted app in-process."""
    return openai.OpenAI(base_url="http://localhost/v1", api_key="unused", max_retries=0,
                         http_client=world.client)


@pytest.fixture
def sdk(fake: FakeWorld) -> openai.OpenAI:
    return sdk_of(fake)


def test_non_streaming_response_is_openai_shaped(fake: FakeWorld) -> None:
    fake.engine.enqueue(["Hel", "lo", "!"])
    r = create(fake, instructions="Be brief.", metadata={"k": "v"}, user="u1")
    assert r.status_code == 200, r.text
    body = r.json()
    Response.model_validate(body)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert body["status"] == "completed" and body["incomplete_details"] is None
    assert body["model"] == "scripted:latest"
    [msg] = body["output"]
    assert msg["type"] == "message" and msg["role"] == "assistant" and msg["id"].startswith("msg_")
    assert msg["content"] == [{"type": "output_text", "text": "Hello!", "annotations": [],
                               "logprobs": []}]
    usage = body["usage"]
    assert usage["output_tokens"] == 3
    assert usage["total_tokens"] == usage["input_tokens"] + 3
    assert body["instructions"] == "Be brief." and body["metadata"] == {"k": "v"}
    assert body["user"] == "u1" and body["store"] is True
    assert prompt(fake).startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert "output_text" not in body  # computed by the SDK


def test_sdk_create_and_output_text(sdk: openai.OpenAI, fake: FakeWorld) -> None:
    fake.engine.enqueue(["Blue", " and green."])
    r = sdk.responses.create(model="scripted", input="Colours?", max_output_tokens=20,
                             temperature=0)
    assert r.output_text == "Blue and green."
    params = fake.engine.history[-1][1]
    assert (params.max_tokens, params.temperature) == (20, 0)


def test_stream_event_order_for_text(fake: FakeWorld) -> None:
    fake.engine.enqueue(["a", "b", "c"])
    events = sse(create(fake, stream=True).text)
    assert checked(events) == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert "".join(e["delta"] for e in events if e["type"].endswith(".delta")) == "abc"
    assert events[0]["response"]["status"] == "in_progress"
    assert events[0]["response"]["output"] == []
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["output_tokens"] == 3
    assert final["output"][0]["content"][0]["text"] == "abc"
    assert {e["response"]["id"] for e in events if "response" in e} == {final["id"]}


def test_sdk_stream_helper_accumulates(sdk: openai.OpenAI, fake: FakeWorld) -> None:
    fake.engine.enqueue(["Hi", " there"])
    with sdk.responses.stream(model="scripted", input="hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Hi", " there"] and final.output_text == "Hi there"
    fake.engine.enqueue(["x"])
    chunks = list(sdk.responses.create(model="scripted", input="hello", stream=True))
    assert chunks[-1].type == "response.completed"


def test_reasoning_becomes_a_reasoning_item(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["Two plus", " two.</think>", "\n\nIt is ", "4."])
    body = create(thinker, model="thinker").json()
    Response.model_validate(body)
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Two plus two."}]
    assert reasoning["summary"] == []
    assert message["content"][0]["text"] == "It is 4."


@pytest.mark.parametrize("summary", [False, True])
def test_reasoning_stream_events(thinker: FakeWorld, summary: bool) -> None:
    thinker.engine.enqueue(["<think>", "a", "b</think>", "c"])
    extra = {"reasoning": {"effort": "high", "summary": "auto"}} if summary else {}
    events = sse(create(thinker, model="thinker", stream=True, **extra).text)
    kinds = checked(events)
    part = "response.reasoning_summary" if summary else "response.reasoning_text"
    opened = ["response.reasoning_summary_part.added"] if summary else [
        "response.content_part.added"]
    closed = [f"{part}_text.done" if summary else f"{part}.done",
              "response.reasoning_summary_part.done" if summary else "response.content_part.done"]
    delta = f"{part}_text.delta" if summary else f"{part}.delta"
    assert kinds[:3] == ["response.created", "response.in_progress",
                         "response.output_item.added"]
    n = kinds.index(closed[0])
    assert kinds[3:n] == opened + [delta] * (n - 4)
    assert "".join(e["delta"] for e in events if e["type"] == delta) == "ab"
    assert kinds[n:n + 3] == [*closed, "response.output_item.done"]
    assert kinds[n + 3] == "response.output_item.added"  # then the message
    final = events[-1]["response"]
    assert final["output"][0]["content"] == [{"type": "reasoning_text", "text": "ab"}]
    assert final["output"][0]["summary"] == ([{"type": "summary_text", "text": "ab"}]
                                             if summary else [])
    assert final["output"][1]["content"][0]["text"] == "c"
    assert final["reasoning"]["effort"] == ("high" if summary else None)


def test_reasoning_items_and_earlier_reasoning_are_not_sent_back(thinker: FakeWorld) -> None:
    thinker.engine.enqueue(["ok</think>fine"])
    items = [
        {"role": "user", "content": "q1"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text",
                                                          "text": "SECRET PLAN"}]},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "<think>SECRET</think>answer one"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "q2"}]},
    ]
    assert create(thinker, model="thinker", input=items).status_code == 200
    text = prompt(thinker)
    assert "SECRET" not in text and "answer one" in text and "q2" in text


def test_effort_none_turns_thinking_off() -> None:
    from cove.api.openai.responses.convert import normalize_input, to_chat_request
    from cove.api.openai.responses.schemas import ResponseCreateRequest

    body = ResponseCreateRequest.model_validate({"input": "x", "reasoning": {"effort": "none"}})
    assert to_chat_request(body, [], normalize_input(body.input)).think is False
    body = ResponseCreateRequest.model_validate({"input": "x", "reasoning": {"effort": "low"},
                                                 "reasoning_budget": 5})
    req = to_chat_request(body, [], normalize_input(body.input))
    assert (req.think, req.reasoning_budget) == (None, 5)


def test_max_output_tokens_is_incomplete(fake: FakeWorld) -> None:
    fake.engine.enqueue(["one", " two", " three"])
    body = create(fake, max_output_tokens=2).json()
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    fake.engine.enqueue(["one", " two", " three"])
    events = sse(create(fake, max_output_tokens=2, stream=True).text)
    checked(events)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"]["reason"] == "max_output_tokens"


def test_previous_response_chain_and_input_items(fake: FakeWorld) -> None:
    fake.engine.enqueue(["A1"])
    one = create(fake, input="Q1", instructions="FIRST RULES").json()
    fake.engine.enqueue(["A2"])
    two = create(fake, input="Q2", previous_response_id=one["id"]).json()
    fake.engine.enqueue(["A3"])
    three = create(fake, input=[{"role": "user", "content": "Q3"}],
                   previous_response_id=two["id"], instructions="NEW RULES").json()
    text = prompt(fake)
    assert all(t in text for t in ("Q1", "A1", "Q2", "A2", "Q3", "NEW RULES"))
    assert "FIRST RULES" not in text  # instructions are not carried over
    assert three["previous_response_id"] == two["id"]
    items = fake.client.get(f"/v1/responses/{three['id']}/input_items",
                            params={"order": "asc"}).json()
    texts = [i["content"][0]["text"] for i in items["data"]]
    assert texts == ["Q1", "A1", "Q2", "A2", "Q3"]
    for item in items["data"]:
        ITEM.validate_python(item)
    assert items["first_id"] == items["data"][0]["id"] and items["has_more"] is False
    page = fake.client.get(f"/v1/responses/{three['id']}/input_items",
                           params={"limit": 2}).json()  # newest first by default
    assert [i["content"][0]["text"] for i in page["data"]] == ["Q3", "A2"]
    assert page["has_more"] is True
    rest = fake.client.get(f"/v1/responses/{three['id']}/input_items",
                           params={"limit": 2, "after": page["last_id"]}).json()
    assert [i["content"][0]["text"] for i in rest["data"]] == ["Q2", "A1"]
    for bad in ("0", "101", "x", "9" * 5000):  # 5,000 digits: past int()'s limit, was a 500
        r = fake.client.get(f"/v1/responses/{three['id']}/input_items", params={"limit": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
    # deleting an ancestor does not break the chain: each response keeps its context
    assert fake.client.delete(f"/v1/responses/{one['id']}").json() == {
        "id": one["id"], "object": "response", "deleted": True}
    fake.engine.enqueue(["A4"])
    assert create(fake, input="Q4", previous_response_id=three["id"]).status_code == 200
    assert "Q1" in prompt(fake)


def test_sdk_retrieve_delete_and_input_items(sdk: openai.OpenAI, fake: FakeWorld) -> None:
    fake.engine.enqueue(["stored"])
    r = sdk.responses.create(model="scripted", input="keep me")
    got = sdk.responses.retrieve(r.id)
    assert got.output_text == "stored" and got.status == "completed"
    items = sdk.responses.input_items.list(r.id)
    assert [i.content[0].text for i in items.data] == ["keep me"]  # type: ignore[union-attr]
    sdk.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError) as ei:
        sdk.responses.create(model="scripted", input="x", previous_response_id=r.id)
    assert ei.value.code == "previous_response_not_found"


def test_store_false_keeps_nothing(fake: FakeWorld) -> None:
    from sqlalchemy import func, select

    from cove.store.tables import StoredResponse

    fake.engine.enqueue(["gone"])
    body = create(fake, store=False).json()
    assert body["store"] is False
    assert_error(fake.client.get(f"/v1/responses/{body['id']}"), 404)
    assert_error(create(fake, previous_response_id=body["id"]), 404,
                 param="previous_response_id", code="previous_response_not_found")
    with fake.app.state.db.session() as s:
        assert s.scalar(select(func.count()).select_from(StoredResponse)) == 0


def test_failure_mid_stream_is_response_failed_and_stored(fake: FakeWorld) -> None:
    fake.engine.enqueue(["partial", RuntimeError("boom")])
    events = sse(create(fake, stream=True).text)
    checked(events)
    assert [e["type"] for e in events if e["type"] == "response.failed"] == ["response.failed"]
    assert events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    stored = fake.client.get(f"/v1/responses/{failed['id']}").json()
    assert stored["status"] == "failed" and stored["output"][0]["content"][0]["text"] == "partial"
    assert_error(create(fake, previous_response_id=failed["id"]), 400,
                 param="previous_response_id")
    fake.engine.enqueue(["after"])
    assert create(fake).json()["output"][0]["content"][0]["text"] == "after"


def test_client_going_away_stores_the_response_cancelled(fake: FakeWorld) -> None:
    from cove.api.openai.responses.convert import normalize_input, to_chat_request
    from cove.api.openai.responses.events import ResponseRun, base_response
    from cove.api.openai.responses.schemas import ResponseCreateRequest

    body = ResponseCreateRequest.model_validate({"model": "scripted", "input": "x"})
    fake.engine.enqueue(["one", " two", " three", " four"])
    ended: list[dict[str, Any]] = []

    async def run() -> None:
        stream = await fake.app.state.pipeline.start_chat(
            to_chat_request(body, [], normalize_input(body.input)))
        events = ResponseRun(base_response(body, "resp_x", stream.model), stream,
                             on_end=ended.append).events()
        async for event in events:
            if event["type"] == "response.output_text.delta":
                break
        await events.aclose()

    async def cancelled_first() -> dict[str, Any]:
        stream = await fake.app.state.pipeline.start_chat(
            to_chat_request(body, [], normalize_input(body.input)))
        run = ResponseRun(base_response(body, "resp_y", stream.model), stream,
                          on_end=ended.append)
        run.cancel()  # e.g. the client left while it waited for a slot
        return await run.collect()

    asyncio.run(run())
    [final] = ended
    assert final["status"] == "cancelled"
    assert final["output"][0]["status"] == "incomplete"
    assert final["output"][0]["content"][0]["text"] == "one"
    fake.engine.enqueue(["never"])
    assert asyncio.run(cancelled_first())["status"] == "cancelled"  # not "completed"
    assert ended[-1]["status"] == "cancelled"


@pytest.mark.parametrize("body,param", [
    ({"input": 5}, "input"),
    ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
    ({"input": [{"content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "video"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text"),
    ({"input": ["ok", {"type": "function_call", "name": "f"}]}, "input[0]"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ({"input": []}, "input"),
    ({"input": [{"role": "system", "content": "only rules"}]}, "input"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "parameters": {"type": "array"}}]},
     "tools[0].parameters.type"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": 3}, "temperature"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"truncation": "auto"}, "truncation"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"include": ["message.output_text.logprobs"]}, "include"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"store": "yes please"}, "store"),
])
def test_invalid_fields_are_400_naming_the_field(fake: FakeWorld, body: dict[str, Any],
                                                 param: str) -> None:
    assert_error(create(fake, **body), 400, param=param)


def test_other_errors_in_openai_shape(fake: FakeWorld) -> None:
    assert_error(create(fake, model="nope:7b"), 404, code="model_not_found")
    assert_error(fake.client.get("/v1/responses/resp_unknown"), 404)
    assert_error(fake.client.delete("/v1/responses/resp_unknown"), 404)
    assert_error(fake.client.get("/v1/responses/resp_unknown/input_items"), 404)
    fake.engine.enqueue(["x"])
    rid = create(fake).json()["id"]
    for params, param in (({"limit": 0}, "limit"), ({"limit": "many"}, "limit"),
                          ({"order": "up"}, "order"), ({"after": "msg_nope"}, "after")):
        assert_error(fake.client.get(f"/v1/responses/{rid}/input_items", params=params), 400,
                     param=param)
    long = "word " * 500  # 2500 tokens for the scripted engine (n_ctx 2048)
    for stream in (False, True):
        assert_error(create(fake, input=long, stream=stream), 400,
                     code="context_length_exceeded")
    assert_error(fake.client.post("/v1/responses", content=b'{"input": ',
                                  headers={"content-type": "application/json"}), 400)


def test_nothing_of_the_request_reaches_the_log(fake: FakeWorld,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.engine.enqueue(["ANSWER-TEXT-9"])
    rid = create(fake, input="PROMPT-TEXT-7", instructions="RULES-TEXT-8").json()["id"]
    fake.engine.enqueue(["ANSWER-TEXT-9", RuntimeError("boom")])
    sse(create(fake, input="PROMPT-TEXT-7", previous_response_id=rid, stream=True).text)
    create(fake, input=[{"role": "wizard", "content": "PROMPT-TEXT-7"}])
    fake.client.get(f"/v1/responses/{rid}")
    for secret in ("PROMPT-TEXT-7", "RULES-TEXT-8", "ANSWER-TEXT-9"):
        assert secret not in caplog.text
