"""The real path for the Anthropic Messages API: `cove serve` with the bundled SmolLM2 model,
driven by the official ``anthropic`` Python SDK on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import LiveServer, free_port, start_server, stop_server
from tests.web.helpers import PASSWORD

pytestmark = pytest.mark.real_model

MODEL = "smollm2:135m"
MSG: Any = [{"role": "user", "content": "Name three colours."}]
WEATHER: Any = {"name": "get_weather", "description": "The weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}
# sampling fields go in extra_body: recent SDKs have no temperature/top_p/top_k arguments
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live_server.base_url, api_key="unused", max_retries=0,
                               timeout=120)


def text_of(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def test_create(client: anthropic.Anthropic) -> None:
    r = client.messages.create(model=MODEL, max_tokens=24, messages=MSG,
                               system="You are terse.", metadata={"user_id": "tester"})
    assert r.id.startswith("msg_") and r.type == "message" and r.role == "assistant"
    assert r.content[0].type == "text" and text_of(r)
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert 0 < r.usage.output_tokens <= 24
    assert r.usage.input_tokens + (r.usage.cache_read_input_tokens or 0) > 10


def test_stream_helper_and_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=20, messages=MSG,
                                extra_body=GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and text_of(final) == text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert 0 < final.usage.output_tokens <= 20
    greedy = client.messages.create(model=MODEL, max_tokens=20, messages=MSG, extra_body=GREEDY)
    assert text_of(greedy) == text  # streamed or not, the same greedy answer


def test_raw_stream_events(client: anthropic.Anthropic) -> None:
    events = list(client.messages.create(model=MODEL, max_tokens=8, messages=MSG, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta" and "content_block_delta" in kinds
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert events[-2].usage.output_tokens > 0  # type: ignore[union-attr]


def test_count_tokens_matches_the_generation(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "You are terse."}]
    n = client.messages.count_tokens(model=MODEL, messages=MSG, system=system,
                                     tools=[WEATHER]).input_tokens
    r = client.messages.create(model=MODEL, max_tokens=1, messages=MSG, system=system,
                               tools=[WEATHER])
    assert n == r.usage.input_tokens + (r.usage.cache_read_input_tokens or 0)
    plain = client.messages.count_tokens(model=MODEL, messages=MSG).input_tokens
    assert 5 < plain < n  # the tools are part of the prompt


def test_stop_sequence(client: anthropic.Anthropic) -> None:
    free = text_of(client.messages.create(model=MODEL, max_tokens=24, messages=MSG,
                                          extra_body=GREEDY))
    words = free.split()
    assert len(words) > 3, free
    stop = " " + words[2]
    r = client.messages.create(model=MODEL, max_tokens=24, messages=MSG, extra_body=GREEDY,
                               stop_sequences=[stop])
    assert (r.stop_reason, r.stop_sequence) == ("stop_sequence", stop)
    assert text_of(r) == free[: free.index(stop)]


def test_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    ask: Any = [{"role": "user", "content": "What is the weather in Oslo?"}]
    r = client.messages.create(model=MODEL, max_tokens=60, messages=ask, tools=[WEATHER],
                               tool_choice={"type": "any"}, extra_body=GREEDY)
    assert r.stop_reason == "tool_use"
    call = next(b for b in r.content if b.type == "tool_use")
    assert call.id.startswith("toolu_") and call.name == "get_weather"
    assert isinstance(call.input, dict) and isinstance(call.input["city"], str)
    follow: Any = [*ask, {"role": "assistant", "content": r.content},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                 "content": "Sunny, 21 C"}]}]
    answer = client.messages.create(model=MODEL, max_tokens=30, messages=follow,
                                    tools=[WEATHER], tool_choice={"type": "none"})
    assert answer.stop_reason in ("end_turn", "max_tokens") and text_of(answer)


def test_streamed_tool_use(client: anthropic.Anthropic) -> None:
    ask: Any = [{"role": "user", "content": "Weather in Rome?"}]
    with client.messages.stream(model=MODEL, max_tokens=60, messages=ask, tools=[WEATHER],
                                tool_choice={"type": "tool", "name": "get_weather"},
                                extra_body=GREEDY) as stream:
        final = stream.get_final_message()
    call = next(b for b in final.content if b.type == "tool_use")
    assert final.stop_reason == "tool_use" and isinstance(call.input.get("city"), str)


def test_structured_output(client: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 12}},
              "required": ["colour"], "additionalProperties": False}
    ask: Any = [{"role": "user", "content": "Give a colour as JSON."}]
    r = client.messages.create(model=MODEL, max_tokens=40, messages=ask, extra_body={
        "temperature": 0, "output_config": {"format": {"type": "json_schema", "schema": schema}}})
    assert r.stop_reason == "end_turn"
    assert isinstance(json.loads(text_of(r))["colour"], str)


def test_thinking_config_on_a_model_that_does_not_reason(client: anthropic.Anthropic) -> None:
    r = client.messages.create(model=MODEL, max_tokens=16, messages=MSG,
                               thinking={"type": "enabled", "budget_tokens": 8})
    assert [b.type for b in r.content] == ["text"]


def test_errors_raise_the_sdks_exceptions(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="nope:1b", max_tokens=5, messages=MSG)
    assert nf.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model=MODEL, max_tokens=5, messages=MSG,
                               extra_body={"temperature": 3})
    assert bad.value.body["error"]["message"].startswith("temperature: ")  # type: ignore[index]
    long: Any = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        client.messages.create(model=MODEL, max_tokens=5, messages=long)


def test_models_list_and_retrieve_in_anthropics_shape(client: anthropic.Anthropic,
                                                     live_server: LiveServer) -> None:
    """The SDK's ``models`` calls get Anthropic's ``ModelInfo`` (``type``, ``display_name``,
    ``created_at``) and page fields; an OpenAI client still gets OpenAI's plain shape."""
    page = client.models.list()
    ids = [m.id for m in page.data]
    assert MODEL in ids
    m = next(m for m in page.data if m.id == MODEL)
    assert m.type == "model" and m.display_name == MODEL and m.created_at is not None
    assert page.has_more is False and page.first_id == ids[0] and page.last_id == ids[-1]
    one = client.models.retrieve(MODEL)
    assert one.id == MODEL and one.type == "model" and one.created_at == m.created_at
    plain = httpx.get(f"{live_server.base_url}/v1/models").json()
    assert "has_more" not in plain and "type" not in plain["data"][0]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A server of its own with an account (so every API request needs a key), and a key."""
    home: Path = tmp_path_factory.mktemp("cove-keyed")
    port = free_port()
    proc = start_server(home, port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base) as web:
            r = web.post("/web/signup", json={"email": "a@example.org", "password": PASSWORD})
            key = web.post("/web/keys", json={"name": "sdk"},
                           headers={"X-CSRF-Token": r.json()["csrf"]}).json()["key"]
        yield base, key
    finally:
        stop_server(proc)


def test_api_key_as_x_api_key_or_bearer(keyed: tuple[str, str]) -> None:
    base, key = keyed
    for kw in ({"api_key": key}, {"auth_token": key}):  # x-api-key, Authorization: Bearer
        c = anthropic.Anthropic(base_url=base, max_retries=0, timeout=120, **kw)  # type: ignore[arg-type]
        r = c.messages.create(model=MODEL, max_tokens=4, messages=MSG)
        assert r.content[0].type == "text"
        assert c.messages.count_tokens(model=MODEL, messages=MSG).input_tokens > 5
    wrong = anthropic.Anthropic(base_url=base, api_key="cove-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        wrong.messages.create(model=MODEL, max_tokens=4, messages=MSG)
    assert json.loads(e.value.response.text)["error"]["type"] == "authentication_error"
