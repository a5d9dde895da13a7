"""Popular client libraries against a live server on loopback: LangChain's ``ChatOpenAI``
with tools, and LiteLLM through its OpenAI and Ollama providers. Nothing leaves the machine:
LiteLLM reads its bundled model cost map (``LITELLM_LOCAL_MODEL_COST_MAP``)."""

from __future__ import annotations

import json
import os
from typing import Any

import jsonschema
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model

MODEL = "smollm2:135m"
PARAMS = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
          "required": ["city"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather",
                                            "description": "Current weather in a city",
                                            "parameters": PARAMS}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def litellm() -> Any:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before the import: no cost-map fetch
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm as lib

    lib.telemetry = False
    return lib


def test_langchain_chat_openai_with_tools(live_server: LiveServer) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=live_server.base_url + "/v1", api_key="unused",
                     max_retries=0, temperature=0, max_tokens=40, timeout=300)
    plain = llm.invoke("Say hello in one word.")
    assert isinstance(plain.content, str) and plain.content
    msg = llm.bind_tools([WEATHER], tool_choice="required").invoke(ASK)
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]
    jsonschema.validate(msg.tool_calls[0]["args"], PARAMS)  # type: ignore[attr-defined]
    chunks = list(llm.bind_tools([WEATHER], tool_choice="get_weather").stream(ASK))
    whole = chunks[0]
    for c in chunks[1:]:
        whole = whole + c
    assert whole.tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]


def test_litellm_openai_provider(live_server: LiveServer, litellm: Any) -> None:
    r = litellm.completion(model=f"openai/{MODEL}", api_base=live_server.base_url + "/v1",
                           api_key="unused", messages=ASK, tools=[WEATHER],
                           tool_choice="required", max_tokens=60, temperature=0)
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), PARAMS)
    assert r.usage.prompt_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in litellm.completion(
        model=f"openai/{MODEL}", api_base=live_server.base_url + "/v1", api_key="unused",
        messages=[{"role": "user", "content": "Say hi."}], max_tokens=16, stream=True))
    assert text


def test_litellm_ollama_chat_provider(live_server: LiveServer, litellm: Any) -> None:
    r = litellm.completion(model=f"ollama_chat/{MODEL}", api_base=live_server.base_url,
                           messages=[{"role": "user", "content": "Say hi."}], max_tokens=16)
    assert r.choices[0].message.content
    r = litellm.completion(model=f"ollama_chat/{MODEL}", api_base=live_server.base_url,
                           messages=ASK, tools=[WEATHER], max_tokens=60, temperature=0)
    message = r.choices[0].message
    assert message.content or message.tool_calls
    for call in message.tool_calls or []:
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), PARAMS)
