"""Structured output with the bundled model through the official ``openai`` client: the output
always parses and validates against the schema."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model

SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer"},
        "name": {"type": "string", "maxLength": 12},
        "ok": {"type": "boolean"},
    },
    "required": ["colour", "count", "name", "ok"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("seed", [1, 2])
def test_json_schema_output_validates(client: openai.OpenAI, seed: int) -> None:
    r = client.chat.completions.create(
        model="smollm2:135m", seed=seed, max_tokens=120, temperature=1.0,
        messages=[{"role": "user", "content": "Describe a ball as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "ball", "schema": SCHEMA, "strict": True}},
    )
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), SCHEMA)


def test_json_object_output_parses(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="smollm2:135m", seed=3, max_tokens=200,
        messages=[{"role": "user", "content": "Give me a JSON object about cats."}],
        response_format={"type": "json_object"},
    )
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content or ""), dict)
    else:
        assert (r.choices[0].message.content or "").lstrip().startswith("{")


def test_unsupported_schema_feature_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="smollm2:135m", messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": {
                "name": "n", "schema": {"type": "integer", "minimum": 3}}},
        )
    assert "minimum" in str(e.value)
    assert e.value.body["param"] == "response_format.json_schema.schema"  # type: ignore[index]
